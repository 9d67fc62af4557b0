//! Forwarding: every saved lead delivered to the destinations that want it, webhooks checked
//! by an independent Standard Webhooks implementation, mails parsed as MIME, through outages,
//! errors, slow answers and a `kill -9`.

mod api;
mod crash;
mod email;
mod webhooks;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::receiver::Receiver;
use crate::helpers::*;

/// `POST /api/destinations` with `body`; the answer's status and JSON.
async fn post_destination(app: &TestApp, body: &Value) -> (u16, Value) {
    let r = app
        .client
        .post(app.url("/api/destinations"))
        .bearer_auth(DASHBOARD_TOKEN)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Adds a webhook to `receiver` (with `extra` fields), tells the receiver its secret, and
/// returns the destination's id.
async fn add_webhook(app: &TestApp, receiver: &Receiver, extra: Value) -> i64 {
    let mut body = json!({"kind": "webhook", "url": receiver.url()});
    if let Value::Object(m) = extra {
        body.as_object_mut().unwrap().extend(m);
    }
    let (status, v) = post_destination(app, &body).await;
    assert_eq!(status, 201, "{v}");
    receiver.set_secret(v["secret"].as_str().expect("the secret, once"));
    v["id"].as_i64().unwrap()
}

async fn deliveries(app: &TestApp, id: i64) -> Vec<Value> {
    let v = app
        .get_json(&format!("/api/destinations/{id}/deliveries?limit=200"))
        .await;
    v["deliveries"].as_array().unwrap().clone()
}

/// Waits until `cond` holds on destination `id`'s deliveries; returns them.
async fn wait_for_deliveries(
    app: &TestApp,
    id: i64,
    timeout: Duration,
    cond: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let d = deliveries(app, id).await;
        if cond(&d) {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries never got there: {d:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn in_state(d: &[Value], state: &str) -> usize {
    d.iter().filter(|x| x["state"] == state).count()
}

/// Saves `n` leads (from `first`) through a webhook, and waits until they are saved.
async fn save_leads(app: &TestApp, first: u64, n: u64) -> Vec<String> {
    let ids = add_graph_leads(app, first, n);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.deliver(&refs).await;
    let want = app.lead_count().await;
    let _ = want;
    ids
}
