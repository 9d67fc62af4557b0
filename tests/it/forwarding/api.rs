//! Managing destinations: clear 400s, the secret shown once, removal, a test, access.

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::helpers::receiver::Receiver;

#[tokio::test]
async fn bad_destinations_are_refused_with_what_to_fix_and_nothing_is_kept() {
    let app = TestApp::spawn().await;
    for (body, words) in [
        (
            json!({"kind": "webhook", "url": "http://crm.example.com/in"}),
            "https",
        ),
        (json!({"kind": "webhook"}), "needs a url"),
        (json!({"kind": "pigeon"}), "kind must be"),
        (
            json!({"kind": "email", "to": ["sales@example.com"]}),
            "SMTP_URL",
        ),
        (
            json!({"kind": "webhook", "url": "https://x.example", "events": ["lead.gone"]}),
            "lead.created",
        ),
        (
            json!({"kind": "webhook", "url": "https://x.example", "forms": ["x"]}),
            "digits",
        ),
        (
            json!({"kind": "webhook", "url": "https://x.example", "colour": "red"}),
            "JSON",
        ),
    ] {
        let (status, v) = post_destination(&app, &body).await;
        assert_eq!(status, 400, "{body}: {v}");
        assert!(v["error"].as_str().unwrap().contains(words), "{body}: {v}");
    }
    let list = app.get_json("/api/destinations").await;
    assert_eq!(list["destinations"], json!([]));
}

#[tokio::test]
async fn the_secret_is_shown_once_and_a_removed_destination_is_gone_with_its_deliveries() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let (status, v) = post_destination(
        &app,
        &json!({"kind": "webhook", "url": receiver.url(), "events": ["lead.created", "lead.updated"]}),
    )
    .await;
    assert_eq!(status, 201);
    let secret = v["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(v["events"], json!(["lead.created", "lead.updated"]));
    let id = v["id"].as_i64().unwrap();
    let list = app
        .get_authed("/api/destinations")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !list.contains(&secret) && !list.contains("\"secret\""),
        "{list}"
    );
    let r = app
        .client
        .delete(app.url(&format!("/api/destinations/{id}")))
        .bearer_auth(DASHBOARD_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = app
        .get_authed(&format!("/api/destinations/{id}/deliveries"))
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        app.post_authed(&format!("/api/destinations/{id}/test"))
            .await
            .status(),
        404
    );
    // No credentials, no destinations.
    let r = app
        .client
        .get(app.url("/api/destinations"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn a_test_is_sent_once_signed_and_listed() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let id = add_webhook(&app, &receiver, json!({})).await;
    let r = app
        .post_authed(&format!("/api/destinations/{id}/test"))
        .await;
    assert_eq!(r.status(), 202);
    let got = receiver.wait_for_accepted(1, Duration::from_secs(10)).await;
    assert!(got[0].verified);
    assert_eq!(got[0].body["type"], "test");
    let d = wait_for_deliveries(&app, id, Duration::from_secs(5), |d| {
        in_state(d, "delivered") == 1
    })
    .await;
    assert_eq!(d[0]["event"], "test");
    assert_eq!(d[0]["lead_id"], serde_json::Value::Null);
}

#[tokio::test]
async fn a_member_sees_destinations_but_only_an_admin_changes_them() {
    use crate::team::{add_user, call, session};
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let id = add_webhook(&app, &receiver, json!({})).await;
    add_user(&app, "ada", false).await;
    let ada = session(&app, "ada").await;
    let (status, v) = call(&app, &ada, reqwest::Method::GET, "/api/destinations", None).await;
    assert_eq!(status, 200, "{v}");
    let body = json!({"kind": "webhook", "url": receiver.url()});
    let post = reqwest::Method::POST;
    let del = reqwest::Method::DELETE;
    for (method, path, body) in [
        (post.clone(), "/api/destinations".to_string(), Some(body)),
        (del, format!("/api/destinations/{id}"), None),
        (post.clone(), format!("/api/destinations/{id}/test"), None),
        (post, format!("/api/destinations/{id}/retry"), None),
    ] {
        let (status, v) = call(&app, &ada, method, &path, body).await;
        assert_eq!(status, 403, "{path}: {v}");
    }
    let (_, v) = call(&app, &ada, reqwest::Method::GET, "/api/destinations", None).await;
    assert_eq!(v["destinations"].as_array().unwrap().len(), 1, "{v}");
}
