//! The run: set the machine up, start the server, measure, print the table.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::client::{get_request, Conn};
use crate::fake_graph::start_fake_graph;
use crate::fanout::{fan_out, Memory};
use crate::flood::{flood, Flood};
use crate::measure::{bare_sends, ingest, latency, ms, Ids, Spread, BARE_FRAME};
use crate::nchan::Nchan;
use crate::server::{tail, Server};
use crate::sse::Via;
use crate::Opts;

/// A directory removed when dropped.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(parent: Option<PathBuf>) -> Result<TempDir, String> {
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

/// Raises the open-files soft limit to the hard limit (as the server does at start): each
/// stream is a file descriptor on both sides. When that is less than `needed`, raises the hard
/// limit too, which root may do (the server and the peer inherit it). Returns the limit now in
/// force.
pub(crate) fn raise_nofile(needed: u64) -> u64 {
    let now = leadstream::http::limits::raise_fd_limit().unwrap_or(0);
    if now >= needed {
        return now;
    }
    let wanted = libc::rlimit {
        rlim_cur: needed as libc::rlim_t,
        rlim_max: needed as libc::rlim_t,
    };
    // SAFETY: setrlimit only reads the struct passed.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } == 0 {
        needed
    } else {
        now
    }
}

/// `(cores, cpu model, memory, kernel)` from /proc.
pub(crate) fn machine() -> (usize, String, String, String) {
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
pub(crate) fn filesystem_of(dir: &Path) -> String {
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

pub(crate) fn mark(ok: bool) -> &'static str {
    if ok {
        "✓"
    } else {
        "✗"
    }
}

pub(crate) fn thousands(n: usize) -> String {
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

/// The printed table: each row with leadstream's figure and, where the peer was measured in
/// the same run, its figure and ours divided by it.
#[derive(Default)]
pub(crate) struct Table(String);

impl Table {
    pub(crate) fn row(
        &mut self,
        what: String,
        ours: String,
        peer: Option<(String, f64)>,
        target: &str,
        ok: Option<bool>,
    ) {
        let (peer, ratio) = match peer {
            Some((text, ratio)) => (text, format!("{ratio:.2}×")),
            None => (String::new(), String::new()),
        };
        let ok = ok.map(mark).unwrap_or("");
        self.0.push_str(&format!(
            "| {what} | {ours} | {peer} | {ratio} | {target} | {ok} |\n"
        ));
    }
}

pub(crate) fn spread_text(s: Spread) -> String {
    format!("p50 {} · p99 {} · max {}", ms(s.p50), ms(s.p99), ms(s.max))
}

fn kib(m: &Memory) -> String {
    format!(
        "{:.1} KiB (RSS {:.1} → {:.1} MiB)",
        m.per_stream() / 1024.0,
        m.before as f64 / 1048576.0,
        m.after as f64 / 1048576.0
    )
}

pub(crate) async fn bench(opts: Opts, readers: tokio::runtime::Handle) -> Result<(), String> {
    let most = opts.fanout.iter().copied().max().unwrap_or(0);
    // Per stream: one descriptor here, one in the server; plus the ingest connections. (The
    // fan-out keeps the peer's streams open beside leadstream's where twice as many fit.)
    let needed = (most + opts.ingest_connections.max(opts.flood) + 200) as u64;
    let nofile = raise_nofile(needed);
    if nofile < needed {
        return Err(format!(
            "{most} streams need about {needed} open files per process; the limit is {nofile} \
             (raise the hard limit, e.g. `ulimit -Hn {needed}` as root)"
        ));
    }
    let dir = TempDir::new(opts.dir.clone())?;
    let (graph_url, graph_calls) = start_fake_graph().await?;
    let database = match &opts.database_url {
        Some(url) => Some(RunDatabase::create(url).await?),
        None => None,
    };
    if opts.instances > 1 && database.is_none() {
        return Err("--instances above 1 needs --database-url (instances share PostgreSQL)".into());
    }
    let database_url = database.as_ref().map(|d| d.url.clone());
    // The measured servers use the database; the flood's keeps to a file of its own.
    let server_on = |name: &str, database_url: Option<&str>| {
        Server::spawn(
            &dir.0.join(format!("{name}.db")),
            database_url,
            &graph_url,
            dir.0.join(format!("{name}.log")),
            opts.server_wrapper.as_deref().unwrap_or(""),
        )
    };
    let ids = Ids(AtomicU64::new(1));
    let mut table = Table::default();
    let mut notes = Vec::new();

    let server = |name: &str| server_on(name, None);
    let main = server_on("leads", database_url.as_deref())?;
    let others = (1..opts.instances.max(1))
        .map(|i| server_on(&format!("leads{i}"), database_url.as_deref()))
        .collect::<Result<Vec<_>, _>>()?;
    let measured = measure(
        &opts, &main, &others, &ids, &readers, &mut table, &mut notes,
    )
    .await;
    let stopped = match measured {
        Ok(()) => {
            let mut stopped = main.stop()?;
            for other in others {
                stopped = stopped.max(other.stop()?);
            }
            stopped
        }
        Err(e) => {
            return Err(format!(
                "{e}\nlast server log lines:\n{}",
                tail(&main.log, 20)
            ))
        }
    };
    if let Some(d) = database {
        d.drop_it().await;
    }
    if opts.flood > 0 {
        eprintln!("loadgen: a flood of {} connections…", opts.flood);
        let flooded = server("flood")?;
        let window = Duration::from_secs(opts.flood_window);
        match flood(&flooded, &ids, opts.flood, window).await {
            Ok(f) => flood_rows(&mut table, &f, window),
            Err(e) => {
                return Err(format!(
                    "{e}\nlast server log lines:\n{}",
                    tail(&flooded.log, 20)
                ))
            }
        }
        flooded.stop()?;
    }

    let (cores, model, mem, kernel) = machine();
    println!();
    println!(
        "leadstream {} · {} · `make bench` (cargo run --release -p loadgen)",
        env!("CARGO_PKG_VERSION"),
        chrono::Utc::now().format("%Y-%m-%d"),
    );
    let store = match &opts.database_url {
        Some(_) => format!(
            "PostgreSQL, {} instance{} on one database (each in its own process)",
            opts.instances,
            if opts.instances == 1 { "" } else { "s" }
        ),
        None => format!(
            "SQLite synchronous=FULL on {}; server in its own process",
            filesystem_of(&dir.0)
        ),
    };
    println!(
        "{cores} cores ({model}), {mem}, {kernel}; {store}; clients and fake Graph in another \
         process, on the same cores; stream arrivals timed by the kernel (SO_TIMESTAMPNS)"
    );
    println!();
    println!("| measurement | leadstream | Nchan, same client | ratio | target | |");
    println!("|---|---|---|---|---|---|");
    print!("{}", table.0);
    println!();
    for note in notes {
        println!("{note}");
    }
    println!(
        "Graph calls answered: {}; server stopped {} after its stdin closed.",
        graph_calls.load(Ordering::Relaxed),
        ms(stopped)
    );
    Ok(())
}

fn flood_rows(t: &mut Table, f: &Flood, window: Duration) {
    let what = |s: &str| {
        format!(
            "during a flood of {} held connections: {s}",
            thousands(f.held)
        )
    };
    let ok = f.failures.is_empty() && f.streamed.0 == f.streamed.1;
    t.row(
        what("`/healthz`, fresh connection each"),
        spread_text(f.healthz),
        None,
        "answered",
        Some(f.failures.is_empty()),
    );
    t.row(
        what("signed webhook, fresh connection each"),
        format!(
            "{} · {} of {} leads on the dashboard stream",
            spread_text(f.webhook),
            f.streamed.0,
            f.streamed.1
        ),
        None,
        "all 200, all streamed",
        Some(ok),
    );
    t.row(
        what(&format!("server memory over {} s", window.as_secs())),
        format!(
            "peak RSS {:.1} MiB ({:.1} MiB before)",
            f.rss_peak as f64 / 1048576.0,
            f.rss_before as f64 / 1048576.0
        ),
        None,
        "",
        None,
    );
    t.row(
        what("closed by the server's timeouts"),
        match f.cleared {
            Some(d) => format!("all, {:.0} s after they were opened", d.as_secs_f64()),
            None => "not all within 90 s".into(),
        },
        None,
        "all",
        Some(f.cleared.is_some()),
    );
    for e in f.failures.iter().take(5) {
        eprintln!("loadgen: flood probe failed: {e}");
    }
}

/// Everything but the flood, on `server` (and the peer); `others` are more instances on the
/// same PostgreSQL database.
/// The run's own database on the PostgreSQL server of `--database-url`.
pub(crate) struct RunDatabase {
    admin: tokio_postgres::Client,
    name: String,
    pub(crate) url: String,
}

impl RunDatabase {
    async fn create(server: &str) -> Result<RunDatabase, String> {
        let (admin, connection) = tokio_postgres::connect(server, tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("cannot connect to {server}: {e}"))?;
        tokio::spawn(connection);
        let name = format!("loadgen_{}", leadstream::config::random_token(4));
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(|e| format!("CREATE DATABASE: {e}"))?;
        let url = if server.starts_with("postgres://") || server.starts_with("postgresql://") {
            let mut u = url::Url::parse(server).map_err(|e| e.to_string())?;
            u.set_path(&format!("/{name}"));
            u.to_string()
        } else {
            format!("{server} dbname={name}")
        };
        Ok(RunDatabase { admin, name, url })
    }

    async fn drop_it(self) {
        let _ = self
            .admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await;
    }
}

pub(crate) async fn measure(
    opts: &Opts,
    server: &Server,
    others: &[Server],
    ids: &Ids,
    readers: &tokio::runtime::Handle,
    t: &mut Table,
    notes: &mut Vec<String>,
) -> Result<(), String> {
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

    if opts.latency_leads > 0 {
        eprintln!(
            "loadgen: webhook → SSE latency, {} leads one at a time…",
            opts.latency_leads
        );
        let lat = latency(addr, addr, ids, opts.latency_leads).await?;
        // With PostgreSQL every lead also goes through the feed (a NOTIFY, then a read), on
        // any instance: the several-instances target holds for it too.
        let limit = if opts.database_url.is_some() { 15 } else { 5 };
        t.row(
            format!(
                "webhook → SSE, 1 subscriber ({}), {} leads sent one at a time",
                Via::Browser.words(),
                thousands(opts.latency_leads)
            ),
            spread_text(lat),
            None,
            &format!("p99 ≤ {limit} ms"),
            Some(lat.p99 <= Duration::from_millis(limit)),
        );
        if opts.forward > 0 {
            eprintln!(
                "loadgen: the same, {} leads, every other block of them also forwarded to a webhook…",
                opts.forward
            );
            let f = crate::forward::forwarding(addr, ids, opts.forward).await?;
            t.row(
                format!(
                    "webhook → SSE, {} leads forwarded to a webhook on loopback as they were timed",
                    thousands(f.each)
                ),
                spread_text(f.latency),
                None,
                "p99 within 1 ms of the next row's",
                Some(f.latency.p99 <= f.without.p99 + Duration::from_millis(1)),
            );
            t.row(
                format!(
                    "webhook → SSE, {} leads not forwarded, timed in blocks between those",
                    thousands(f.each)
                ),
                spread_text(f.without),
                None,
                "",
                None,
            );
            t.row(
                format!(
                    "forwarded: {} deliveries; the slowest block, first lead sent → last delivered",
                    thousands(f.delivered)
                ),
                ms(f.block_delivered),
                None,
                "",
                None,
            );
        }
        if let Some(other) = others.first() {
            eprintln!("loadgen: the same, webhooks to one instance, the stream on another…");
            let lat = latency(addr, other.addr, ids, opts.latency_leads).await?;
            t.row(
                format!(
                    "webhook on one instance → SSE on another, {} leads one at a time",
                    thousands(opts.latency_leads)
                ),
                spread_text(lat),
                None,
                "p99 ≤ 15 ms",
                Some(lat.p99 <= Duration::from_millis(15)),
            );
        }
    }

    let sizes: Vec<usize> = opts.fanout.iter().copied().filter(|n| *n > 0).collect();
    if !sizes.is_empty() {
        fan_out_rows(opts, server, ids, &sizes, readers, t, notes).await?;
    }

    if let Some(&most) = sizes.last().filter(|_| opts.fanout_events > 0) {
        // Two descriptors per pair, in this process; the server's sockets are closed by now.
        let pairs = most.min((raise_nofile(0) as usize).saturating_sub(256) / 2);
        eprintln!("loadgen: bare loopback sends to {pairs} sockets, for comparison…");
        let rounds = opts.fanout_events;
        let bare = tokio::task::spawn_blocking(move || bare_sends(pairs, rounds))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("bare sends: {e}"))?;
        t.row(
            format!(
                "for comparison, no server: one {BARE_FRAME}-byte send to each of {} loopback \
                 sockets from {} plain threads ({rounds} rounds)",
                thousands(pairs),
                bare.threads
            ),
            spread_text(bare.spread),
            None,
            "",
            None,
        );
    }

    if opts.ingest > 0 {
        eprintln!(
            "loadgen: ingest of {} webhooks over {} connections…",
            opts.ingest, opts.ingest_connections
        );
        let servers: Vec<&Server> = std::iter::once(server).chain(others).collect();
        let ing = ingest(&servers, ids, opts.ingest, opts.ingest_connections).await?;
        let rate = ing.n as f64 / ing.acked.as_secs_f64();
        // PostgreSQL's target: each commit is a round trip to another process, not a file.
        let target = if opts.database_url.is_some() {
            3000.0
        } else {
            5000.0
        };
        t.row(
            format!(
                "ingest: {} signed webhooks, 1 new lead each, {} keep-alive connections{}",
                thousands(ing.n),
                ing.connections,
                if servers.len() > 1 {
                    ", split over the instances"
                } else {
                    ""
                }
            ),
            format!("{} acknowledged/s (all 200)", thousands(rate as usize)),
            None,
            &format!("≥ {}/s", thousands(target as usize)),
            Some(rate >= target),
        );
        t.row(
            "ingest: until every lead is saved (Graph fetched, committed, streamed)".into(),
            format!(
                "{:.2} s after the first webhook ({} leads/s), each once, in order",
                ing.saved.as_secs_f64(),
                thousands((ing.n as f64 / ing.saved.as_secs_f64()) as usize),
            ),
            None,
            "no loss, no duplicate",
            Some(true),
        );
        let per = |d: Duration| d.as_secs_f64() * 1e6 / ing.n as f64;
        t.row(
            "ingest: server CPU per lead".into(),
            format!(
                "{:.0} µs until acknowledged, {:.0} µs in all (Graph fetch, save, stream)",
                per(ing.server_cpu_acked),
                per(ing.server_cpu)
            ),
            None,
            "",
            None,
        );
    }
    crate::ops::ops_rows(addr, opts.scrapes, opts.erase, t).await
}

/// Fan-out and memory per idle stream: leadstream on browser-style connections (timed), the
/// peer the same way beside it, and leadstream on fresh connections (memory only, on a
/// server of its own so the first run's freed memory does not flatter it).
async fn fan_out_rows(
    opts: &Opts,
    server: &Server,
    ids: &Ids,
    sizes: &[usize],
    readers: &tokio::runtime::Handle,
    t: &mut Table,
    notes: &mut Vec<String>,
) -> Result<(), String> {
    let events = opts.fanout_events;
    let nchan = Nchan::start(opts.dir.clone(), opts.nchan_workers);
    let (fan, mem, peer) = match &nchan {
        Ok(nchan) => {
            eprintln!(
                "loadgen: fan-out to {sizes:?} browser-style subscribers of leadstream and of \
                 Nchan ({} worker processes), {events} events each, alternating…",
                nchan.workers
            );
            let mut both = fan_out(
                &[server, nchan],
                Via::Browser,
                ids,
                sizes,
                events,
                readers.clone(),
            )
            .await?
            .into_iter();
            let (fan, mem) = both.next().expect("leadstream's");
            notes.push(format!(
                "Nchan: nginx {} with libnginx-mod-nchan, {} worker processes, one channel, \
                 EventSource subscribers from the newest message; its time is from the publishing \
                 `POST` to the last subscriber, leadstream's from the webhook (signature, two \
                 commits, the Graph fetch, then the push). Both sets of streams are open at once \
                 and the events alternate between the servers, so both see the same minute of \
                 the machine, where this process may open {} descriptors (sizes above half of \
                 that: one server after the other). Memory: master and workers.",
                nginx_version(),
                nchan.workers,
                thousands(raise_nofile(0) as usize)
            ));
            (fan, mem, both.next())
        }
        Err(why) => {
            eprintln!(
                "loadgen: fan-out to {sizes:?} browser-style subscribers, {events} events each…"
            );
            notes.push(format!("Nchan rows skipped: {why}."));
            let (fan, mem) = fan_out(&[server], Via::Browser, ids, sizes, events, readers.clone())
                .await?
                .pop()
                .expect("leadstream's");
            (fan, mem, None)
        }
    };
    drop(nchan);
    for (i, f) in fan.iter().enumerate() {
        let big = f.n >= 10_000;
        let theirs = peer.as_ref().and_then(|(pf, _)| pf.get(i));
        let target = if big {
            "p99 ≤ 100 ms"
        } else {
            "p99 ≤ Nchan's"
        };
        let ok = if big {
            Some(f.spread.p99 <= Duration::from_millis(100))
        } else {
            theirs.map(|p| f.spread.p99 <= p.spread.p99)
        };
        t.row(
            format!(
                "webhook → last of {} subscribers, {} ({events} events)",
                thousands(f.n),
                Via::Browser.words()
            ),
            format!(
                "{} · server CPU {} per event",
                spread_text(f.spread),
                ms(f.cpu)
            ),
            theirs.map(|p| {
                (
                    format!("{} · CPU {} per event", spread_text(p.spread), ms(p.cpu)),
                    f.spread.p99.as_secs_f64() / p.spread.p99.as_secs_f64(),
                )
            }),
            target,
            ok,
        );
    }
    // A change's way out is the new lead's, from the commit on: the same range is expected.
    for f in &fan {
        let Some((update, cpu)) = f.update else {
            continue;
        };
        let ratio = update.p99.as_secs_f64() / f.spread.p99.as_secs_f64().max(1e-9);
        t.row(
            format!(
                "update → last of {} subscribers, {} ({events} changes)",
                thousands(f.n),
                Via::Browser.words()
            ),
            format!("{} · server CPU {} per event", spread_text(update), ms(cpu)),
            None,
            "p99 ≤ 2 × the new lead's",
            Some(ratio <= 2.0),
        );
    }
    for (i, m) in mem.iter().enumerate() {
        let theirs = peer.as_ref().and_then(|(_, pm)| pm.get(i));
        t.row(
            format!(
                "server memory per idle stream, {} open, {}",
                thousands(m.n),
                Via::Browser.words()
            ),
            kib(m),
            theirs.map(|p| (kib(p), m.per_stream() / p.per_stream())),
            "≤ 8 KiB",
            Some(m.per_stream() <= 8.0 * 1024.0),
        );
    }

    eprintln!("loadgen: memory per idle stream on fresh connections…");
    let fresh = Server::spawn(
        &server.log.with_file_name("fresh.db"),
        None,
        &server.graph_url,
        server.log.with_file_name("fresh.log"),
        "",
    )?;
    let (_, mem) = fan_out(&[&fresh], Via::Fresh, ids, sizes, 0, readers.clone())
        .await?
        .pop()
        .expect("one server's");
    fresh.stop()?;
    for m in &mem {
        t.row(
            format!(
                "server memory per idle stream, {} open, {}",
                thousands(m.n),
                Via::Fresh.words()
            ),
            kib(m),
            None,
            "",
            None,
        );
    }
    Ok(())
}

/// nginx's version, as it reports it.
fn nginx_version() -> String {
    std::process::Command::new("nginx")
        .arg("-v")
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stderr)
                .trim()
                .trim_start_matches("nginx version: nginx/")
                .to_string()
        })
        .unwrap_or_else(|| "?".into())
}
