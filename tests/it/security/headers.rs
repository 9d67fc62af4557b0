//! What every answer tells the browser: the Content-Security-Policy and friends, no caching
//! of personal data, no inline script the policy would block.

use super::*;
use crate::helpers::*;

#[tokio::test]
async fn every_page_and_answer_carries_the_security_headers_and_api_answers_are_never_cached() {
    let app = TestApp::spawn().await;
    seed_secret_lead(&app).await;
    let bearer = ("authorization", format!("Bearer {DASHBOARD_TOKEN}"));
    let cookie = {
        let r = login(&app.client, &app, DASHBOARD_TOKEN).await;
        assert_security_headers(&r, "POST /login (right)");
        set_cookie(&r).0
    };
    let session = ("cookie", cookie);
    // (method, path, credentials, is it lead data that no cache may keep?)
    let cases: Vec<(&str, &str, Option<&Header>, bool)> = vec![
        ("GET", "/", None, true),
        ("GET", "/", Some(&session), true),
        ("GET", "/?token=wrong-token", None, true),
        ("GET", "/assets/main.js", None, false),
        ("GET", "/assets/style.css", None, false),
        ("GET", "/assets/nothing.js", None, false),
        ("GET", "/healthz", None, false),
        ("GET", "/no/such/page", None, false),
        ("DELETE", "/api/leads", Some(&bearer), true),
        ("GET", "/api/leads?limit=many", Some(&bearer), true),
        ("GET", "/api/leads?since=not-a-date", Some(&bearer), true),
        ("GET", "/webhook", None, false),
        ("POST", "/webhook", None, false),
        ("POST", "/logout", Some(&session), false),
    ];
    let mut cases = cases;
    for (method, path) in PRIVATE_API {
        cases.push((method, path, None, true));
        cases.push((method, path, Some(&bearer), true));
    }
    for (method, path, creds, private) in cases {
        let r = send(&app, method, path, creds).await;
        let what = format!("{method} {path} ({})", r.status());
        assert!(!r.status().is_server_error(), "{what}");
        assert_security_headers(&r, &what);
        if private || path.starts_with("/api/") {
            assert_no_store(&r, &what);
        }
    }
    let r = app
        .client
        .post(app.url("/login"))
        .form(&[("token", "wrong")])
        .send()
        .await
        .unwrap();
    assert_security_headers(&r, "POST /login (wrong)");
    assert_no_store(&r, "POST /login (wrong)");
    let r = app
        .client
        .get(app.url(&format!(
            "/webhook?hub.mode=subscribe&hub.challenge=42&hub.verify_token={VERIFY_TOKEN}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_security_headers(&r, "GET /webhook (handshake)");
    let r = app.post_webhook(&leadgen_body(&[&lead_id(2)])).await;
    assert_eq!(r.status(), 200);
    assert_security_headers(&r, "POST /webhook (signed)");
}

#[tokio::test]
async fn served_pages_contain_no_inline_script_or_style_the_policy_would_block() {
    // The strict policy only works if the pages need nothing it forbids: a page with an inline
    // handler would silently break in the browser rather than in a test.
    let app = TestApp::spawn().await;
    let dashboard = app.get_authed("/").await.text().await.unwrap();
    let login_page = app
        .client
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (name, html) in [("dashboard", &dashboard), ("login page", &login_page)] {
        let lower = html.to_ascii_lowercase();
        for (i, _) in lower.match_indices("<script") {
            let tag_end = lower[i..].find('>').unwrap() + i;
            assert!(
                lower[i..tag_end].contains("src="),
                "{name}: inline script at {i}"
            );
        }
        assert!(!lower.contains("<style"), "{name}: inline <style>");
        assert!(!lower.contains(" style="), "{name}: style attribute");
        assert!(!lower.contains("javascript:"), "{name}: javascript: URL");
        let handler = regex_free_find_event_handler(&lower);
        assert!(
            handler.is_none(),
            "{name}: inline event handler {handler:?}"
        );
    }
}

/// Finds ` on<letters>=` (an inline event handler attribute) without a regex dependency.
fn regex_free_find_event_handler(html: &str) -> Option<String> {
    let b = html.as_bytes();
    for (i, _) in html.match_indices(" on") {
        let rest = &b[i + 3..];
        let letters = rest.iter().take_while(|c| c.is_ascii_lowercase()).count();
        if letters > 0 && rest.get(letters) == Some(&b'=') {
            return Some(html[i..i + 3 + letters + 1].to_string());
        }
    }
    None
}

#[tokio::test]
async fn the_demo_graph_does_not_exist_outside_demo_mode() {
    let app = TestApp::spawn().await;
    for path in [
        "/demo-graph/v25.0/1",
        "/demo-graph/v25.0/111111111111111/leadgen_forms",
        "/demo-graph",
    ] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert_security_headers(&r, path);
    }
}
