//! Demo mode, as a newcomer meets it: the real binary with no Meta settings and no token.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::SseClient;

/// Kills the child when the test ends, whatever happens.
struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn with_no_settings_the_binary_prints_a_url_and_streams_demo_leads() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_leadstream"));
    cmd.current_dir(dir.path())
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("META_")
            || k == "DASHBOARD_TOKEN"
            || k == "LEADS_DB"
            || k == "LEADSTREAM_DEMO"
        {
            cmd.env_remove(k);
        }
    }
    let mut child = Child(cmd.spawn().unwrap());
    let stdout = child.0.stdout.take().unwrap();
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            log2.lock().unwrap().push_str(&(line + "\n"));
        }
    });

    // One line on stdout: the dashboard URL with the generated token.
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a start-up line on stdout");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_string();
    let (base, token) = url
        .split_once("/?token=")
        .expect("the URL carries the token");
    assert!(token.len() >= 16, "a generated token is long: {token:?}");
    assert!(
        dir.path().join("leads.db").exists(),
        "./leads.db is created in the working directory"
    );
    // stderr is read by another thread, which may not have caught up with stdout yet.
    let said_demo = || log.lock().unwrap().contains("demo mode");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !said_demo() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let logged = log.lock().unwrap().clone();
    assert!(
        logged.contains("demo mode"),
        "one line says demo mode is on: {logged}"
    );

    // The printed URL logs in: it answers with a session cookie and a redirect to /.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("HttpOnly"));

    // A demo lead arrives on the stream by itself, through the real pipeline.
    let res = client
        .get(format!("{base}/api/stream"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut stream = SseClient::new(res);
    let leads = stream.leads(1, Duration::from_secs(20)).await;
    let lead = &leads[0];
    assert_eq!(lead["source"], "demo");
    assert!(lead["fields"]["full_name"]
        .as_str()
        .is_some_and(|n| !n.is_empty()));
    assert!(
        lead["form_name"].as_str().is_some(),
        "the demo's Graph names its forms: {lead}"
    );
    assert!(lead["created_time"].as_str().unwrap().ends_with('Z'));
}
