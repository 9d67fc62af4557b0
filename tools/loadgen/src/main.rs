//! `loadgen`: the load generator behind the README's numbers (`make bench`).
//!
//! It starts the real server — [`leadstream::run`] with production settings, SQLite with
//! `synchronous=FULL` on a real disk — and a fast fake Graph API on loopback, then measures and
//! prints one table. Streams are opened the way users open them: browser-style, i.e. on a
//! keep-alive connection that carried an ordinary request (`/api/leads/count`) first, as a
//! browser's EventSource and a proxy's connection pool do.
//!
//! 1. webhook → SSE latency with one subscriber: each lead is sent on its own (the next one only
//!    after the previous one has arrived and its webhook was answered), timed from writing the
//!    signed `POST /webhook` to the arrival of its `event: lead` on the stream. That span holds
//!    everything a lead goes through: signature, the delivery's commit (fsync), the worker's
//!    Graph call, the lead's commit (fsync), the fan-out.
//!    Then the same again while every lead is also forwarded to a webhook receiver on loopback
//!    (`--forward`): forwarding runs beside ingest, so its p99 must not move.
//! 2. fan-out: the same span, to the *last* of N open streams, for N = 1,000 and 10,000.
//! 3. memory per idle SSE connection: the server's resident memory with N streams open, minus
//!    before, divided by N; browser-style, and on fresh connections (a server of its own).
//!    "Before" is read after a first round of 64 streams was opened and closed, so what a
//!    server allocates once (caches, per-thread pools) is not counted as the streams' cost.
//! 4. the peer, Nchan (nginx with Debian's `libnginx-mod-nchan`), measured right after with the
//!    same client: memory per idle stream and publish → last subscriber, with the ratio. Its
//!    rows are skipped, with a note, where nginx or the module is missing.
//! 5. ingest: signed webhooks (one distinct lead each) sent as fast as they are answered over
//!    64 keep-alive connections; acknowledged per second, and how long until every lead is
//!    saved, as seen by a dashboard stream that must get each one once, in id order. Every
//!    answer must be 200 and the final count must match, or the run fails.
//! 6. for operators, after the ingest: one `/metrics` scrape after another, and leads erased
//!    one at a time (`DELETE /api/leads/{id}`, with its checkpoint).
//! 7. a flood (a server of its own): thousands of connections that never finish a request
//!    (`flood`), while `/healthz` and signed webhooks are timed and a dashboard stream must get
//!    every lead; then how long until the server's timeouts have closed them all.
//!
//! With `--database-url` the store is PostgreSQL, and `--instances 2` runs two servers on it:
//! latency is then also timed from a webhook on one to a stream on the other, and the ingest's
//! connections are split over both.
//!
//! # How it is set up, and why
//!
//! - The server is this same executable re-run with the hidden `serve` argument, which calls
//!   `leadstream::run` on its own tokio runtime exactly as `src/main.rs` does. A separate
//!   process gives a clean reading of the server's resident memory (`/proc/<pid>/status`, which
//!   would otherwise include 10,000 client connections) and keeps client and server off each
//!   other's worker threads. Re-running ourselves rather than `target/release/leadstream`
//!   guarantees the server measured is the code just built (`cargo run -p loadgen` builds
//!   only this binary). Production settings, except that the periodic sync with Meta is off.
//! - The fake Graph and the clients run in this process, on the same two cores: their CPU is
//!   CPU the server does not get, as with a client on the same box.
//! - Arrival on a stream is the kernel's receive timestamp of the socket (`SO_TIMESTAMPNS`),
//!   not the moment this process got round to reading it, and the fan-out's 10,000 sockets
//!   are read on a runtime at the lowest CPU priority (nice 19). So the numbers time the
//!   server's delivery, and the reading of 10,000 sockets — which browsers do on their own
//!   machines — takes only the CPU the server leaves.
//! - `--server-wrapper` runs the server under a profiler (`perf record …`, `heaptrack`).
//!
//! The child exits when its stdin closes, so it cannot outlive a loadgen that panics.

mod bench;
mod client;
mod fake_graph;
mod fanout;
mod flood;
mod forward;
mod measure;
mod nchan;
mod ops;
mod server;
mod sse;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

