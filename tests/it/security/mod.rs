//! Nobody reads leads without the token, and hostile input never hurts.
//!
//! Every test here runs the real server ([`TestApp`]) and attacks it over HTTP the way a
//! stranger on the internet could: wrong or forged credentials ([`access`]), guessed logins
//! and stolen sessions ([`sessions`]), answers a browser could be tricked by ([`headers`]),
//! hostile signed and unsigned webhook bodies, oversized and chunked bodies ([`webhooks`]),
//! floods of forged signatures ([`flood`]), and lead answers written to hurt a spreadsheet or
//! a browser ([`output`]). The pure parser and signature check get property tests in
//! [`properties`] (the stand-in for `cargo fuzz` that runs in CI).

mod access;
mod ended_sessions;
mod flood;
mod guessing;
mod headers;
mod invariants;
mod origin;
mod output;
mod properties;
mod sessions;
mod webhooks;

use std::time::Duration;

use reqwest::Method;

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
    app.deliver(&[&id]).await;
    assert_eq!(app.wait_for_count(1, Duration::from_secs(5)).await, 1);
}

/// Logs in with `token` through the form; returns the answer.
pub(crate) async fn login(
    client: &reqwest::Client,
    app: &TestApp,
    token: &str,
) -> reqwest::Response {
    client
        .post(app.url("/login"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
}

/// The `Set-Cookie` header of an answer, split into the `name=value` pair and its attributes.
pub(crate) fn set_cookie(r: &reqwest::Response) -> (String, Vec<String>) {
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
