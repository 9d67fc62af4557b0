//! Logging in: the session cookie and what it opens, what the database keeps of it, and the
//! limit on guessing.

use std::net::IpAddr;

use super::*;
use crate::helpers::db::{count, one, rows};
use crate::helpers::*;

/// `GET /?token=…`: the URL leadstream prints at start-up, which logs in once.
async fn open_start_up_url(app: &TestApp) -> reqwest::Response {
    app.client
        .get(app.url(&format!("/?token={DASHBOARD_TOKEN}")))
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
        count(&app, "SELECT count(*) FROM sessions").await,
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
    let stored = one(&app, "SELECT token_hash FROM sessions").await.unwrap();
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
    let r = open_start_up_url(&app).await;
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
    let r = open_start_up_url(&app).await;
    assert_eq!(r.status(), 429, "nor does the ?token= door");

    // The bearer token from this address waits too: both doors guess the same secret.
    assert_eq!(app.get_authed("/api/leads").await.status(), 429);
    // Everything else goes on: sessions made before, other addresses.
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

/// The session cookie `leadstream_session=…` of a fresh login with `token`.
async fn session_of(app: &TestApp, token: &str) -> String {
    let r = login(&app.client, app, token).await;
    assert_eq!(r.status(), 303, "logged in with {token}");
    set_cookie(&r).0
}

#[tokio::test]
async fn a_changed_dashboard_token_ends_every_session_made_with_the_old_one() {
    let app = TestApp::spawn().await;
    let old = session_of(&app, DASHBOARD_TOKEN).await;
    let also_old = session_of(&app, DASHBOARD_TOKEN).await;
    assert_eq!(
        get_with_cookie(&app, "/api/leads", &old).await.status(),
        200
    );

    // The same token after a restart: nothing changes.
    let app = app.restart().await;
    assert_eq!(
        get_with_cookie(&app, "/api/leads", &old).await.status(),
        200
    );

    // A new token: the old sessions are over, at once and for good.
    let new_token = "a-brand-new-dashboard-token-42";
    let app = app
        .restart_with(|s| s.dashboard_token = leadstream::config::Secret::new(new_token))
        .await;
    for cookie in [&old, &also_old] {
        let r = get_with_cookie(&app, "/api/leads", cookie).await;
        assert_eq!(r.status(), 401, "a session of the old token");
        let page = get_with_cookie(&app, "/", cookie)
            .await
            .text()
            .await
            .unwrap();
        assert!(page.contains(r#"action="/login""#), "the login page");
    }
    assert_eq!(
        count(&app, "SELECT count(*) FROM sessions").await,
        0,
        "gone from the database"
    );
    let r = app
        .client
        .get(app.url("/api/leads"))
        .bearer_auth(DASHBOARD_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the old token itself opens nothing");

    // Sessions of the new token work, and survive the next restart.
    let fresh = session_of(&app, new_token).await;
    let app = app.restart().await;
    assert_eq!(
        get_with_cookie(&app, "/api/leads", &fresh).await.status(),
        200
    );
    let row = rows(
        &app,
        "SELECT principal, credential_kind, credential_fp FROM sessions",
    )
    .await
    .remove(0);
    let stored = (row[0].clone().unwrap(), row[1].clone().unwrap());
    assert_eq!(stored, ("admin".to_string(), "token".to_string()));
    let fp = row[2].clone().unwrap();
    assert!(
        !fp.contains(new_token) && fp.len() == 64,
        "a fingerprint, not the token"
    );
}
