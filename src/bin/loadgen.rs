//! `loadgen`: the load generator behind the README's numbers (`make bench`).
//!
//! It starts the real server — [`leadstream::run`] with production settings, SQLite with
//! `synchronous=FULL` on a real disk — and a fast fake Graph API on loopback, then measures and
//! prints one table:
//!
//! 1. webhook → SSE latency with one subscriber: each lead is sent on its own (the next one only
//!    after the previous one has arrived and its webhook was answered), timed from writing the
//!    signed `POST /webhook` to the arrival of its `event: lead` on the stream. That span holds
//!    everything a lead goes through: signature, the delivery's commit (fsync), the worker's
//!    Graph call, the lead's commit (fsync), the fan-out.
//! 2. fan-out: the same span, to the *last* of N open streams, for N = 1,000 and 10,000.
//! 3. memory per idle SSE connection: the server's resident memory with N streams open, minus
//!    before, divided by N.
//! 4. ingest: signed webhooks (one distinct lead each) sent as fast as they are answered over
//!    64 keep-alive connections; acknowledged per second, and how long until every lead is
//!    saved, as seen by a dashboard stream that must get each one once, in id order. Every
//!    answer must be 200 and the final count must match, or the run fails.
//!
//! # How it is set up, and why
//!
//! - The server is this same executable re-run with the hidden `serve` argument, which calls
//!   `leadstream::run` on its own tokio runtime exactly as `src/main.rs` does. A separate
//!   process gives a clean reading of the server's resident memory (`/proc/<pid>/status`, which
//!   would otherwise include 10,000 client connections) and keeps client and server off each
//!   other's worker threads. Re-running ourselves rather than `target/release/leadstream`
//!   guarantees the server measured is the code just built (`cargo run --bin loadgen` builds
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

use std::io::{self, BufRead, Write as _};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use leadstream::config::{MetaSettings, Secret, Settings, Tuning};
use leadstream::ingest::signature::sign;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify, Semaphore};
use warp::Filter;