pub(crate) const APP_SECRET: &str = "loadgen-app-secret";
pub(crate) const VERIFY_TOKEN: &str = "loadgen-verify-token";
pub(crate) const PAGE_TOKEN: &str = "EAAG-loadgen-page-token";
pub(crate) const DASHBOARD_TOKEN: &str = "loadgen-dashboard-token-0123456789";
pub(crate) const PAGE_ID: &str = "111111111111111";
pub(crate) const FORM_ID: &str = "222222222222222";
pub(crate) const AD_ID: &str = "333333333333333";
pub(crate) const ADSET_ID: &str = "444444444444444";
pub(crate) const CAMPAIGN_ID: &str = "555555555555555";
pub(crate) const GRAPH_VERSION: &str = "v25.0";
/// Unix seconds of every lead's `created_time` (a fixed moment; Graph formats it `+0000`).
pub(crate) const CREATED: i64 = 1_764_338_531;
/// Tells the parent where the child listens (one stdout line).
pub(crate) const LISTENING: &str = "LOADGEN_LISTENING ";

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "Measures leadstream: webhook → SSE latency, fan-out, memory per stream (beside Nchan), ingest rate, a flood."
)]
pub(crate) struct Opts {
    /// Leads sent one at a time for the single-subscriber latency (0 skips it).
    #[arg(long, default_value_t = 1000)]
    latency_leads: usize,
    /// Leads timed again while each is forwarded to a local webhook receiver (0 skips it).
    #[arg(long, default_value_t = 1000)]
    forward: usize,
    /// Subscriber counts for the fan-out, ascending, comma-separated (0 skips the fan-out).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    fanout: Vec<usize>,
    /// Events timed per fan-out size (and server: they alternate with the peer's)
    #[arg(long, default_value_t = 100)]
    fanout_events: usize,
    /// Webhooks (one distinct lead each) for the ingest measurement (0 skips it).
    #[arg(long, default_value_t = 20_000)]
    ingest: usize,
    /// Keep-alive connections the ingest webhooks are spread over.
    #[arg(long, default_value_t = 64)]
    ingest_connections: usize,
    /// nginx worker processes for the peer (Nchan).
    #[arg(long, default_value_t = 1)]
    nchan_workers: usize,
    /// Scrapes of `/metrics` timed after the ingest (0 skips them).
    #[arg(long, default_value_t = 200)]
    scrapes: usize,
    /// Leads erased one at a time after the ingest, at most 1,000 (0 skips it).
    #[arg(long, default_value_t = 200)]
    erase: usize,
    /// Connections in the flood (0 skips it).
    #[arg(long, default_value_t = 4000)]
    flood: usize,
    /// Seconds the flood is probed for (less than the server's 30 s timeouts, so it holds).
    #[arg(long, default_value_t = 12)]
    flood_window: u64,
    /// Where the temporary database goes (default: the system's temp directory). Put it on the
    /// disk you mean to measure: on tmpfs an fsync costs nothing.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Measure PostgreSQL instead of SQLite: the server at this URL gets a fresh database for
    /// the run, dropped afterwards. Give it fsync and synchronous_commit on (the defaults) to
    /// measure what production does.
    #[arg(long)]
    database_url: Option<String>,
    /// Instances sharing the PostgreSQL database. With 2, latency is also timed from a webhook
    /// on one instance to a stream on the other, and the ingest is split over both.
    #[arg(long, default_value_t = 1)]
    instances: usize,
    /// Run the server under this command, e.g. "perf record -g -o perf.data" or
    /// "heaptrack -o server": how the README's profile was taken. Memory figures then
    /// include the tool's own.
    #[arg(long)]
    server_wrapper: Option<String>,
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("serve") {
        return server::serve_child();
    }
    let opts = Opts::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // The fan-out's subscribers are read on their own runtime at the lowest CPU priority:
    // arrivals are stamped by the kernel, so reading them late changes no number, and the
    // server gets the cores first, as it would with its clients on other machines.
    //
    // SCHED_IDLE, not just nice 19: the scheduler treats a core running only SCHED_IDLE
    // threads as idle when it places a waking thread. With nice 19 alone, a reader kept one
    // core for tens of milliseconds while both server workers shared the other (seen with
    // `perf record -a`), and the fan-out measured the scheduler's placement, not the server.
    let readers = tokio::runtime::Builder::new_multi_thread()
        .thread_name("loadgen-readers")
        .on_thread_start(|| {
            // SAFETY: plain syscalls on the calling thread with a valid sched_param; a failure
            // only leaves it at normal priority.
            unsafe {
                libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19);
                let param = libc::sched_param { sched_priority: 0 };
                libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
            }
        })
        .enable_all()
        .build()
        .expect("tokio runtime");
    let outcome = runtime.block_on(bench::bench(opts, readers.handle().clone()));
    drop(readers);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}
