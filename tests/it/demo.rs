//! Demo mode, as a newcomer meets it: the real binary with no Meta settings and no token.

use std::time::Duration;

use crate::helpers::process::Process;
use crate::helpers::SseClient;

#[tokio::test]
async fn with_no_settings_the_binary_prints_a_url_and_streams_demo_leads() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Process::start(
        dir.path(),
        &[("LISTEN_ADDR", "127.0.0.1:0"), ("RUST_LOG", "info")],
    );

    // One line on stdout: the dashboard URL with the generated token.
    let line = child
        .first_stdout_line(Duration::from_secs(20))
        .await
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
    assert!(
        child.logged("demo mode", Duration::from_secs(5)).await,
        "one line says demo mode is on: {:?}",
        child.log()
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
