//! The run: set the machine up, start the server, measure, print the table.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::client::{get_request, Conn};
use crate::fake_graph::start_fake_graph;
use crate::measure::{bare_sends, fan_out, ingest, latency, ms, Ids, Spread, BARE_FRAME};
use crate::server::{tail, Server};
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

/// Raises the open-files soft limit to the hard limit: each stream is a file descriptor on
/// both sides. Returns the limit now in force.
pub(crate) fn raise_nofile() -> u64 {
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

pub(crate) async fn bench(opts: Opts, readers: tokio::runtime::Handle) -> Result<(), String> {
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
    let database = match &opts.database_url {
        Some(url) => Some(RunDatabase::create(url).await?),
        None => None,
    };
    if opts.instances > 1 && database.is_none() {
        return Err(
            "--instances above 1 needs --database-url (several instances share PostgreSQL)".into(),
        );
    }
    let mut servers = Vec::new();
    for i in 0..opts.instances.max(1) {
        servers.push(Server::spawn(
            &dir.0.join("leads.db"),
            database.as_ref().map(|d| d.url.as_str()),
            &graph_url,
            dir.0.join(format!("server{i}.log")),
            opts.server_wrapper.as_deref().unwrap_or(""),
        )?);
    }
    let result = measure(&opts, &servers, readers).await;
    let result = match result {
        Ok(table) => {
            let mut stopped = Duration::ZERO;
            for server in servers {
                stopped = stopped.max(server.stop()?);
            }
            Ok((table, stopped))
        }
        Err(e) => Err(format!(
            "{e}\nlast server log lines:\n{}",
            tail(&servers[0].log, 20)
        )),
    };
    if let Some(d) = database {
        d.drop_it().await;
    }
    let (table, stopped) = result?;
    let (cores, model, mem, kernel) = machine();
    println!();
    println!(
        "leadstream {} · {} · `make bench` (cargo run --release -p loadgen)",
        env!("CARGO_PKG_VERSION"),
        chrono::Utc::now().format("%Y-%m-%d"),
    );
    let store = match &opts.database_url {
        Some(_) => format!(
            "PostgreSQL, {} instance{} on one database",
            opts.instances,
            if opts.instances == 1 { "" } else { "s" }
        ),
        None => format!("SQLite synchronous=FULL on {}", filesystem_of(&dir.0)),
    };
    println!(
        "{cores} cores ({model}), {mem}, {kernel}; {store}; \
         each server in its own process; clients and fake Graph in another, on the same cores; \
         stream arrivals timed by the kernel (SO_TIMESTAMPNS)"
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
    servers: &[Server],
    readers: tokio::runtime::Handle,
) -> Result<String, String> {
    let server = &servers[0];
    let addr = server.addr;
    // The child answers as soon as it listens; the database is open by then.
    for s in servers {
        let mut probe = Conn::connect(s.addr)
            .await
            .map_err(|e| format!("cannot reach the server: {e}"))?;
        match probe.roundtrip(&get_request(s.addr, "/healthz")).await {
            Ok((200, _)) => {}
            other => return Err(format!("server not healthy: {:?}", other.map(|r| r.0))),
        }
    }
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
        let lat = latency(addr, addr, &ids, opts.latency_leads).await?;
        row(
            format!(
                "webhook → SSE, 1 subscriber, {} leads sent one at a time",
                thousands(opts.latency_leads)
            ),
            spread_text(lat),
            "p99 ≤ 10 ms",
            Some(lat.p99 <= Duration::from_millis(10)),
        );
        if let Some(other) = servers.get(1) {
            eprintln!("loadgen: the same, webhooks to one instance, stream on the other…");
            let lat = latency(addr, other.addr, &ids, opts.latency_leads).await?;
            row(
                format!(
                    "webhook on one instance → SSE on the other, {} leads one at a time",
                    thousands(opts.latency_leads)
                ),
                spread_text(lat),
                "p99 ≤ 15 ms",
                Some(lat.p99 <= Duration::from_millis(15)),
            );
        }
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
        let ing = ingest(servers, &ids, opts.ingest, opts.ingest_connections).await?;
        let rate = ing.n as f64 / ing.acked.as_secs_f64();
        // PostgreSQL's target: a round trip to another process per commit, not a local file.
        let target = if opts.database_url.is_some() {
            3000.0
        } else {
            5000.0
        };
        row(
            format!(
                "ingest: {} signed webhooks, 1 new lead each, {} connections{}",
                thousands(ing.n),
                ing.connections,
                if servers.len() > 1 {
                    " split over the instances"
                } else {
                    ""
                }
            ),
            format!("{} acknowledged/s (all 200)", thousands(rate as usize)),
            &format!("≥ {}/s", thousands(target as usize)),
            Some(rate >= target),
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
