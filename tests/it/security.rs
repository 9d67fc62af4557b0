//! Issue 6 "Lock it down": nobody reads leads without the token, and hostile input never hurts.
//!
//! Every test here runs the real server ([`TestApp`]) and attacks it over HTTP the way a
//! stranger on the internet could: wrong or forged credentials, guessed logins, hostile signed
//! and unsigned webhook bodies, oversized and chunked bodies, floods of forged signatures, and
//! lead answers written to hurt a spreadsheet or a browser. The pure parser and signature check
//! get property tests in [`properties`] (the stand-in for `cargo fuzz` that runs in CI).

mod invariants;
mod properties;

use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

/// Every route that serves lead data or acts on it, except `GET /` (which answers with the
/// login page instead of a 401; see its own test).
const PRIVATE_API: &[(&str, &str)] = &[
    ("GET", "/api/leads"),
    ("GET", "/api/leads/count"),
    ("GET", "/api/stream"),
    ("POST", "/api/leads/sync"),
    ("GET", "/api/leads.csv"),
    ("GET", "/api/report.pdf"),
    ("GET", "/api/status"),
    ("GET", "/api/stats"),
    ("GET", "/api/forms"),
    ("GET", "/api/pages"),
    ("GET", "/api/dead-letters"),
    ("POST", "/api/dead-letters/retry"),
];

/// A name that must never appear in an answer given without credentials.
const SECRET_NAME: &str = "Zelda Privatperson";

/// One request header: name and value.
type Header = (&'static str, String);

/// Credentials that must all be refused, each with the header it sends (if any).
fn wrong_credentials() -> Vec<(&'static str, Option<Header>)> {
    let truncated = &DASHBOARD_TOKEN[..DASHBOARD_TOKEN.len() - 1];
    vec![
        ("no credentials", None),
        (
            "a wrong token",
            Some(("authorization", "Bearer not-the-token-at-all-0000".into())),
        ),
        (
            "the token minus its last character",
            Some(("authorization", format!("Bearer {truncated}"))),
        ),
        (
            "the token plus one character",
            Some(("authorization", format!("Bearer {DASHBOARD_TOKEN}x"))),
        ),
        (
            "the token with a character changed in the middle",
            Some((
                "authorization",
                format!("Bearer {}", DASHBOARD_TOKEN.replacen('-', "_", 1)),
            )),
        ),
        (
            "Bearer without a value",
            Some(("authorization", "Bearer".into())),
        ),
        (
            "the token without the Bearer scheme",
            Some(("authorization", DASHBOARD_TOKEN.into())),
        ),
        (
            "the token as Basic credentials",
            Some(("authorization", format!("Basic {DASHBOARD_TOKEN}"))),
        ),
        (
            "a forged session cookie",
            Some(("cookie", format!("leadstream_session={}", "ab".repeat(32)))),
        ),
        (
            "the token itself as the session cookie",
            Some(("cookie", format!("leadstream_session={DASHBOARD_TOKEN}"))),
        ),
        (
            "an empty session cookie",
            Some(("cookie", "leadstream_session=".into())),
        ),
    ]
}

async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    header: Option<&Header>,
) -> reqwest::Response {
    let mut req = app.client.request(
        Method::from_bytes(method.as_bytes()).unwrap(),
        app.url(path),
    );
    if let Some((name, value)) = header {
        req = req.header(*name, value);
    }
    req.send().await.unwrap()
}

/// A lead with a recognisable name, saved through the webhook path.
async fn seed_secret_lead(app: &TestApp) {
    let id = lead_id(1);
    app.graph.add_lead(
        &id,
        FORM_ID,
        1_764_338_531,
        &[("full_name", SECRET_NAME), ("email", "zelda@example.com")],
    );
    assert_eq!(app.post_webhook(&leadgen_body(&[&id])).await.status(), 200);
    assert_eq!(app.wait_for_count(1, Duration::from_secs(5)).await, 1);
}

