//! A flood of forged signatures: cheap to refuse, all 403, and logged at a bounded rate.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::StatusCode;

use crate::helpers::db::count;
use crate::helpers::logs::{capture_logs, lines_since};
use crate::helpers::*;

fn refused_lines_since(t: Instant) -> Vec<String> {
    lines_since(t, |l| {
        l.level <= log::Level::Warn
            && l.target.starts_with("leadstream::ingest::inbox")
            && l.text.contains("webhook refused: X-Hub-Signature-256")
    })
    .into_iter()
    .map(|l| l.text)
    .collect()
}

/// The number in "…; N more refused since the last line", if the line has one.
fn suppressed_in(line: &str) -> u64 {
    line.split("; ")
        .filter_map(|p| p.strip_suffix(" more refused since the last line"))
        .filter_map(|n| n.parse::<u64>().ok())
        .sum()
}

/// Sends `n` POSTs of `body` to `path`, 32 at a time; returns the statuses and the wall time.
async fn burst(
    app: &TestApp,
    path: &str,
    n: usize,
    body: &[u8],
    signature: impl Fn(usize) -> Option<String>,
) -> (Vec<StatusCode>, Duration) {
    let started = Instant::now();
    let statuses = futures_util::stream::iter(0..n)
        .map(|i| {
            let mut req = app
                .client
                .post(app.url(path))
                .header("content-type", "application/json")
                .body(body.to_vec());
            if let Some(sig) = signature(i) {
                req = req.header("x-hub-signature-256", sig);
            }
            async move { req.send().await.unwrap().status() }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    (statuses, started.elapsed())
}

// Two worker threads: the server and the 32 clients would otherwise share one thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_signatures_is_cheap_all_403_and_logged_at_a_bounded_rate() {
    capture_logs();
    let app = TestApp::spawn().await;
    let body = leadgen_body(&[&lead_id(1)]);
    let forged = format!("sha256={}", "0".repeat(64));
    let other_secret = leadstream::ingest::signature::sign(b"someone else's secret", &body);
    const FLOOD: usize = 1_000;

    // What the same number of requests costs when the server does nothing at all with them
    // (an unknown path), measured right before, so a busy machine slows both alike.
    let (statuses, baseline) = burst(&app, "/no-such-path", FLOOD, &body, |_| None).await;
    assert!(statuses.iter().all(|s| *s == 404));

    let flood_started = Instant::now();
    let (statuses, elapsed) = burst(&app, "/webhook", FLOOD, &body, |i| match i % 4 {
        0 => None,
        1 => Some("sha256=not-hex".to_string()),
        2 => Some(other_secret.clone()),
        _ => Some(forged.clone()),
    })
    .await;
    let wrong: Vec<_> = statuses.iter().filter(|s| **s != 403).collect();
    assert!(wrong.is_empty(), "{} not refused: {wrong:?}", wrong.len());
    eprintln!(
        "{FLOOD} forged webhooks refused in {elapsed:?} ({} µs each); \
         {FLOOD} requests for an unknown path: {baseline:?}",
        elapsed.as_micros() / FLOOD as u128
    );
    assert!(
        elapsed < baseline * 2 + Duration::from_millis(500),
        "refusing {FLOOD} forgeries took {elapsed:?}; answering 404 as often took {baseline:?}"
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM deliveries").await,
        0,
        "nothing forged was stored"
    );
    assert!(app.graph.calls().is_empty());

    // At most one line per second of flood (plus the second it started in), whoever else in
    // this test binary is refused at the same time: the limit is process-wide. (So a refusal
    // by a test running alongside, just before the flood, can take the flood's first second:
    // a flood shorter than a second may then log nothing until the next second.)
    let lines = refused_lines_since(flood_started);
    let allowed = elapsed.as_secs() as usize + 2;
    assert!(
        lines.len() <= allowed,
        "{} lines for a flood of {elapsed:?}: {lines:#?}",
        lines.len()
    );
    // A refusal in a later second reports how many were left out, so nothing is hidden.
    let before = lines.len();
    let deadline = Instant::now() + Duration::from_secs(3);
    while refused_lines_since(flood_started).len() == before {
        assert!(
            Instant::now() < deadline,
            "no line for a refusal in a later second"
        );
        let r = app.post_webhook_raw(body.clone(), Some(&forged)).await;
        assert_eq!(r.status(), 403);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lines = refused_lines_since(flood_started);
    assert!(!lines.is_empty(), "the flood was never logged");
    let reported: u64 = lines.iter().map(|l| suppressed_in(l)).sum();
    let logged = lines.len() as u64;
    assert!(
        reported + logged > FLOOD as u64,
        "{reported} reported as left out + {logged} lines <= {FLOOD} refusals: {lines:#?}"
    );
    assert!(lines
        .iter()
        .all(|l| !l.contains(APP_SECRET) && !l.contains("0000000000")));
}
