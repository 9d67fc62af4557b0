//! Webhook ingest: handshake, signatures, durable jobs, exactly-once leads, retries.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn handshake_echoes_the_challenge_only_for_the_right_token() {
    let app = TestApp::spawn().await;
    let ok = app
        .client
        .get(app.url(&format!(
            "/webhook?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={VERIFY_TOKEN}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(ok.text().await.unwrap(), "1158201444");

    for q in [
        "hub.mode=subscribe&hub.challenge=1&hub.verify_token=wrong",
        "hub.mode=unsubscribe&hub.challenge=1&hub.verify_token=verify-me-please",
        "hub.mode=subscribe&hub.challenge=1",
        "",
    ] {
        let r = app
            .client
            .get(app.url(&format!("/webhook?{q}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{q}");
    }
}

#[tokio::test]
async fn a_signed_webhook_becomes_a_lead_with_fields() {
    let app = TestApp::spawn().await;
    let id = lead_id(1);
    app.graph.add_lead(
        &id,
        FORM_ID,
        1_764_338_531,
        &[("full_name", "Ada Lovelace"), ("email", "ada@example.com")],
    );
    let r = app.post_webhook(&leadgen_body(&[&id])).await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.wait_for_count(1, Duration::from_secs(5)).await, 1);
    let v = app.leads("").await;
    let lead = &v["leads"][0];
    assert_eq!(v["total"], 1);
    assert_eq!(lead["leadgen_id"], Value::String(id));
    assert_eq!(lead["fields"]["full_name"], "Ada Lovelace");
    assert_eq!(lead["field_data"][1]["values"][0], "ada@example.com");
    assert_eq!(lead["created_time"], "2025-11-28T14:02:11Z");
    assert_eq!(lead["page_id"], PAGE_ID);
    assert_eq!(lead["ad_id"], Value::Null);
}