/// A read-only look at the server's database, for what the HTTP surface does not show.
fn db(app: &TestApp) -> rusqlite::Connection {
    let c = rusqlite::Connection::open_with_flags(
        &app.db_path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

fn count(app: &TestApp, sql: &str) -> i64 {
    db(app).query_row(sql, [], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn every_private_api_route_answers_401_json_to_every_wrong_credential() {
    let app = TestApp::spawn().await;
    seed_secret_lead(&app).await;
    for (method, path) in PRIVATE_API {
        for (what, header) in wrong_credentials() {
            let r = send(&app, method, path, header.as_ref()).await;
            assert_eq!(r.status(), 401, "{method} {path} with {what}");
            assert_eq!(
                r.headers()["www-authenticate"],
                "Bearer",
                "{method} {path} with {what}"
            );
            let kind = r.headers()["content-type"].to_str().unwrap().to_string();
            assert!(
                kind.starts_with("application/json"),
                "{method} {path}: {kind}"
            );
            let body = r.text().await.unwrap();
            let v: Value = serde_json::from_str(&body).unwrap();
            assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
            assert!(
                !body.contains(SECRET_NAME) && !body.contains("zelda"),
                "{body}"
            );
        }
    }
    // The same routes open with the token, so the 401s above are about credentials, not paths.
    for (method, path) in PRIVATE_API {
        let r = send(
            &app,
            method,
            path,
            Some(&("authorization", format!("Bearer {DASHBOARD_TOKEN}"))),
        )
        .await;
        assert!(
            r.status().is_success(),
            "{method} {path} with the token: {}",
            r.status()
        );
    }
}

#[tokio::test]
async fn the_token_in_the_query_string_does_not_open_the_api() {
    // Query strings end up in proxy logs and browser history; only `/` takes `?token=`, and it
    // trades it for a cookie at once.
    let app = TestApp::spawn().await;
    for path in ["/api/leads", "/api/stream", "/api/leads/count"] {
        let r = app
            .client
            .get(app.url(&format!("{path}?token={DASHBOARD_TOKEN}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
}

#[tokio::test]
async fn without_a_session_the_dashboard_address_serves_the_login_page_and_no_lead_data() {
    let app = TestApp::spawn().await;
    seed_secret_lead(&app).await;
    for (what, header) in wrong_credentials() {
        let r = send(&app, "GET", "/", header.as_ref()).await;
        assert_eq!(r.status(), 200, "GET / with {what}");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let body = r.text().await.unwrap();
        assert!(
            body.contains(r#"action="/login""#),
            "login form with {what}"
        );
        assert!(body.contains(r#"name="token""#));
        assert!(
            !body.contains("/assets/main.js"),
            "the dashboard itself with {what}"
        );
        assert!(!body.contains(SECRET_NAME) && !body.contains("zelda"));
    }
    let r = app.get_authed("/").await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("/assets/main.js"));
}

/// Logs in with `token` through the form; returns the answer.
async fn login(client: &reqwest::Client, app: &TestApp, token: &str) -> reqwest::Response {
    client
        .post(app.url("/login"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
}

/// The `Set-Cookie` header of an answer, split into the `name=value` pair and its attributes.
fn set_cookie(r: &reqwest::Response) -> (String, Vec<String>) {
    let all: Vec<_> = r.headers().get_all("set-cookie").iter().collect();
    assert_eq!(all.len(), 1, "exactly one Set-Cookie: {all:?}");
    let mut parts = all[0]
        .to_str()
        .unwrap()
        .split(';')
        .map(|p| p.trim().to_string());
    let pair = parts.next().unwrap();
    (pair, parts.collect())
}

fn has_attr(attrs: &[String], want: &str) -> bool {
    attrs.iter().any(|a| a.eq_ignore_ascii_case(want))
}

async fn get_with_cookie(app: &TestApp, path: &str, cookie: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_login_cookie_is_httponly_strict_opens_the_api_survives_a_restart_and_dies_at_logout() {
    let app = TestApp::spawn().await;
    seed_secret_lead(&app).await;
    let r = login(&app.client, &app, DASHBOARD_TOKEN).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/");
    let (cookie, attrs) = set_cookie(&r);
    assert!(cookie.starts_with("leadstream_session="), "{cookie}");
    let value = cookie.split_once('=').unwrap().1;
    assert!(
        value.len() >= 43,
        "a session value carries at least 256 bits: {value}"
    );
    assert!(
        !value.contains(DASHBOARD_TOKEN),
        "the cookie is not the token"
    );
    assert!(has_attr(&attrs, "HttpOnly"), "{attrs:?}");
    assert!(has_attr(&attrs, "SameSite=Strict"), "{attrs:?}");
    assert!(has_attr(&attrs, "Path=/"), "{attrs:?}");
    assert!(
        !has_attr(&attrs, "Secure"),
        "plain http must not get a Secure cookie"
    );

    let r = get_with_cookie(&app, "/api/leads", &cookie).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains(SECRET_NAME));
    let r = get_with_cookie(&app, "/", &cookie).await;
    assert!(
        r.text().await.unwrap().contains("/assets/main.js"),
        "the dashboard"
    );

    let app = app.restart().await;
    let r = get_with_cookie(&app, "/api/leads", &cookie).await;
    assert_eq!(r.status(), 200, "the session survives a restart");

    let r = app
        .client
        .post(app.url("/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let (cleared, attrs) = set_cookie(&r);
    assert_eq!(cleared, "leadstream_session=");
    assert!(has_attr(&attrs, "Max-Age=0"), "{attrs:?}");
    assert_eq!(
        get_with_cookie(&app, "/api/leads", &cookie).await.status(),
        401
    );
    let page = get_with_cookie(&app, "/", &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(r#"action="/login""#),
        "logged out: the login page"
    );

    let app = app.restart().await;
    assert_eq!(
        get_with_cookie(&app, "/api/leads", &cookie).await.status(),
        401,
        "a session ended by logout stays ended after a restart"
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM sessions"),
        0,
        "logout removed the stored session"
    );
}

#[tokio::test]
async fn the_database_holds_only_a_hash_of_the_session() {
    // A copy of leads.db (a backup, a support bundle) must not log anyone in.
    let app = TestApp::spawn().await;
    let r = login(&app.client, &app, DASHBOARD_TOKEN).await;
    let (cookie, _) = set_cookie(&r);
    let value = cookie.split_once('=').unwrap().1.to_string();
    let stored: String = db(&app)
        .query_row("SELECT token_hash FROM sessions", [], |r| r.get(0))
        .unwrap();
    assert_ne!(stored, value);
    assert!(!stored.contains(&value));
    assert_eq!(
        get_with_cookie(&app, "/api/leads", &format!("leadstream_session={stored}"))
            .await
            .status(),
        401,
        "the stored hash is not itself a session"
    );
}

#[tokio::test]
async fn the_session_cookie_is_secure_when_the_public_url_is_https() {
    let app =
        TestApp::spawn_tuned(|s| s.public_url = Some("https://leads.example.com".into())).await;
    let r = login(&app.client, &app, DASHBOARD_TOKEN).await;
    assert_eq!(r.status(), 303);
    let (_, attrs) = set_cookie(&r);
    assert!(has_attr(&attrs, "Secure"), "{attrs:?}");
    assert!(has_attr(&attrs, "HttpOnly") && has_attr(&attrs, "SameSite=Strict"));

    // The `?token=` door of the start-up URL sets the same cookie.
    let r = app
        .client
        .get(app.url(&format!("/?token={DASHBOARD_TOKEN}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/",
        "the token leaves the address bar"
    );
    let (_, attrs) = set_cookie(&r);
    assert!(has_attr(&attrs, "Secure"), "{attrs:?}");
}

#[tokio::test]
async fn a_wrong_login_sets_no_cookie_and_never_echoes_what_was_typed() {
    let app = TestApp::spawn().await;
    let typed = r#"<script>alert(1)</script>"><img src=x onerror=alert(2)>"#;
    let r = login(&app.client, &app, typed).await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    let body = r.text().await.unwrap();
    assert!(body.contains("not right"), "the page says what went wrong");
    assert!(!body.contains("alert("), "{body}");
    assert!(!body.contains("onerror"));

    let r = app
        .client
        .get(app.url("/"))
        .query(&[("token", typed)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    assert!(!r.text().await.unwrap().contains("alert("));
}

#[tokio::test]
async fn the_eleventh_failed_login_in_a_minute_is_refused_even_with_the_right_token() {
    let app = TestApp::spawn().await;
    let r = login(&app.client, &app, DASHBOARD_TOKEN).await;
    let (early_session, _) = set_cookie(&r);
    for i in 1..=10 {
        let r = login(&app.client, &app, &format!("guess-number-{i}")).await;
        assert_eq!(r.status(), 401, "failed attempt {i} is just wrong");
    }
    let r = login(&app.client, &app, "guess-number-11").await;
    assert_eq!(r.status(), 429);
    assert!(r.text().await.unwrap().contains("Too many attempts"));
    let r = login(&app.client, &app, DASHBOARD_TOKEN).await;
    assert_eq!(r.status(), 429, "the right token does not bypass the limit");
    assert!(r.headers().get("set-cookie").is_none());
    let r = app
        .client
        .get(app.url(&format!("/?token={DASHBOARD_TOKEN}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429, "nor does the ?token= door");

    // Everything else goes on: the bearer token, sessions made before, other addresses.
    assert_eq!(app.get_authed("/api/leads").await.status(), 200);
    assert_eq!(
        get_with_cookie(&app, "/api/leads", &early_session)
            .await
            .status(),
        200
    );
    let elsewhere = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = login(&elsewhere, &app, DASHBOARD_TOKEN).await;
    assert_eq!(r.status(), 303, "another address is not locked out");
}

/// Checks the headers every answer must carry; `what` names the answer in failures.
fn assert_security_headers(r: &reqwest::Response, what: &str) {
    let h = r.headers();
    let csp = h
        .get("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no Content-Security-Policy"))
        .to_str()
        .unwrap();
    let directives: Vec<Vec<&str>> = csp
        .split(';')
        .map(|d| d.split_whitespace().collect())
        .filter(|d: &Vec<&str>| !d.is_empty())
        .collect();
    let directive = |name: &str| directives.iter().find(|d| d[0] == name).map(|d| &d[1..]);
    assert_eq!(
        directive("default-src"),
        Some(&["'self'"][..]),
        "{what}: {csp}"
    );
    assert_eq!(
        directive("frame-ancestors"),
        Some(&["'none'"][..]),
        "{what}: {csp}"
    );
    // Scripts fall back to default-src when script-src is absent; neither may allow inline.
    let scripts = directive("script-src")
        .or(directive("default-src"))
        .unwrap();
    for bad in [
        "'unsafe-inline'",
        "'unsafe-eval'",
        "*",
        "data:",
        "http:",
        "https:",
    ] {
        assert!(
            !scripts.contains(&bad),
            "{what}: scripts allow {bad}: {csp}"
        );
    }
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
}

fn assert_no_store(r: &reqwest::Response, what: &str) {
    let cc = r
        .headers()
        .get("cache-control")
        .unwrap_or_else(|| panic!("{what}: no Cache-Control"))
        .to_str()
        .unwrap();
    assert!(cc.contains("no-store"), "{what}: Cache-Control {cc}");
}

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

/// Bodies a signed sender could still get wrong, or a leaked secret could be used to send.
fn hostile_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let change = |value: &str| {
        format!(
            r#"{{"object":"page","entry":[{{"id":"{PAGE_ID}","time":1764338531,"changes":[{{"field":"leadgen","value":{value}}}]}}]}}"#
        )
        .into_bytes()
    };
    let with_id = |id: &str| change(&format!(r#"{{"leadgen_id":{id},"page_id":"{PAGE_ID}"}}"#));
    let deep_array = "[".repeat(100_000).into_bytes();
    let deep_object = "{\"a\":".repeat(100_000).into_bytes();
    let deep_inside = format!(
        r#"{{"object":"page","entry":[{}{}]}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    )
    .into_bytes();
    let many_bad_changes = {
        let one = r#"{"field":"leadgen","value":{"leadgen_id":"../../x"}},"#;
        let mut s = r#"{"object":"page","entry":[{"changes":["#.to_string();
        s.push_str(&one.repeat(5_000));
        s.push_str(r#"{}]}]}"#);
        s.into_bytes()
    };
    let long_field = format!(
        r#"{{"object":"page","entry":[{{"changes":[{{"field":"{}","value":{{}}}}]}}]}}"#,
        "A".repeat(100_000)
    )
    .into_bytes();
    let mut invalid_utf8 =
        br#"{"object":"page","entry":[{"changes":[{"field":"leadgen","value":{"leadgen_id":""#
            .to_vec();
    invalid_utf8.extend_from_slice(b"\xff\xfe\xc3\x28");
    invalid_utf8.extend_from_slice(br#""}}]}]}"#);
    vec![
        ("empty", Vec::new()),
        ("not JSON", b"leadgen_id=1234567890".to_vec()),
        ("an array", b"[]".to_vec()),
        ("null", b"null".to_vec()),
        ("a string", b"\"entry\"".to_vec()),
        ("an empty object", b"{}".to_vec()),
        ("entry is a string", br#"{"object":"page","entry":"x"}"#.to_vec()),
        ("entries of every wrong type", br#"{"object":"page","entry":[null,1,"x",[],true]}"#.to_vec()),
        ("changes is an object", br#"{"entry":[{"id":{},"changes":{"field":"leadgen"}}]}"#.to_vec()),
        ("value is a string", change(r#""1234567890""#)),
        ("value is null", change("null")),
        ("id is true", with_id("true")),
        ("id is a list", with_id(r#"["1234"]"#)),
        ("id is an object", with_id(r#"{"id":"1234"}"#)),
        ("id is negative", with_id("-5")),
        ("id is a fraction", with_id("1.5")),
        ("id is 1e999", with_id("1e999")),
        ("id is 1e308", with_id("1e308")),
        ("id overflows u64", with_id("99999999999999999999999")),
        ("id is empty", with_id(r#""""#)),
        ("id is blank", with_id(r#""   ""#)),
        ("id climbs directories", with_id(r#""../../x""#)),
        ("digits then a path", with_id(r#""123/../../x""#)),
        ("digits then a query", with_id(r#""123?fields=access_token""#)),
        ("digits then a fragment", with_id(r#""123#x""#)),
        ("an encoded path", with_id(r#""%2e%2e%2fx""#)),
        ("a URL", with_id(r#""http://evil.example/1""#)),
        ("fullwidth digits", with_id(r#""１２３""#)),
        ("33 digits", with_id(&format!(r#""{}""#, "1".repeat(33)))),
        ("an escaped NUL in the id", with_id(r#""123\u0000""#)),
        ("a lone surrogate", with_id(r#""\ud800""#)),
        ("raw NUL bytes", b"\0\0\0\0".to_vec()),
        ("NUL inside JSON", b"{\"entry\":[\0]}".to_vec()),
        (
            "NUL in the field name",
            b"{\"entry\":[{\"changes\":[{\"field\":\"leadgen\0\",\"value\":{\"leadgen_id\":\"1\"}}]}]}".to_vec(),
        ),
        ("NUL after the JSON", [&b"{}"[..], b"\0"].concat()),
        ("invalid UTF-8 alone", b"\xff\xfe\xfd".to_vec()),
        ("invalid UTF-8 in a string", invalid_utf8),
        ("a number with 10,000 digits", format!("1{}", "0".repeat(10_000)).into_bytes()),
        ("1e999 as created_time", change(r#"{"leadgen_id":"../x","created_time":1e999}"#)),
        ("100k nested arrays", deep_array),
        ("100k nested objects", deep_object),
        ("100k nested arrays inside entry", deep_inside),
        ("5,000 broken changes", many_bad_changes),
        ("a 100 KB field name", long_field),
        (
            "a change that is not leadgen",
            br#"{"entry":[{"changes":[{"field":"feed","value":{"leadgen_id":"1234"}}]}]}"#.to_vec(),
        ),
    ]
}

#[tokio::test]
async fn hostile_signed_webhook_bodies_get_a_4xx_or_a_logged_200_and_a_real_lead_still_flows() {
    let app = TestApp::spawn().await;
    let mut accepted = 0;
    for (what, body) in hostile_bodies() {
        let started = Instant::now();
        let r = app.post_webhook(&body).await;
        let status = r.status();
        assert!(
            status == 200 || status.is_client_error(),
            "{what}: {status} {}",
            r.text().await.unwrap_or_default()
        );
        // Generous for an unoptimised test build on a busy machine: this catches a blow-up
        // (a quadratic walk, a recursion), not a slow millisecond.
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{what} took {:?}",
            started.elapsed()
        );
        if status == 200 {
            accepted += 1;
            // A 200 means the body was kept raw with a note saying why it is unusable.
            let (kind, note): (String, Option<String>) = db(&app)
                .query_row(
                    "SELECT kind, note FROM deliveries ORDER BY id DESC LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert_eq!(kind, "unusable", "{what}");
            let note = note.unwrap_or_default();
            assert!(!note.is_empty(), "{what}: no note");
            assert!(
                note.len() < 16 * 1024,
                "{what}: a note of {} bytes",
                note.len()
            );
        }
    }
    assert_eq!(count(&app, "SELECT count(*) FROM deliveries"), accepted);
    assert_eq!(
        count(&app, "SELECT count(*) FROM jobs"),
        0,
        "no hostile body made a job"
    );

    let id = lead_id(7);
    app.graph
        .add_lead(&id, FORM_ID, 1_764_338_531, &[("full_name", "Real Person")]);
    assert_eq!(app.post_webhook(&leadgen_body(&[&id])).await.status(), 200);
    assert_eq!(app.wait_for_count(1, Duration::from_secs(5)).await, 1);
    assert_eq!(app.leads("").await["leads"][0]["leadgen_id"], id);
    assert_graph_saw_only_ids(&app);
}

/// Every path the fake Graph was asked for is made of ids (digits) and Graph's own words.
fn assert_graph_saw_only_ids(app: &TestApp) {
    let calls = app.graph.calls();
    assert!(!calls.is_empty());
    for call in calls {
        for segment in call.split('/').filter(|s| !s.is_empty()) {
            assert!(
                segment.bytes().all(|b| b.is_ascii_digit())
                    || ["leads", "leadgen_forms"].contains(&segment),
                "Graph was asked for {call:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_lead_id_that_is_not_digits_never_reaches_graph() {
    let app = TestApp::spawn().await;
    let good = lead_id(3);
    app.graph
        .add_lead(&good, FORM_ID, 1_764_338_531, &[("full_name", "Good Lead")]);
    // One delivery: a traversal id, then a real lead whose other ids are hostile (dropped,
    // not trusted), then more ids that would change the URL.
    let body = json!({"object": "page", "entry": [{"id": "../../pages", "time": 1, "changes": [
        {"field": "leadgen", "value": {"leadgen_id": "../../x", "page_id": PAGE_ID}},
        {"field": "leadgen", "value": {"leadgen_id": good, "page_id": "../x", "form_id": FORM_ID,
            "ad_id": "1?x=", "adgroup_id": "#"}},
        {"field": "leadgen", "value": {"leadgen_id": "1/leads", "page_id": PAGE_ID}},
        {"field": "leadgen", "value": {"leadgen_id": "1?access_token=x", "page_id": PAGE_ID}},
    ]}]});
    let r = app.post_webhook(&serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.wait_for_count(1, Duration::from_secs(5)).await, 1);
    let lead = &app.leads("").await["leads"][0];
    assert_eq!(lead["leadgen_id"], good);
    assert_eq!(lead["ad_id"], Value::Null, "a hostile ad id is dropped");
    let jobs: Vec<String> = {
        let c = db(&app);
        let mut st = c.prepare("SELECT leadgen_id FROM jobs").unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(jobs, vec![good.clone()]);
    assert_eq!(app.graph.lead_calls(&good), 1);
    assert_graph_saw_only_ids(&app);
}

const OVER_LIMIT: usize = 5 * 1024 * 1024;
const LIMIT: usize = 4 * 1024 * 1024;

/// A JSON body of exactly `len` bytes (a real leadgen body padded with spaces).
fn padded_body(len: usize, id: &str) -> Vec<u8> {
    let mut body = leadgen_body(&[id]);
    assert!(body.len() < len);
    body.resize(len, b' ');
    body
}

/// POSTs `body` to /webhook as a chunked stream of 64 KiB pieces (no Content-Length).
async fn post_chunked(app: &TestApp, body: Vec<u8>, signature: &str) -> reqwest::Response {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    app.client
        .post(app.url("/webhook"))
        .header("x-hub-signature-256", signature)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("an answer, not a reset connection")
}

#[tokio::test]
async fn bodies_over_4_mib_are_refused_with_413_whether_declared_or_chunked() {
    let app = TestApp::spawn().await;
    // The size is checked before the signature, so these need no real one (signing megabytes
    // in an unoptimised test build costs seconds).
    let unsigned = format!("sha256={}", "0".repeat(64));
    for (what, len) in [("5 MiB", OVER_LIMIT), ("4 MiB + 1 byte", LIMIT + 1)] {
        let body = padded_body(len, &lead_id(1));
        let r = app.post_webhook_raw(body.clone(), Some(&unsigned)).await;
        assert_eq!(r.status(), 413, "{what} with Content-Length");
        let v: Value = r.json().await.unwrap();
        assert!(v["error"].as_str().unwrap().contains("4 MiB"), "{v}");
        let r = post_chunked(&app, body, &unsigned).await;
        assert_eq!(r.status(), 413, "{what} chunked");
    }
    // Exactly 4 MiB is read in full both ways: it gets as far as the signature check.
    let body = padded_body(LIMIT, &lead_id(1));
    let r = app.post_webhook_raw(body.clone(), Some(&unsigned)).await;
    assert_eq!(r.status(), 403, "4 MiB with Content-Length");
    let r = post_chunked(&app, body, &unsigned).await;
    assert_eq!(r.status(), 403, "4 MiB chunked");
    assert_eq!(count(&app, "SELECT count(*) FROM deliveries"), 0);

    // The server is unharmed.
    let ids = add_graph_leads(&app, 10, 1);
    assert_eq!(
        app.post_webhook(&leadgen_body(&[&ids[0]])).await.status(),
        200
    );
    assert_eq!(app.wait_for_count(1, Duration::from_secs(5)).await, 1);
}

#[tokio::test]
async fn hostile_answers_are_stored_and_served_byte_for_byte() {
    let app = TestApp::spawn().await;
    let answers: Vec<(&str, &str)> = vec![
        ("full_name", "<script>alert(1)</script>"),
        ("email", r#"=HYPERLINK("http://evil","x")"#),
        ("phone_number", "+1 (555) 0100"),
        ("city", "-2+3+cmd|' /C calc'!A0"),
        ("company_name", "@SUM(1+1)*cmd|' /C calc'!A0"),
        ("job_title", "\tleading tab"),
        ("street_address", "\rleading CR\nsecond line"),
        ("comment", "\"quoted\", with comma; and \\ backslash"),
        (
            "note",
            "nul \u{0} inside, rtl \u{202e}txt.exe, emoji 🎉, Ünïcödé",
        ),
        ("html", "<img src=x onerror=alert(1)> & &amp; </textarea>"),
    ];
    let id = lead_id(5);
    app.graph.add_lead(&id, FORM_ID, 1_764_338_531, &answers);
    assert_eq!(app.post_webhook(&leadgen_body(&[&id])).await.status(), 200);
    assert_eq!(app.wait_for_count(1, Duration::from_secs(5)).await, 1);
    let lead = app.leads("").await["leads"][0].clone();
    for (i, (name, value)) in answers.iter().enumerate() {
        assert_eq!(lead["fields"][name], *value, "{name}");
        assert_eq!(lead["field_data"][i]["name"], *name);
        assert_eq!(lead["field_data"][i]["values"][0], *value);
    }
    // The stream carries the same bytes.
    let mut sse = app.open_stream(Some(0)).await;
    let streamed = sse.leads(1, Duration::from_secs(5)).await;
    assert_eq!(streamed[0]["fields"], lead["fields"]);
}

#[tokio::test]
async fn the_csv_export_neutralises_cells_that_a_spreadsheet_would_run() {
    let app = TestApp::spawn().await;
    let answers: Vec<(&str, &str)> = vec![
        ("full_name", "<script>alert(1)</script>"),
        ("email", r#"=HYPERLINK("http://evil","x")"#),
        ("phone_number", "+1 555 0100"),
        ("city", "-2+3"),
        ("company_name", "@SUM(1+1)"),
        ("job_title", "\tTab"),
        ("street_address", "\rCR"),
    ];
    let id = lead_id(6);
    app.graph.add_lead(&id, FORM_ID, 1_764_338_531, &answers);
    assert_eq!(app.post_webhook(&leadgen_body(&[&id])).await.status(), 200);
    assert_eq!(app.wait_for_count(1, Duration::from_secs(5)).await, 1);
    let r = app.get_authed("/api/leads.csv").await;
    assert_eq!(r.status(), 200);
    let bytes = r.bytes().await.unwrap();
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim_start_matches('\u{feff}');
    let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1, "{text}");
    for cell in headers.iter().chain(rows[0].iter()) {
        let first = cell.chars().next();
        assert!(
            !matches!(first, Some('=' | '+' | '-' | '@' | '\t' | '\r')),
            "a live formula cell: {cell:?}"
        );
    }
    let cells: Vec<&str> = rows[0].iter().collect();
    for (name, value) in &answers {
        let expected = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{value}")
        } else {
            value.to_string()
        };
        assert!(
            cells.contains(&expected.as_str()),
            "{name}: {expected:?} not in {cells:?}"
        );
    }
}

/// Captures the webhook route's warnings, so a test can count log lines.
struct Capture {
    lines: Mutex<Vec<(Instant, String)>>,
}

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Warn && m.target().starts_with("leadstream::routes::webhook")
    }
    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            self.lines
                .lock()
                .unwrap()
                .push((Instant::now(), record.args().to_string()));
        }
    }
    fn flush(&self) {}
}

/// The test binary's logger (installed once; nothing else in the tests installs one).
fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let c: &'static Capture = Box::leak(Box::new(Capture {
            lines: Mutex::new(Vec::new()),
        }));
        log::set_logger(c).expect("no other logger in the test binary");
        log::set_max_level(log::LevelFilter::Warn);
        c
    })
}

fn refused_lines_since(t: Instant) -> Vec<String> {
    capture()
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter(|(at, l)| *at >= t && l.contains("webhook refused: X-Hub-Signature-256"))
        .map(|(_, l)| l.clone())
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
    capture();
    let app = TestApp::spawn().await;
    let body = leadgen_body(&[&lead_id(1)]);
    let forged = format!("sha256={}", "0".repeat(64));
    let other_secret = leadstream::meta::signature::sign(b"someone else's secret", &body);
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
        count(&app, "SELECT count(*) FROM deliveries"),
        0,
        "nothing forged was stored"
    );
    assert!(app.graph.calls().is_empty());

    // At most one line per second of flood (plus the second it started in), whoever else in
    // this test binary is refused at the same time: the limit is process-wide.
    let lines = refused_lines_since(flood_started);
    let allowed = elapsed.as_secs() as usize + 2;
    assert!(
        !lines.is_empty() && lines.len() <= allowed,
        "{} lines for a flood of {elapsed:?}: {lines:#?}",
        lines.len()
    );
    // A refusal in a later second reports how many were left out, so nothing is hidden.
    let before = refused_lines_since(flood_started).len();
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

#[tokio::test]
async fn a_body_that_breaks_off_gets_a_4xx_with_the_security_headers() {
    // A client that promises 100 bytes and hangs up after 7 makes warp's body reader fail;
    // the answer must still be ours (4xx, JSON, headers), not warp's bare text default.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    let addr = app.base.trim_start_matches("http://").to_string();
    for path in ["/login", "/webhook"] {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: 100\r\n\r\ntoken=x"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        s.shutdown().await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        assert!(answer.starts_with("http/1.1 400 "), "{path}: {answer}");
        assert!(
            answer.contains("content-type: application/json"),
            "{path}: {answer}"
        );
        assert!(
            answer.contains("content-security-policy: default-src 'self'"),
            "{path}: {answer}"
        );
        assert!(
            answer.contains("x-content-type-options: nosniff"),
            "{path}: {answer}"
        );
        assert!(
            answer.contains("cache-control: no-store"),
            "{path}: {answer}"
        );
    }
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