const APP_SECRET: &str = "loadgen-app-secret";
const VERIFY_TOKEN: &str = "loadgen-verify-token";
const PAGE_TOKEN: &str = "EAAG-loadgen-page-token";
const DASHBOARD_TOKEN: &str = "loadgen-dashboard-token-0123456789";
const PAGE_ID: &str = "111111111111111";
const FORM_ID: &str = "222222222222222";
const AD_ID: &str = "333333333333333";
const ADSET_ID: &str = "444444444444444";
const CAMPAIGN_ID: &str = "555555555555555";
const GRAPH_VERSION: &str = "v25.0";
/// Unix seconds of every lead's `created_time` (a fixed moment; Graph formats it `+0000`).
const CREATED: i64 = 1_764_338_531;
/// Tells the parent where the child listens (one stdout line).
const LISTENING: &str = "LOADGEN_LISTENING ";

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "Measures leadstream: webhook → SSE latency, fan-out, memory per stream, ingest rate."
)]
struct Opts {
    /// Leads sent one at a time for the single-subscriber latency (0 skips it).
    #[arg(long, default_value_t = 1000)]
    latency_leads: usize,
    /// Subscriber counts for the fan-out, ascending, comma-separated (0 skips the fan-out).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    fanout: Vec<usize>,
    /// Events timed per fan-out size.
    #[arg(long, default_value_t = 20)]
    fanout_events: usize,
    /// Webhooks (one distinct lead each) for the ingest measurement (0 skips it).
    #[arg(long, default_value_t = 20_000)]
    ingest: usize,
    /// Keep-alive connections the ingest webhooks are spread over.
    #[arg(long, default_value_t = 64)]
    ingest_connections: usize,
    /// Where the temporary database goes (default: the system's temp directory). Put it on the
    /// disk you mean to measure: on tmpfs an fsync costs nothing.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Run the server under this command, e.g. "perf record -g -o perf.data" or
    /// "heaptrack -o server": how the README's profile was taken. Memory figures then
    /// include the tool's own.
    #[arg(long)]
    server_wrapper: Option<String>,
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("serve") {
        return serve_child();
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
    let outcome = runtime.block_on(bench(opts, readers.handle().clone()));
    drop(readers);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The server under test (child process)
// ---------------------------------------------------------------------------------------------

/// `loadgen serve`: leadstream as `src/main.rs` runs it, configured through the environment by
/// the parent. Production tuning, except that the periodic sync with Meta is off (it would
/// only add calls the fake Graph does not model to the numbers).
fn serve_child() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let env = |k: &str| std::env::var(k).map_err(|_| format!("{k} is not set"));
    let settings = match (env("LOADGEN_DB"), env("LOADGEN_GRAPH_URL")) {
        (Ok(db), Ok(graph_url)) => Settings {
            listen: "127.0.0.1:0".parse().expect("address"),
            db: PathBuf::from(db),
            meta: Some(MetaSettings {
                app_secret: Secret::new(APP_SECRET),
                verify_token: Secret::new(VERIFY_TOKEN),
                page_access_token: Secret::new(PAGE_TOKEN),
                page_ids: vec![PAGE_ID.to_string()],
                graph_url,
            }),
            dashboard_token: Secret::new(DASHBOARD_TOKEN),
            token_generated: false,
            demo: false,
            demo_reason: None,
            public_url: None,
            tuning: Tuning {
                sync_every: None,
                sync_at_start: false,
                ..Tuning::default()
            },
        },
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("loadgen serve: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|e| format!("cannot listen: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("no local address: {e}"))?;
        println!("{LISTENING}{addr}");
        let _ = io::stdout().flush();
        leadstream::run(settings, listener, stdin_closed()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen serve: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves when stdin reaches its end: the parent closed it, or died.
async fn stdin_closed() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
        let _ = tx.send(());
    });
    let _ = rx.await;
}

/// The child process and how to reach it.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    /// `wrapper`: a command line the server runs under (a profiler), or empty.
    fn spawn(db: &Path, graph_url: &str, log: PathBuf, wrapper: &str) -> Result<Server, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
        let log_file =
            std::fs::File::create(&log).map_err(|e| format!("cannot create the log: {e}"))?;
        let mut cmd = match wrapper.split_whitespace().collect::<Vec<_>>().split_first() {
            Some((program, args)) => {
                let mut c = std::process::Command::new(program);
                c.args(args).arg(&exe);
                c
            }
            None => std::process::Command::new(&exe),
        };
        let mut child = cmd
            .arg("serve")
            .env("LOADGEN_DB", db)
            .env("LOADGEN_GRAPH_URL", graph_url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .map_err(|e| format!("cannot start the server: {e}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = io::BufReader::new(stdout).lines();
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(a) = line.strip_prefix(LISTENING) {
                        break a.parse().map_err(|e| format!("bad address {a:?}: {e}"))?;
                    }
                }
                _ => {
                    let _ = child.kill();
                    return Err(format!(
                        "the server exited before listening:\n{}",
                        tail(&log, 20)
                    ));
                }
            }
        };
        // Keep draining stdout (the start-up banner) so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Server { child, addr, log })
    }

    /// Resident memory of the server process, in bytes.
    fn rss(&self) -> Result<u64, String> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .map_err(|e| format!("cannot read the server's status: {e}"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .ok_or_else(|| "no VmRSS line".to_string())
    }

    /// User + system CPU time the server has used so far.
    fn cpu(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the ")" that closes the command name; utime and stime are 14th and 15th.
        let after = stat.rsplit_once(')').map(|(_, s)| s).unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Duration::from_millis((ticks(11) + ticks(12)) * 1000 / hz)
    }

    /// Stops the server as its stdin closing tells it to; returns how long it took.
    fn stop(mut self) -> Result<Duration, String> {
        let started = Instant::now();
        drop(self.child.stdin.take());
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                if !status.success() {
                    return Err(format!("the server exited with {status}"));
                }
                return Ok(started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(10) {
                let _ = self.child.kill();
                return Err("the server did not stop within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Only reached with the child still running when the benchmark failed half-way.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// The fake Graph API (in this process)
// ---------------------------------------------------------------------------------------------

/// Answers `GET /v25.0/{id}` like Graph: the form for [`FORM_ID`], else a lead with that id
/// (strings for ids, `+0000` times). Access tokens and proofs are not checked: the tests'
/// fake Graph does that; here only speed matters.
async fn start_fake_graph() -> Result<(String, Arc<AtomicU64>), String> {
    let calls = Arc::new(AtomicU64::new(0));
    let counter = calls.clone();
    let created = chrono::DateTime::from_timestamp(CREATED, 0)
        .expect("fixed time")
        .format("%Y-%m-%dT%H:%M:%S+0000")
        .to_string();
    let route = warp::path(GRAPH_VERSION)
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and(warp::get())
        .map(move |id: String| {
            counter.fetch_add(1, Ordering::Relaxed);
            if id == FORM_ID {
                return warp::reply::json(
                    &json!({"id": FORM_ID, "name": "Spring offer", "status": "ACTIVE"}),
                );
            }
            let n = id.len().min(4);
            let suffix = &id[id.len() - n..];
            warp::reply::json(&json!({
                "id": id,
                "created_time": created,
                "ad_id": AD_ID,
                "adset_id": ADSET_ID,
                "campaign_id": CAMPAIGN_ID,
                "form_id": FORM_ID,
                "field_data": [
                    {"name": "full_name", "values": [format!("Person {suffix}")]},
                    {"name": "email", "values": [format!("person{suffix}@example.com")]},
                    {"name": "phone_number", "values": ["+44 20 7946 0000"]},
                ],
                "is_organic": false,
                "platform": "fb",
            }))
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("fake Graph cannot listen: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(warp::serve(route).incoming(listener).run());
    Ok((format!("http://{addr}/{GRAPH_VERSION}"), calls))
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client: the clients must cost as little CPU as possible, since they share
// the machine with the server they measure.
// ---------------------------------------------------------------------------------------------

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// One keep-alive connection.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

struct Head {
    status: u16,
    content_length: Option<usize>,
    chunked: bool,
    content_type: String,
}

impl Conn {
    async fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(1024),
        })
    }

    async fn fill(&mut self) -> io::Result<()> {
        self.buf.reserve(4096);
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    async fn read_head(&mut self) -> io::Result<Head> {
        let end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await?;
        };
        let text = std::str::from_utf8(&self.buf[..end]).map_err(|_| bad("non-UTF-8 head"))?;
        let mut lines = text.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("bad status line"))?;
        let mut head = Head {
            status,
            content_length: None,
            chunked: false,
            content_type: String::new(),
        };
        for line in lines {
            if let Some((k, v)) = line.split_once(':') {
                let v = v.trim();
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => head.content_length = v.parse().ok(),
                    "transfer-encoding" => head.chunked = v.eq_ignore_ascii_case("chunked"),
                    "content-type" => head.content_type = v.to_string(),
                    _ => {}
                }
            }
        }
        self.buf.drain(..end);
        Ok(head)
    }

    /// Writes `req` and reads the whole answer.
    async fn roundtrip(&mut self, req: &[u8]) -> io::Result<(u16, Vec<u8>)> {
        self.stream.write_all(req).await?;
        let head = self.read_head().await?;
        let body = if let Some(n) = head.content_length {
            while self.buf.len() < n {
                self.fill().await?;
            }
            self.buf.drain(..n).collect()
        } else if head.chunked {
            let mut out = Vec::new();
            while !dechunk(&mut self.buf, &mut out)? {
                self.fill().await?;
            }
            out
        } else {
            return Err(bad("answer without a length"));
        };
        Ok((head.status, body))
    }
}

/// Moves complete chunks from `raw` to `out`; true once the last (empty) chunk was read.
fn dechunk(raw: &mut Vec<u8>, out: &mut Vec<u8>) -> io::Result<bool> {
    let mut at = 0;
    let ended = loop {
        let Some(eol) = find(&raw[at..], b"\r\n") else {
            break false;
        };
        let line = std::str::from_utf8(&raw[at..at + eol]).map_err(|_| bad("chunk size"))?;
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| bad(format!("chunk size {line:?}")))?;
        let start = at + eol + 2;
        if raw.len() < start + size + 2 {
            break false;
        }
        if size == 0 {
            at = start + 2;
            break true;
        }
        out.extend_from_slice(&raw[start..start + size]);
        at = start + size + 2;
    };
    raw.drain(..at);
    Ok(ended)
}

fn get_request(addr: SocketAddr, path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {DASHBOARD_TOKEN}\r\n\r\n"
    )
    .into_bytes()
}

/// Meta's lead ids are 16 digits; `n` makes them distinct.
fn lead_id(n: u64) -> String {
    (1_000_000_000_000_000u64 + n).to_string()
}

/// A signed `POST /webhook` announcing one lead, as Meta sends it.
fn webhook_request(addr: SocketAddr, leadgen_id: &str) -> Vec<u8> {
    let body = json!({"object": "page", "entry": [{"id": PAGE_ID, "time": CREATED, "changes": [
        {"field": "leadgen", "value": {
            "leadgen_id": leadgen_id, "page_id": PAGE_ID, "form_id": FORM_ID,
            "ad_id": AD_ID, "adgroup_id": ADSET_ID, "created_time": CREATED
        }}
    ]}]})
    .to_string();
    let sig = sign(APP_SECRET.as_bytes(), body.as_bytes());
    format!(
        "POST /webhook HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         x-hub-signature-256: {sig}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Posts one webhook and insists on 200.
async fn post_webhook(conn: &mut Conn, req: &[u8]) -> Result<(), String> {
    match conn.roundtrip(req).await {
        Ok((200, _)) => Ok(()),
        Ok((status, body)) => Err(format!(
            "webhook answered {status}: {}",
            String::from_utf8_lossy(&body)
        )),
        Err(e) => Err(format!("webhook failed: {e}")),
    }
}

/// `(count, last_id)` from `/api/leads/count`.
async fn lead_count(conn: &mut Conn, addr: SocketAddr) -> Result<(i64, i64), String> {
    let (status, body) = conn
        .roundtrip(&get_request(addr, "/api/leads/count"))
        .await
        .map_err(|e| format!("count failed: {e}"))?;
    if status != 200 {
        return Err(format!("count answered {status}"));
    }
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    Ok((
        v["count"].as_i64().unwrap_or(-1),
        v["last_id"].as_i64().unwrap_or(-1),
    ))
}

/// One `/api/stream` client.
struct Sse {
    conn: Conn,
    /// The server answers a fresh connection's stream with a body that runs until the close,
    /// and one on a reused connection (routed through hyper) with chunks.
    chunked: bool,
    text: Vec<u8>,
    /// Kernel receive time of the newest bytes read.
    stamp: SystemTime,
}

/// A lead event as a client sees it.
struct Seen {
    id: i64,
    leadgen_id: String,
    /// When its last byte reached this client's socket (kernel receive timestamp).
    at: SystemTime,
}

/// Asks the kernel to stamp every received segment with its arrival time (`SO_TIMESTAMPNS`).
///
/// Arrival is what "the subscriber received the event" means; the moment this process gets
/// round to reading 10,000 sockets is the client's own business (a browser does it on its own
/// machine), and timing that would measure the load generator, not the server.
fn stamp_arrivals(stream: &TcpStream) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket descriptor and a c_int option value of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            &on as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One `recvmsg` into the spare capacity of `buf`: bytes read, and the receive timestamp of
/// the newest of them when the kernel gave one.
fn recv_stamped(fd: RawFd, buf: &mut Vec<u8>) -> io::Result<(usize, Option<SystemTime>)> {
    let spare = buf.spare_capacity_mut();
    let mut iov = libc::iovec {
        iov_base: spare.as_mut_ptr() as *mut libc::c_void,
        iov_len: spare.len(),
    };
    // u64s keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 16];
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: iov points at `spare`, control at `control`, both outliving the call.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: the kernel initialised the first n bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    let mut at = None;
    // SAFETY: the CMSG_* walk stays within msg_controllen, as the kernel filled it.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let t: libc::timespec =
                    std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                at = Some(UNIX_EPOCH + Duration::new(t.tv_sec as u64, t.tv_nsec as u32));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n, at))
}

impl Sse {
    /// Opens the stream; returns once the answer's head is read, which the server sends after
    /// it has subscribed to the fan-out.
    async fn open(addr: SocketAddr) -> Result<Sse, String> {
        let mut conn = Conn::connect(addr)
            .await
            .map_err(|e| format!("stream connect: {e}"))?;
        conn.stream
            .write_all(&get_request(addr, "/api/stream"))
            .await
            .map_err(|e| format!("stream request: {e}"))?;
        let head = conn
            .read_head()
            .await
            .map_err(|e| format!("stream answer: {e}"))?;
        if head.status != 200 || !head.content_type.starts_with("text/event-stream") {
            return Err(format!(
                "stream answered {} {}",
                head.status, head.content_type
            ));
        }
        stamp_arrivals(&conn.stream).map_err(|e| format!("SO_TIMESTAMPNS: {e}"))?;
        Ok(Sse {
            chunked: head.chunked,
            conn,
            text: Vec::with_capacity(1024),
            stamp: SystemTime::now(),
        })
    }

    /// Reads what the socket holds, keeping its arrival time.
    async fn fill(&mut self) -> io::Result<()> {
        self.conn.buf.reserve(4096);
        loop {
            self.conn.stream.readable().await?;
            let fd = self.conn.stream.as_raw_fd();
            let buf = &mut self.conn.buf;
            match self
                .conn
                .stream
                .try_io(Interest::READABLE, || recv_stamped(fd, buf))
            {
                Ok((0, _)) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok((_, at)) => {
                    self.stamp = at.unwrap_or_else(SystemTime::now);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The next `lead` event; comments and the hello are skipped, anything else is an error.
    async fn next_lead(&mut self) -> Result<Seen, String> {
        loop {
            while let Some(end) = find(&self.text, b"\n\n") {
                let block: Vec<u8> = self.text.drain(..end + 2).collect();
                let block = String::from_utf8_lossy(&block);
                let (mut id, mut event, mut data) = (None, "message", "");
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = v.parse::<i64>().ok();
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        event = v;
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = v;
                    }
                }
                match (event, id) {
                    ("lead", Some(id)) => {
                        let leadgen_id = data
                            .split_once("\"leadgen_id\":\"")
                            .and_then(|(_, rest)| rest.split_once('"'))
                            .map(|(v, _)| v.to_string())
                            .unwrap_or_default();
                        return Ok(Seen {
                            id,
                            leadgen_id,
                            at: self.stamp,
                        });
                    }
                    (_, None) if data.is_empty() => {} // hello, retry hint, keep-alive
                    (other, _) => return Err(format!("unexpected stream event {other:?}")),
                }
            }
            if self.chunked {
                let ended =
                    dechunk(&mut self.conn.buf, &mut self.text).map_err(|e| e.to_string())?;
                if ended {
                    return Err("the server ended the stream".into());
                }
            } else {
                self.text.append(&mut self.conn.buf);
            }
            if find(&self.text, b"\n\n").is_none() {
                self.fill().await.map_err(|e| format!("stream read: {e}"))?;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Measurements
// ---------------------------------------------------------------------------------------------

/// p50, p99 and max (nearest rank).
#[derive(Clone, Copy)]
struct Spread {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn spread(mut v: Vec<Duration>) -> Spread {
    assert!(!v.is_empty());
    v.sort();
    let rank = |p: f64| v[((p / 100.0 * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Spread {
        p50: rank(50.0),
        p99: rank(99.0),
        max: *v.last().expect("not empty"),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Hands out distinct lead ids across phases.
struct Ids(AtomicU64);

impl Ids {
    fn next(&self) -> String {
        lead_id(self.0.fetch_add(1, Ordering::Relaxed))
    }
}

/// 1: one subscriber; each lead sent after the previous one arrived.
async fn latency(addr: SocketAddr, ids: &Ids, n: usize) -> Result<Spread, String> {
    let mut sse = Sse::open(addr).await?;
    let mut poster = Conn::connect(addr).await.map_err(|e| e.to_string())?;
    // Warm-up, not timed: the first leads open the worker's pooled Graph connection and the
    // reader connections, which a running server has already done.
    let warmup = 20;
    let mut times = Vec::with_capacity(n);
    for i in 0..warmup + n {
        let leadgen_id = ids.next();
        let req = webhook_request(addr, &leadgen_id);
        let started = SystemTime::now();
        let (posted, seen) = tokio::join!(post_webhook(&mut poster, &req), sse.next_lead());
        posted?;
        let seen = seen?;
        if seen.leadgen_id != leadgen_id {
            return Err(format!(
                "stream sent lead {} (#{}) while {leadgen_id} was expected",
                seen.leadgen_id, seen.id
            ));
        }
        if i >= warmup {
            times.push(seen.at.duration_since(started).unwrap_or_default());
        }
    }
    Ok(spread(times))
}

/// What the subscribers of a fan-out round report.
struct Round {
    /// Subscribers that have not yet seen this round's lead.
    remaining: AtomicUsize,
    /// The latest arrival among them, nanoseconds since the epoch.
    last: AtomicU64,
    done: Notify,
    /// Events beyond one per subscriber and round (must stay 0).
    extra: AtomicUsize,
    /// Why subscribers stopped reading (must stay empty).
    failures: Mutex<Vec<String>>,
}

impl Round {
    fn arrived(&self, at: SystemTime) {
        let nanos = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64;
        // Before counting down, so the last count-down sees every arrival time.
        self.last.fetch_max(nanos, Ordering::AcqRel);
        match self
            .remaining
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| r.checked_sub(1))
        {
            Ok(1) => self.done.notify_one(),
            Ok(_) => {}
            Err(_) => {
                self.extra.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The open streams of the fan-out, each read by its own task.
struct Subscribers {
    round: Arc<Round>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The low-priority runtime the subscriber tasks run on.
    readers: tokio::runtime::Handle,
}

impl Subscribers {
    /// Opens streams until `n` are open, 64 connecting at a time (a burst of 10,000 at once
    /// would only measure the listen backlog).
    async fn grow_to(&mut self, addr: SocketAddr, n: usize) -> Result<(), String> {
        let parallel = Arc::new(Semaphore::new(64));
        let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Result<(), String>>();
        let new = n.saturating_sub(self.tasks.len());
        for _ in 0..new {
            let round = self.round.clone();
            let parallel = parallel.clone();
            let ready = ready_tx.clone();
            self.tasks.push(self.readers.spawn(async move {
                let permit = parallel.acquire_owned().await.expect("open");
                let mut sse = match Sse::open(addr).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                drop(permit);
                let _ = ready.send(Ok(()));
                loop {
                    match sse.next_lead().await {
                        Ok(seen) => round.arrived(seen.at),
                        Err(e) => {
                            round.failures.lock().expect("lock").push(e);
                            return;
                        }
                    }
                }
            }));
        }
        drop(ready_tx);
        for _ in 0..new {
            match ready_rx.recv().await {
                Some(Ok(())) => {}
                Some(Err(e)) => return Err(e),
                None => return Err("a subscriber task vanished".into()),
            }
        }
        Ok(())
    }

    /// Sends one lead and waits until every subscriber has it; the time from sending to the
    /// last arrival.
    async fn one_event(
        &self,
        poster: &mut Conn,
        addr: SocketAddr,
        ids: &Ids,
    ) -> Result<Duration, String> {
        let n = self.tasks.len();
        self.round.last.store(0, Ordering::Release);
        self.round.remaining.store(n, Ordering::Release);
        let req = webhook_request(addr, &ids.next());
        let started = SystemTime::now();
        post_webhook(poster, &req).await?;
        let all = tokio::time::timeout(Duration::from_secs(20), self.round.done.notified()).await;
        if let Some(e) = self.round.failures.lock().expect("lock").first() {
            return Err(format!("a subscriber failed: {e}"));
        }
        if all.is_err() {
            return Err(format!(
                "{} of {n} subscribers still waited for the lead after 20 s",
                self.round.remaining.load(Ordering::Acquire)
            ));
        }
        let extra = self.round.extra.load(Ordering::Relaxed);
        if extra > 0 {
            return Err(format!(
                "subscribers saw {extra} events more than were sent"
            ));
        }
        let last = UNIX_EPOCH + Duration::from_nanos(self.round.last.load(Ordering::Acquire));
        Ok(last.duration_since(started).unwrap_or_default())
    }

    /// Ends every subscriber and returns once their sockets are closed.
    async fn close(self) {
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

struct FanOut {
    n: usize,
    spread: Spread,
    /// Server CPU time per event (all threads, user and kernel).
    cpu: Duration,
}

struct Memory {
    n: usize,
    before: u64,
    after: u64,
}

impl Memory {
    fn per_connection(&self) -> f64 {
        self.after.saturating_sub(self.before) as f64 / self.n as f64
    }
}

/// Resident memory once it has stopped moving (allocations of the opening burst settle).
async fn settled_rss(server: &Server) -> Result<u64, String> {
    let mut last = server.rss()?;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = server.rss()?;
        if now.abs_diff(last) < 64 * 1024 {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

/// 2 and 3: streams opened in steps; memory read with them idle, then `events` leads timed.
async fn fan_out(
    server: &Server,
    ids: &Ids,
    sizes: &[usize],
    events: usize,
    readers: tokio::runtime::Handle,
) -> Result<(Vec<FanOut>, Vec<Memory>), String> {
    let addr = server.addr;
    let mut poster = Conn::connect(addr).await.map_err(|e| e.to_string())?;
    let mut subs = Subscribers {
        round: Arc::new(Round {
            remaining: AtomicUsize::new(0),
            last: AtomicU64::new(0),
            done: Notify::new(),
            extra: AtomicUsize::new(0),
            failures: Mutex::new(Vec::new()),
        }),
        tasks: Vec::new(),
        readers,
    };
    let before = settled_rss(server).await?;
    let mut fan = Vec::new();
    let mut mem = Vec::new();
    for &n in sizes {
        subs.grow_to(addr, n).await?;
        let after = settled_rss(server).await?;
        mem.push(Memory { n, before, after });
        // One untimed lead, so every new stream has been polled once with a lead in flight.
        subs.one_event(&mut poster, addr, ids).await?;
        let mut times = Vec::with_capacity(events);
        let cpu_before = server.cpu();
        for _ in 0..events {
            times.push(subs.one_event(&mut poster, addr, ids).await?);
        }
        fan.push(FanOut {
            n,
            spread: spread(times),
            cpu: server.cpu().saturating_sub(cpu_before) / events as u32,
        });
    }
    subs.close().await;
    Ok((fan, mem))
}

/// Bytes per send in [`bare_sends`]; a lead's frame in this benchmark is about this size.
const BARE_FRAME: usize = 512;

struct Bare {
    threads: usize,
    spread: Spread,
}

/// The kernel's share of a fan-out: one send to each of `n` loopback sockets from as many
/// plain threads as the server has workers, with no server, no runtime and no reader awake.
/// On loopback a send also runs the receiving side's TCP; what the server takes beyond this
/// is its own.
fn bare_sends(n: usize, rounds: usize) -> io::Result<Bare> {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut receivers = Vec::with_capacity(n);
    let mut senders = Vec::with_capacity(n);
    for _ in 0..n {
        receivers.push(std::net::TcpStream::connect(addr)?);
        let (sender, _) = listener.accept()?;
        sender.set_nodelay(true)?;
        senders.push(sender);
    }
    let threads = std::thread::available_parallelism().map_or(2, |t| t.get());
    let frame = [b'x'; BARE_FRAME];
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        std::thread::scope(|scope| {
            let workers: Vec<_> = senders
                .chunks_mut(n.div_ceil(threads).max(1))
                .map(|chunk| {
                    scope.spawn(move || chunk.iter_mut().try_for_each(|s| s.write_all(&frame)))
                })
                .collect();
            workers
                .into_iter()
                .try_for_each(|w| w.join().expect("a send thread panicked"))
        })?;
        times.push(started.elapsed());
        let mut got = [0u8; BARE_FRAME];
        for r in &mut receivers {
            r.read_exact(&mut got)?;
        }
    }
    Ok(Bare {
        threads,
        spread: spread(times),
    })
}

struct Ingest {
    n: usize,
    connections: usize,
    acked: Duration,
    /// Until the dashboard stream had every lead.
    saved: Duration,
    /// Server CPU until every webhook was answered, and until every lead was saved.
    server_cpu_acked: Duration,
    server_cpu: Duration,
}

/// 4: `n` webhooks over `connections` keep-alive connections, as fast as they are answered,
/// with one dashboard stream open that must see every lead once, in id order.
async fn ingest(
    server: &Server,
    ids: &Ids,
    n: usize,
    connections: usize,
) -> Result<Ingest, String> {
    let addr = server.addr;
    let mut counter = Conn::connect(addr).await.map_err(|e| e.to_string())?;
    let (base, _) = lead_count(&mut counter, addr).await?;
    // Requests are built and signed before the clock starts: the client's work is not the
    // server's throughput.
    let mut per_conn: Vec<Vec<Vec<u8>>> = vec![Vec::new(); connections];
    for i in 0..n {
        per_conn[i % connections].push(webhook_request(addr, &ids.next()));
    }
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        conns.push(Conn::connect(addr).await.map_err(|e| e.to_string())?);
    }
    let mut sse = Sse::open(addr).await?;
    let dashboard = tokio::spawn(async move {
        let mut last_id = 0;
        for _ in 0..n {
            let seen = sse.next_lead().await?;
            if seen.id <= last_id {
                return Err(format!(
                    "stream sent #{} after #{last_id}: out of order or twice",
                    seen.id
                ));
            }
            last_id = seen.id;
        }
        Ok::<Instant, String>(Instant::now())
    });

    let cpu_before = server.cpu();
    let started = Instant::now();
    let mut senders = Vec::with_capacity(connections);
    for (mut conn, reqs) in conns.into_iter().zip(per_conn) {
        senders.push(tokio::spawn(async move {
            for req in reqs {
                post_webhook(&mut conn, &req).await?;
            }
            Ok::<(), String>(())
        }));
    }
    for s in senders {
        s.await.map_err(|e| e.to_string())??;
    }
    let acked = started.elapsed();
    // The dashboard stream sees each lead right after its commit, so its last arrival is
    // when the last lead was saved (and shown). Counting rows meanwhile would itself load
    // the server; the count is checked once, at the end.
    let server_cpu_acked = server.cpu().saturating_sub(cpu_before);
    let saved = tokio::time::timeout(Duration::from_secs(120), dashboard)
        .await
        .map_err(|_| "not every lead reached the dashboard stream within 120 s".to_string())?
        .map_err(|e| e.to_string())??
        - started;
    let server_cpu = server.cpu().saturating_sub(cpu_before);
    let (count, _) = lead_count(&mut counter, addr).await?;
    if count != base + n as i64 {
        return Err(format!("{} leads saved for {n} webhooks", count - base));
    }
    Ok(Ingest {
        n,
        connections,
        acked,
        saved,
        server_cpu_acked,
        server_cpu,
    })
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(parent: Option<PathBuf>) -> Result<TempDir, String> {
        let parent = parent.unwrap_or_else(std::env::temp_dir);
        let path = parent.join(format!(
            "leadstream-loadgen-{}-{}",
            std::process::id(),
            leadstream::config::random_token(4)
        ));
        std::fs::create_dir_all(&path).map_err(|e| format!("cannot create {path:?}: {e}"))?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Raises the open-files soft limit to the hard limit: each stream is a file descriptor on
/// both sides. Returns the limit now in force.
fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    lim.rlim_cur
}

/// `(cores, cpu model, memory, kernel)` from /proc.
fn machine() -> (usize, String, String, String) {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| format!("{:.0} GiB RAM", kib as f64 / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown RAM".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| format!("Linux {}", s.trim()))
        .unwrap_or_default();
    (cores, model, mem, kernel)
}

/// The file system holding `dir` (type and device), from the mount table.
fn filesystem_of(dir: &Path) -> String {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && dir.starts_with(f[1])).then(|| (f[1].len(), f[2], f[0]))
        })
        .max_by_key(|(len, _, _)| *len)
        .map(|(_, fs, dev)| format!("{fs} ({dev})"))
        .unwrap_or_else(|| "unknown file system".into())
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "✓"
    } else {
        "✗"
    }
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut groups: Vec<&str> = Vec::new();
    let mut end = digits.len();
    while end > 3 {
        groups.push(&digits[end - 3..end]);
        end -= 3;
    }
    groups.push(&digits[..end]);
    groups.reverse();
    groups.join(",")
}

async fn bench(opts: Opts, readers: tokio::runtime::Handle) -> Result<(), String> {
    let nofile = raise_nofile();
    let most = opts.fanout.iter().copied().max().unwrap_or(0);
    // Per stream: one descriptor here, one in the server; plus the ingest connections.
    let needed = (most + opts.ingest_connections + 200) as u64;
    if nofile < needed {
        return Err(format!(
            "{most} streams need about {needed} open files per process; the limit is {nofile} \
             (raise the hard limit, e.g. `ulimit -Hn {needed}` as root)"
        ));
    }
    let dir = TempDir::new(opts.dir.clone())?;
    let (graph_url, graph_calls) = start_fake_graph().await?;
    let server = Server::spawn(
        &dir.0.join("leads.db"),
        &graph_url,
        dir.0.join("server.log"),
        opts.server_wrapper.as_deref().unwrap_or(""),
    )?;
    let result = measure(&opts, &server, readers).await;
    let result = match result {
        Ok(table) => {
            let stopped = server.stop()?;
            Ok((table, stopped))
        }
        Err(e) => Err(format!(
            "{e}\nlast server log lines:\n{}",
            tail(&server.log, 20)
        )),
    };
    let (table, stopped) = result?;
    let (cores, model, mem, kernel) = machine();
    println!();
    println!(
        "leadstream {} · {} · `make bench` (cargo run --release --bin loadgen)",
        env!("CARGO_PKG_VERSION"),
        chrono::Utc::now().format("%Y-%m-%d"),
    );
    println!(
        "{cores} cores ({model}), {mem}, {kernel}; SQLite synchronous=FULL on {}; \
         server in its own process; clients and fake Graph in another, on the same cores; \
         stream arrivals timed by the kernel (SO_TIMESTAMPNS)",
        filesystem_of(&dir.0)
    );
    println!();
    print!("{table}");
    println!();
    println!(
        "Graph calls answered: {}; server stopped {} after its stdin closed.",
        graph_calls.load(Ordering::Relaxed),
        ms(stopped)
    );
    Ok(())
}

async fn measure(
    opts: &Opts,
    server: &Server,
    readers: tokio::runtime::Handle,
) -> Result<String, String> {
    let addr = server.addr;
    // The child answers as soon as it listens; the database is open by then.
    let mut probe = Conn::connect(addr)
        .await
        .map_err(|e| format!("cannot reach the server: {e}"))?;
    match probe.roundtrip(&get_request(addr, "/healthz")).await {
        Ok((200, _)) => {}
        other => return Err(format!("server not healthy: {:?}", other.map(|r| r.0))),
    }
    drop(probe);
    let ids = Ids(AtomicU64::new(1));

    let mut t = String::from("| measurement | result | target | |\n|---|---|---|---|\n");
    let mut row = |what: String, result: String, target: &str, ok: Option<bool>| {
        let ok = ok.map(mark).unwrap_or("");
        t.push_str(&format!("| {what} | {result} | {target} | {ok} |\n"));
    };
    let spread_text =
        |s: Spread| format!("p50 {} · p99 {} · max {}", ms(s.p50), ms(s.p99), ms(s.max));

    if opts.latency_leads > 0 {
        eprintln!(
            "loadgen: webhook → SSE latency, {} leads one at a time…",
            opts.latency_leads
        );
        let lat = latency(addr, &ids, opts.latency_leads).await?;
        row(
            format!(
                "webhook → SSE, 1 subscriber, {} leads sent one at a time",
                thousands(opts.latency_leads)
            ),
            spread_text(lat),
            "p99 ≤ 10 ms",
            Some(lat.p99 <= Duration::from_millis(10)),
        );
    }

    let sizes: Vec<usize> = opts.fanout.iter().copied().filter(|n| *n > 0).collect();
    if !sizes.is_empty() && opts.fanout_events > 0 {
        eprintln!(
            "loadgen: fan-out to {:?} subscribers, {} events each…",
            sizes, opts.fanout_events
        );
        let (fan, mem) = fan_out(server, &ids, &sizes, opts.fanout_events, readers).await?;
        for f in &fan {
            let big = f.n >= 10_000;
            row(
                format!(
                    "webhook → last of {} subscribers ({} events)",
                    thousands(f.n),
                    opts.fanout_events
                ),
                format!(
                    "{} · server CPU {} per event",
                    spread_text(f.spread),
                    ms(f.cpu)
                ),
                if big { "all served ≤ 100 ms" } else { "" },
                big.then_some(f.spread.max <= Duration::from_millis(100)),
            );
        }
        for m in &mem {
            let per = m.per_connection();
            row(
                format!("server memory per idle stream, {} open", thousands(m.n)),
                format!(
                    "{:.1} KiB (RSS {:.1} → {:.1} MiB)",
                    per / 1024.0,
                    m.before as f64 / 1048576.0,
                    m.after as f64 / 1048576.0
                ),
                "≤ 8 KiB",
                Some(per <= 8.0 * 1024.0),
            );
        }
    }

    if let Some(&most) = sizes.last().filter(|_| opts.fanout_events > 0) {
        // Two descriptors per pair, in this process; the server's sockets are closed by now.
        let pairs = most.min((raise_nofile() as usize).saturating_sub(256) / 2);
        eprintln!("loadgen: bare loopback sends to {pairs} sockets, for comparison…");
        let rounds = opts.fanout_events;
        let bare = tokio::task::spawn_blocking(move || bare_sends(pairs, rounds))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("bare sends: {e}"))?;
        row(
            format!(
                "for comparison, no server: one {BARE_FRAME}-byte send to each of {} loopback \
                 sockets from {} plain threads ({rounds} rounds)",
                thousands(pairs),
                bare.threads
            ),
            spread_text(bare.spread),
            "",
            None,
        );
    }

    if opts.ingest > 0 {
        eprintln!(
            "loadgen: ingest of {} webhooks over {} connections…",
            opts.ingest, opts.ingest_connections
        );
        let ing = ingest(server, &ids, opts.ingest, opts.ingest_connections).await?;
        let rate = ing.n as f64 / ing.acked.as_secs_f64();
        row(
            format!(
                "ingest: {} signed webhooks, 1 new lead each, {} connections",
                thousands(ing.n),
                ing.connections
            ),
            format!("{} acknowledged/s (all 200)", thousands(rate as usize)),
            "≥ 5,000/s",
            Some(rate >= 5000.0),
        );
        row(
            "ingest: until every lead is saved (Graph fetched, committed, streamed)".into(),
            format!(
                "{:.2} s after the first webhook ({} leads/s), each once, in order",
                ing.saved.as_secs_f64(),
                thousands((ing.n as f64 / ing.saved.as_secs_f64()) as usize),
            ),
            "no loss, no duplicate",
            Some(true),
        );
        let per = |d: Duration| d.as_secs_f64() * 1e6 / ing.n as f64;
        row(
            "ingest: server CPU per lead".into(),
            format!(
                "{:.0} µs until acknowledged, {:.0} µs in all (Graph fetch, save, stream)",
                per(ing.server_cpu_acked),
                per(ing.server_cpu)
            ),
            "",
            None,
        );
    }
    Ok(t)
}
