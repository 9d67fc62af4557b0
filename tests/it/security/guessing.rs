//! Guessing the token as a bearer header: counted per client address with the logins, refused
//! for the rest of a short window once limited (the right token too, from that address only),
//! free again when the window ends, and logged once per address and window with the counts.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::helpers::logs::{capture_logs, lines_since};
use crate::helpers::*;

/// A client whose requests come from `ip` (any 127.0.0.0/8 address is this machine).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn bearer(c: &reqwest::Client, app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    c.get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_eleventh_wrong_bearer_token_is_refused_and_the_limit_is_per_address() {
    let app = TestApp::spawn().await;
    let guesser = client_from("127.0.0.3");
    let early = login(&guesser, &app, DASHBOARD_TOKEN).await;
    let (early_session, _) = set_cookie(&early);
    for i in 1..=10 {
        let r = bearer(&guesser, &app, "/api/leads", &format!("guess-{i}-xxxxxxxx")).await;
        assert_eq!(r.status(), 401, "wrong token {i} is just wrong");
    }
    let r = bearer(&guesser, &app, "/api/leads", "guess-11-xxxxxxxx").await;
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After: {wait}");
    let body = r.text().await.unwrap();
    assert!(body.contains("too many wrong tokens"), "{body}");

    // From this address, the right token waits too, through every door: a limit that let it
    // through would tell the guesser when it had won.
    let r = bearer(&guesser, &app, "/api/leads", DASHBOARD_TOKEN).await;
    assert_eq!(
        r.status(),
        429,
        "the right bearer token from the limited address"
    );
    let r = bearer(&guesser, &app, "/api/stream", DASHBOARD_TOKEN).await;
    assert_eq!(r.status(), 429, "nor through a fresh connection's stream");
    assert_eq!(login(&guesser, &app, DASHBOARD_TOKEN).await.status(), 429);

    // Nobody else is locked out, and sessions made before keep working.
    let other = client_from("127.0.0.4");
    assert_eq!(
        bearer(&other, &app, "/api/leads", DASHBOARD_TOKEN)
            .await
            .status(),
        200
    );
    let r = bearer(&other, &app, "/api/stream", DASHBOARD_TOKEN).await;
    assert_eq!(r.status(), 200, "a stream from another address");
    drop(r);
    let r = guesser
        .get(app.url("/api/leads"))
        .header("cookie", &early_session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a session made before the guessing");
}

#[tokio::test]
async fn a_stranger_cannot_lock_the_right_token_out_for_longer_than_the_window() {
    let window = Duration::from_millis(1500);
    let app = TestApp::spawn_tuned(|s| s.tuning.guess_window = window).await;
    let c = client_from("127.0.0.5");
    for i in 1..=10 {
        let r = bearer(&c, &app, "/api/leads/count", &format!("wrong-{i}-xxxxxxxx")).await;
        assert_eq!(r.status(), 401);
    }
    let limited_at = Instant::now();
    assert_eq!(
        bearer(&c, &app, "/api/leads/count", DASHBOARD_TOKEN)
            .await
            .status(),
        429
    );
    // When the window is over, the right token works again by itself.
    loop {
        let status = bearer(&c, &app, "/api/leads/count", DASHBOARD_TOKEN)
            .await
            .status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 429);
        assert!(
            limited_at.elapsed() < window + Duration::from_secs(5),
            "still refused long after the window"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn behind_a_trusted_local_proxy_guesses_count_against_the_forwarded_address() {
    let app = TestApp::spawn_tuned(|s| s.trust_proxy_header = Some("x-forwarded-for".into())).await;
    let via_proxy = |path: &str, token: &str, client: &str| {
        app.client
            .get(app.url(path))
            .bearer_auth(token)
            .header("x-forwarded-for", format!("10.9.9.9, {client}"))
            .send()
    };
    for i in 1..=10 {
        let r = via_proxy("/api/leads", &format!("wrong-{i}-xxxxxxxx"), "198.51.100.7")
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = via_proxy("/api/leads", DASHBOARD_TOKEN, "198.51.100.7")
        .await
        .unwrap();
    assert_eq!(r.status(), 429, "the guesser, by the address the proxy saw");
    let r = via_proxy("/api/leads", DASHBOARD_TOKEN, "198.51.100.8")
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "another client of the same proxy");
    assert_eq!(
        app.get_authed("/api/leads").await.status(),
        200,
        "the proxy itself"
    );
}

#[tokio::test]
async fn without_a_trusted_proxy_a_forwarded_header_changes_nothing() {
    let app = TestApp::spawn().await;
    let c = client_from("127.0.0.6");
    for i in 1..=10 {
        let r = c
            .get(app.url("/api/leads"))
            .bearer_auth(format!("wrong-{i}-xxxxxxxx"))
            .header("x-forwarded-for", format!("192.0.2.{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = c
        .get(app.url("/api/leads"))
        .bearer_auth(DASHBOARD_TOKEN)
        .header("x-forwarded-for", "192.0.2.200")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429, "a made-up address buys no fresh count");
}

/// The counts in "… from ADDR in N s: A at the login, B as a bearer token; R more attempts
/// refused …".
fn counts(line: &str) -> (u64, u64, u64) {
    let number_before = |suffix: &str| -> u64 {
        line.split(suffix)
            .next()
            .and_then(|head| head.rsplit([' ', ':']).find(|w| !w.is_empty()))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let refused = if line.contains(" more attempts refused") {
        number_before(" more attempts refused")
    } else {
        0
    };
    (
        number_before(" at the login"),
        number_before(" as a bearer token"),
        refused,
    )
}

#[tokio::test]
async fn wrong_tokens_are_logged_once_per_address_and_window_with_a_count() {
    capture_logs();
    let window = Duration::from_millis(800);
    let app = TestApp::spawn_tuned(|s| s.tuning.guess_window = window).await;
    let c = client_from("127.0.0.7");
    let started = Instant::now();
    let mine =
        |l: &crate::helpers::logs::Line| l.text.contains("wrong dashboard token from 127.0.0.7 ");
    for i in 0..30 {
        let r = if i % 3 == 0 {
            login(&c, &app, "not-the-token").await
        } else {
            bearer(&c, &app, "/api/leads/count", "not-the-token").await
        };
        assert!([401, 429].contains(&r.status().as_u16()));
    }
    let sent_for = started.elapsed();
    // The last window is reported when it ends.
    let deadline = Instant::now() + window + Duration::from_secs(5);
    let lines = loop {
        let lines = lines_since(started, mine);
        let (l, b, r) = lines
            .iter()
            .map(|l| counts(&l.text))
            .fold((0, 0, 0), |a, c| (a.0 + c.0, a.1 + c.1, a.2 + c.2));
        if l + b + r == 30 {
            break lines;
        }
        assert!(
            Instant::now() < deadline,
            "30 attempts, reported: {lines:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let windows = (sent_for.as_millis() / window.as_millis()) as usize + 1;
    assert!(
        lines.len() <= windows,
        "{} lines for {windows} windows: {lines:#?}",
        lines.len()
    );
    assert!(
        lines.iter().all(|l| !l.text.contains("not-the-token")),
        "never the token typed"
    );
}
