//! Every private route answers 401 to every wrong credential, and the dashboard's address
//! shows the login page, never lead data.

use serde_json::Value;

use super::*;
use crate::helpers::*;

#[tokio::test]
async fn every_private_api_route_answers_401_json_to_every_wrong_credential() {
    // Well over a hundred wrong tokens from one address: the guess limit (tested in
    // `sessions`) would answer 429 long before the end, so it is lifted here.
    let app = TestApp::spawn_tuned(|s| s.tuning.guess_limit = u32::MAX).await;
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
