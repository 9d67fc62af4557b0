//! Same-site request forgery: a page on another port of this host (the same *site*, so the
//! browser sends the `SameSite=Strict` cookie along) auto-submits forms to every state-changing
//! route. Each is refused with a 403 that says why, and nothing happens; our own pages, scripts
//! without a browser and Meta's signed webhooks go on working.

use serde_json::Value;

use super::*;
use crate::helpers::db::{count, exec};
use crate::helpers::*;

/// The headers a browser adds to a form a page on `http://127.0.0.1:9` posts to us: the
/// modern one, and what an older browser without `Sec-Fetch-Site` sends.
fn forged_headers() -> Vec<(&'static str, Vec<(&'static str, &'static str)>)> {
    vec![
        (
            "a current browser",
            vec![
                ("origin", "http://127.0.0.1:9"),
                ("sec-fetch-site", "same-site"),
            ],
        ),
        ("an older browser", vec![("origin", "http://127.0.0.1:9")]),
        ("a sandboxed frame", vec![("origin", "null")]),
        ("a cross-site page", vec![("sec-fetch-site", "cross-site")]),
    ]
}

async fn post_with(
    app: &TestApp,
    path: &str,
    cookie: &str,
    headers: &[(&str, &str)],
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url(path))
        .header("cookie", cookie)
        .form(form);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn state_changes_from_another_origin_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let r = login(&app.client, &app, DASHBOARD_TOKEN).await;
    let (cookie, _) = set_cookie(&r);
    // A dead letter to retry, and a form to sync.
    let dead = "INSERT INTO jobs (leadgen_id, state, first_seen_ms, next_attempt_ms, updated_ms)
                VALUES ('123456789', 'dead', 0, 0, 0)";
    exec(&app, dead, dead).await;
    app.graph.add_form(PAGE_ID, FORM_ID, "Spring");

    for (who, headers) in forged_headers() {
        for (path, form) in [
            ("/api/dead-letters/retry", vec![]),
            ("/api/leads/sync", vec![]),
            ("/logout", vec![]),
            ("/login", vec![("token", DASHBOARD_TOKEN)]),
        ] {
            let r = post_with(&app, path, &cookie, &headers, &form).await;
            assert_eq!(r.status(), 403, "{path} from {who}");
            assert!(r.headers().get("set-cookie").is_none(), "{path} from {who}");
            let body: Value = r.json().await.unwrap();
            let error = body["error"].as_str().unwrap();
            assert!(
                error.starts_with("cross-origin request refused"),
                "{path} from {who}: {error}"
            );
        }
    }
    assert_eq!(
        count(&app, "SELECT count(*) FROM jobs WHERE state = 'dead'").await,
        1,
        "no dead letter was retried"
    );
    assert!(app.graph.calls().is_empty(), "no sync ran");
    let r = app
        .client
        .get(app.url("/api/leads"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "nobody was logged out");

    // Our own page, as a current and as an older browser sends it: carried out.
    let own = app.base.clone();
    let r = post_with(
        &app,
        "/api/dead-letters/retry",
        &cookie,
        &[("origin", &own), ("sec-fetch-site", "same-origin")],
        &[],
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = post_with(&app, "/api/leads/sync", &cookie, &[("origin", &own)], &[]).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let r = post_with(&app, "/logout", &cookie, &[("origin", &own)], &[]).await;
    assert_eq!(r.status(), 303);
}

#[tokio::test]
async fn scripts_reads_and_signed_webhooks_are_not_affected() {
    let app = TestApp::spawn().await;
    // curl with a bearer token sends neither header.
    assert_eq!(
        app.post_authed("/api/dead-letters/retry").await.status(),
        200
    );
    // A read from another origin changes nothing, and the browser keeps the answer from the
    // page (no CORS headers); it is not refused here.
    let r = app
        .client
        .get(app.url("/api/leads/count"))
        .bearer_auth(DASHBOARD_TOKEN)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    // Meta's webhook is signed; where it comes from does not matter.
    let body = leadgen_body(&[&lead_id(1)]);
    let r = app
        .client
        .post(app.url("/webhook"))
        .header(
            "x-hub-signature-256",
            leadstream::ingest::signature::sign(APP_SECRET.as_bytes(), &body),
        )
        .header("origin", "https://www.facebook.com")
        .header("sec-fetch-site", "cross-site")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn behind_a_proxy_the_public_url_is_our_own_origin() {
    let app =
        TestApp::spawn_tuned(|s| s.public_url = Some("https://leads.example.com".into())).await;
    // The proxy passed Host through as 127.0.0.1:PORT; the browser's Origin is the public one.
    let r = app
        .client
        .post(app.url("/login"))
        .header("origin", "https://leads.example.com")
        .form(&[("token", DASHBOARD_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = app
        .client
        .post(app.url("/login"))
        .header("origin", "https://shop.example.com")
        .form(&[("token", DASHBOARD_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a sibling subdomain");
}

/// The status line of a raw HTTP/1.1 exchange (for heads reqwest will not send).
async fn raw_status(app: &TestApp, head: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        conn.read_to_end(&mut answer),
    )
    .await
    .unwrap()
    .unwrap();
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn a_host_header_that_does_not_parse_troubles_only_a_browsers_state_change() {
    let app = TestApp::spawn().await;
    let read = format!(
        "GET /api/leads/count HTTP/1.1\r\nHost: not a host\r\nAuthorization: Bearer {DASHBOARD_TOKEN}\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(raw_status(&app, &read).await, "HTTP/1.1 200 OK");
    let forged = format!(
        "POST /api/dead-letters/retry HTTP/1.1\r\nHost: not a host\r\nOrigin: http://not\r\nAuthorization: Bearer {DASHBOARD_TOKEN}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(raw_status(&app, &forged).await, "HTTP/1.1 403 Forbidden");
}
