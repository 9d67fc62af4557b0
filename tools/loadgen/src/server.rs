//! The server under test: this same executable re-run as `loadgen serve`, in a process of
//! its own, and what the parent reads of it (address, memory, CPU time).

use std::io::{self, BufRead, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode, Stdio};
use std::time::{Duration, Instant};

use leadstream::config::{Limits, MetaSettings, Secret, Settings, Tuning};

use crate::{APP_SECRET, DASHBOARD_TOKEN, LISTENING, PAGE_ID, PAGE_TOKEN, VERIFY_TOKEN};

/// `loadgen serve`: leadstream as `src/main.rs` runs it, configured through the environment by
/// the parent. Production tuning, except that the periodic sync with Meta is off (it would
/// only add calls the fake Graph does not model to the numbers).
pub(crate) fn serve_child() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let env = |k: &str| std::env::var(k).map_err(|_| format!("{k} is not set"));
    let settings = match (env("LOADGEN_DB"), env("LOADGEN_GRAPH_URL")) {
        (Ok(db), Ok(graph_url)) => Settings {
            listen: "127.0.0.1:0".parse().expect("address"),
            db: PathBuf::from(db),
            // Set: PostgreSQL instead of the SQLite file (see `--database-url`).
            database_url: std::env::var("LOADGEN_DATABASE_URL").ok().map(Secret::new),
            database_listen_url: None,
            meta: Some(MetaSettings {
                app_secret: Secret::new(APP_SECRET),
                verify_token: Secret::new(VERIFY_TOKEN),
                page_access_token: Secret::new(PAGE_TOKEN),
                page_ids: vec![PAGE_ID.to_string()],
                graph_url,
            }),
            dashboard_token: Secret::new(DASHBOARD_TOKEN),
            metrics_token: None,
            token_generated: false,
            demo: false,
            demo_reason: None,
            public_url: None,
            trust_proxy_header: None,
            smtp: None,
            limits: Limits::default(),
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
pub(crate) async fn stdin_closed() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
        let _ = tx.send(());
    });
    let _ = rx.await;
}

/// The child process and how to reach it.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    pub(crate) log: PathBuf,
    /// The fake Graph it calls, for another server beside it.
    pub(crate) graph_url: String,
}

impl Server {
    /// `wrapper`: a command line the server runs under (a profiler), or empty.
    pub(crate) fn spawn(
        db: &Path,
        database_url: Option<&str>,
        graph_url: &str,
        log: PathBuf,
        wrapper: &str,
    ) -> Result<Server, String> {
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
        if let Some(url) = database_url {
            cmd.env("LOADGEN_DATABASE_URL", url);
        }
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
        Ok(Server {
            child,
            addr,
            log,
            graph_url: graph_url.to_string(),
        })
    }

    /// Resident memory of the server process, in bytes.
    pub(crate) fn rss(&self) -> Result<u64, String> {
        proc_rss(self.child.id())
    }

    /// User + system CPU time the server has used so far.
    pub(crate) fn cpu(&self) -> Duration {
        proc_cpu(self.child.id())
    }

    /// Stops the server as its stdin closing tells it to; returns how long it took.
    pub(crate) fn stop(mut self) -> Result<Duration, String> {
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

pub(crate) fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Resident memory of process `pid`, in bytes.
pub(crate) fn proc_rss(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("cannot read the status of process {pid}: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| "no VmRSS line".to_string())
}

/// User + system CPU time process `pid` has used so far.
pub(crate) fn proc_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the ")" that closes the command name; utime and stime are 14th and 15th.
    let after = stat.rsplit_once(')').map(|(_, s)| s).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis((ticks(11) + ticks(12)) * 1000 / hz)
}
