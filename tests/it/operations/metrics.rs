//! `GET /metrics`: who may read it, that `promtool` accepts what a live server writes, and
//! that the counters move as webhooks, leads and streams come and go.
//!
//! Counters are the process's, and the tests of this binary share one process: a test
//! compares its own before and after, and reads exact values only from gauges of its own
//! server (open streams, jobs).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use leadstream::config::Secret;

use crate::helpers::*;
use crate::security::{login, set_cookie};

const WAIT: Duration = Duration::from_secs(10);
const METRICS_TOKEN: &str = "metrics-only-token-0123456789";

async fn scrape_with(app: &TestApp, token: Option<&str>) -> reqwest::Response {
    let mut req = app.client.get(app.url("/metrics"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

/// The metrics text, read with the dashboard token.
async fn scrape(app: &TestApp) -> String {
    let r = scrape_with(app, Some(DASHBOARD_TOKEN)).await;
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// The value of the sample `series` (name and labels exactly as written), 0 when absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// Scrapes until `series` satisfies `ok` (up to 10 s); its last value.
async fn wait_for(app: &TestApp, series: &str, ok: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = value(&scrape(app).await, series);
        if ok(v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{series} stayed at {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `promtool check metrics` on `text`: `None` when promtool is not installed, else what it
/// said (empty when it had nothing to complain about).
fn promtool(text: &str) -> Option<String> {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(_) => return None,
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "promtool refused the metrics: {said}");
    Some(said)
}

#[tokio::test]
async fn only_a_bearer_dashboard_or_metrics_token_reads_the_metrics() {
    let app = TestApp::spawn_tuned(|s| s.metrics_token = Some(Secret::new(METRICS_TOKEN))).await;
    assert_eq!(scrape_with(&app, None).await.status(), 401);
    assert_eq!(
        scrape_with(&app, Some("wrong-token-000000")).await.status(),
        401
    );
    for token in [DASHBOARD_TOKEN, METRICS_TOKEN] {
        let r = scrape_with(&app, Some(token)).await;
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"));
    }
    // The metrics token opens nothing else.
    let r = app
        .client
        .get(app.url("/api/leads"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A dashboard session is no scraper.
    let (cookie, _) = set_cookie(&login(&app.client, &app, DASHBOARD_TOKEN).await);
    let with_cookie = |path: &str| {
        app.client
            .get(app.url(path))
            .header("cookie", &cookie)
            .send()
    };
    assert_eq!(with_cookie("/api/leads/count").await.unwrap().status(), 200);
    assert_eq!(with_cookie("/metrics").await.unwrap().status(), 401);
}

#[tokio::test]
async fn promtool_accepts_a_live_scrape_and_the_counters_move() {
    let app = TestApp::spawn().await;
    let before = scrape(&app).await;
    let accepted = r#"leadstream_webhooks_total{outcome="accepted"}"#;
    let refused = r#"leadstream_webhooks_total{outcome="bad_signature"}"#;
    let saved = r#"leadstream_leads_saved_total{source="webhook"}"#;
    let graph_ok = r#"leadstream_graph_calls_total{outcome="ok"}"#;
    let published = "leadstream_save_to_stream_seconds_count";
    assert_eq!(value(&before, "leadstream_open_streams"), 0.0);

    let mut stream = app.open_stream(None).await;
    wait_for(&app, "leadstream_open_streams", |v| v == 1.0).await;
    let ids = add_graph_leads(&app, 1, 2);
    for id in &ids {
        app.deliver(&[id]).await;
    }
    assert_eq!(
        app.post_webhook_raw(leadgen_body(&[&ids[0]]), Some("sha256=00"))
            .await
            .status(),
        403
    );
    assert_eq!(stream.leads(2, WAIT).await.len(), 2);
    let after = scrape(&app).await;
    for (series, at_least) in [
        (accepted, 2.0),
        (refused, 1.0),
        (saved, 2.0),
        (graph_ok, 2.0),
        (published, 2.0),
    ] {
        assert!(
            value(&after, series) - value(&before, series) >= at_least,
            "{series} moved by less than {at_least}:\n{after}"
        );
    }
    assert!(after.contains("process_resident_memory_bytes"), "{after}");
    for name in KNOWN {
        assert!(
            after.contains(&format!("\n{name}")),
            "{name} missing:\n{after}"
        );
    }
    match promtool(&after) {
        Some(said) => assert!(said.trim().is_empty(), "promtool complained: {said}"),
        None => eprintln!("skipped: promtool is not installed (Debian: prometheus)"),
    }

    drop(stream);
    wait_for(&app, "leadstream_open_streams", |v| v == 0.0).await;
}

#[tokio::test]
async fn jobs_waiting_for_graph_and_dead_letters_are_gauges_of_the_database() {
    let app = TestApp::spawn().await;
    app.graph.set_always(Some(Failure::ServerError));
    let errors = r#"leadstream_graph_calls_total{outcome="transient"}"#;
    let before = value(&scrape(&app).await, errors);
    app.deliver(&[&lead_id(1)]).await;
    wait_for(&app, "leadstream_jobs_pending", |v| v == 1.0).await;
    wait_for(&app, errors, |v| v > before).await;

    // Graph now says the lead does not exist: the waiting job and a new one are set aside.
    app.graph.set_always(Some(Failure::NotFound));
    app.deliver(&[&lead_id(2)]).await;
    wait_for(&app, "leadstream_jobs_dead", |v| v == 2.0).await;
    assert_eq!(value(&scrape(&app).await, "leadstream_jobs_pending"), 0.0);
}

#[test]
fn promtool_accepts_the_alert_rules_in_contrib() {
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/leadstream-alerts.yml");
    let Ok(out) = Command::new("promtool")
        .args(["check", "rules", rules])
        .output()
    else {
        eprintln!("skipped: promtool is not installed (Debian: prometheus)");
        return;
    };
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    // Every metric a rule names is one leadstream writes (or Prometheus' own `up`).
    let text = std::fs::read_to_string(rules).unwrap();
    for name in text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("leadstream_") || w.starts_with("process_"))
    {
        let name = name.trim_end_matches("_bucket").trim_end_matches("_count");
        assert!(
            KNOWN.contains(&name),
            "{name} is not a metric leadstream writes"
        );
    }
}

/// Every metric leadstream itself writes.
const KNOWN: &[&str] = &[
    "leadstream_webhooks_total",
    "leadstream_leads_saved_total",
    "leadstream_leads_erased_total",
    "leadstream_graph_calls_total",
    "leadstream_graph_call_duration_seconds",
    "leadstream_save_to_stream_seconds",
    "leadstream_forward_deliveries_total",
    "leadstream_jobs_pending",
    "leadstream_jobs_dead",
    "leadstream_open_streams",
    "process_open_fds",
    "process_max_fds",
];
