//! The real `leadstream` binary as a child process, for what only a process shows: a `kill -9`,
//! and a start with no settings at all.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Settings leadstream reads from the environment; none is inherited from the test's own.
const SETTINGS: [&str; 17] = [
    "LISTEN_ADDR",
    "LEADS_DB",
    "DATABASE_URL",
    "DATABASE_LISTEN_URL",
    "LEADSTREAM_JOB_LEASE_MS",
    "DASHBOARD_TOKEN",
    "LEADSTREAM_DEMO",
    "PUBLIC_URL",
    "TRUST_PROXY_HEADER",
    "MAX_CONNECTIONS",
    "MAX_CONNECTIONS_PER_IP",
    "LIMIT_LOOPBACK",
    "IDLE_TIMEOUT",
    "HEAD_TIMEOUT",
    "BODY_TIMEOUT",
    "WRITE_TIMEOUT",
    "BODY_BUDGET_MIB",
];

/// The settings of a binary that asks the fake Graph at `graph_url` for leads, with the test
/// app's secrets and a free port; add the database (`LEADS_DB` or `DATABASE_URL`).
pub fn meta_env(graph_url: &str) -> Vec<(&'static str, &str)> {
    vec![
        ("LISTEN_ADDR", "127.0.0.1:0"),
        ("META_APP_SECRET", super::APP_SECRET),
        ("META_WEBHOOK_VERIFY_TOKEN", super::VERIFY_TOKEN),
        ("META_PAGE_ACCESS_TOKEN", super::PAGE_TOKEN),
        ("META_GRAPH_URL", graph_url),
        ("DASHBOARD_TOKEN", super::DASHBOARD_TOKEN),
        ("RUST_LOG", "info"),
    ]
}

/// The binary, killed (SIGKILL) when dropped, whatever happens in the test. Its stdout and
/// stderr are read to the end by threads of their own, so it never blocks on a full pipe.
pub struct Process {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Process {
    /// Starts the binary in `dir` (so no stray `.env` is read) with `env` as its only
    /// leadstream settings.
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Process {
        Self::start_with_args(dir, env, &[])
    }

    /// Like [`Process::start`], with command-line arguments.
    pub fn start_with_args(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Process {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_leadstream"));
        cmd.args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, _) in std::env::vars() {
            if k.starts_with("META_") || SETTINGS.contains(&k.as_str()) {
                cmd.env_remove(k);
            }
        }
        cmd.envs(env.iter().copied());
        let mut child = cmd.spawn().expect("start the leadstream binary");
        let stdout = lines_of(child.stdout.take().unwrap());
        let stderr = lines_of(child.stderr.take().unwrap());
        Process {
            child,
            stdout,
            stderr,
        }
    }

    /// Waits for the "listening on ADDR" log line; returns `http://ADDR`. Panics with the log
    /// if the process exits first or says nothing within 10 s.
    pub async fn base_url(&mut self) -> String {
        let addr = self
            .wait_for(
                &self.stderr.clone(),
                "listening on ",
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|| panic!("no 'listening on' line: {:?}", self.log()));
        format!("http://{}", addr.trim())
    }

    /// The first line the process printed on stdout, waiting up to `timeout` for it.
    pub async fn first_stdout_line(&mut self, timeout: Duration) -> Option<String> {
        self.wait_for(&self.stdout.clone(), "", timeout).await
    }

    /// True once a log line contains `needle`, waiting up to `timeout` (stderr is read by
    /// another thread, which may not have caught up yet).
    pub async fn logged(&mut self, needle: &str, timeout: Duration) -> bool {
        self.wait_for(&self.stderr.clone(), needle, timeout)
            .await
            .is_some()
    }

    /// Every log line so far (stderr).
    pub fn log(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits up to `timeout` for the process to exit by itself; its exit code, `None` if it
    /// still runs (or was ended by a signal).
    pub async fn exit_code(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every line printed on stdout so far.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// The rest of the first line of `lines` that contains `needle`. Panics if the process
    /// exits before it appears.
    async fn wait_for(
        &mut self,
        lines: &Mutex<Vec<String>>,
        needle: &str,
        timeout: Duration,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = lines
                .lock()
                .unwrap()
                .iter()
                .find_map(|l| l.split_once(needle).map(|(_, rest)| rest.to_string()));
            if found.is_some() {
                return found;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("leadstream exited with {status}: {:?}", self.log());
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Collects the lines of `pipe` as they come, on a thread of its own.
fn lines_of(pipe: impl Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

/// `GET url` with the dashboard token, as JSON: for a running binary, or any base URL.
pub async fn get_json_at(client: &reqwest::Client, url: &str) -> serde_json::Value {
    client
        .get(url)
        .bearer_auth(super::DASHBOARD_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Adds a webhook destination to `receiver_url` through the server at `base`; the answer (with
/// the destination's `secret`, shown this once).
pub async fn add_webhook_destination(
    client: &reqwest::Client,
    base: &str,
    receiver_url: &str,
) -> serde_json::Value {
    client
        .post(format!("{base}/api/destinations"))
        .bearer_auth(super::DASHBOARD_TOKEN)
        .json(&serde_json::json!({"kind": "webhook", "url": receiver_url}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
