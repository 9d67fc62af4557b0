//! Webhook destinations against a receiver that verifies signatures with the
//! `standardwebhooks` crate: delivered, retried through an outage, set aside after errors and
//! retried by hand, slow answers that hold up nobody else, forms filters.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::helpers::receiver::{Answer, Receiver};

#[tokio::test]
async fn every_new_lead_reaches_the_webhook_signed_so_an_independent_library_accepts_it() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let id = add_webhook(&app, &receiver, json!({})).await;
    let ids = save_leads(&app, 1, 3).await;
    let got = receiver.wait_for_accepted(3, Duration::from_secs(10)).await;
    assert!(
        got.iter().all(|r| r.verified),
        "every signature verifies: {got:#?}"
    );
    let mut seen: Vec<String> = got
        .iter()
        .map(|r| {
            assert_eq!(r.body["type"], "lead.created");
            assert!(r.body["timestamp"].is_string());
            assert!(r.webhook_id.starts_with("msg_"));
            r.body["data"]["leadgen_id"].as_str().unwrap().to_string()
        })
        .collect();
    seen.sort();
    assert_eq!(seen, ids);
    assert!(got[0].body["data"]["fields"]["full_name"]
        .as_str()
        .unwrap()
        .starts_with("Person"));
    let d = wait_for_deliveries(&app, id, Duration::from_secs(5), |d| {
        in_state(d, "delivered") == 3
    })
    .await;
    assert!(d
        .iter()
        .all(|x| x["attempts"] == 1 && x["last_status"] == 200));
    // A receiver with another secret refuses them: the check is real.
    receiver.set_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    save_leads(&app, 10, 1).await;
    receiver.wait_for_requests(4, Duration::from_secs(10)).await;
    assert!(!receiver.received()[3].verified);
}

#[tokio::test]
async fn a_receiver_down_for_a_while_gets_every_lead_once_per_webhook_id_when_it_is_back() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let id = add_webhook(&app, &receiver, json!({})).await;
    receiver.down();
    save_leads(&app, 1, 2).await;
    // Tried, and tried again, while nothing listens.
    wait_for_deliveries(&app, id, Duration::from_secs(10), |d| {
        d.len() == 2 && d.iter().all(|x| x["attempts"].as_i64().unwrap() >= 2)
    })
    .await;
    let d = deliveries(&app, id).await;
    assert!(d.iter().all(|x| x["state"] == "pending"));
    assert!(
        d[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("could not connect"),
        "{d:#?}"
    );
    let s = app.status().await;
    let problems = s["problems"].to_string();
    assert!(
        problems.contains(&format!("Webhook to http://{} has failed", receiver.addr)),
        "{problems}"
    );
    receiver.up().await;
    let got = receiver.wait_for_accepted(2, Duration::from_secs(10)).await;
    wait_for_deliveries(&app, id, Duration::from_secs(5), |d| {
        in_state(d, "delivered") == 2
    })
    .await;
    // Once per webhook-id, and every try of one event carried the same id.
    let ids: HashSet<&str> = got.iter().map(|r| r.webhook_id.as_str()).collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(receiver.accepted().len(), 2);
    let d = deliveries(&app, id).await;
    let listed: HashSet<&str> = d
        .iter()
        .map(|x| x["webhook_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, listed);
    // Healthy again: no problem named.
    let s = app.status().await;
    assert!(!s["problems"].to_string().contains("Webhook to"), "{s}");
}

#[tokio::test]
async fn errors_set_a_delivery_aside_with_the_status_and_an_escaped_snippet_and_an_admin_retries_it(
) {
    let app = TestApp::spawn_tuned(|s| s.tuning.retry_for = Duration::from_millis(600)).await;
    let receiver = Receiver::start().await;
    let id = add_webhook(&app, &receiver, json!({})).await;
    receiver.answer(Answer::Status(500, "<h1>boom</h1>\nline two".into()));
    save_leads(&app, 1, 1).await;
    let d = wait_for_deliveries(&app, id, Duration::from_secs(10), |d| {
        in_state(d, "dead") == 1
    })
    .await;
    assert_eq!(d[0]["last_status"], 500);
    let err = d[0]["last_error"].as_str().unwrap();
    assert!(
        err.starts_with("HTTP 500: <h1>boom</h1>\\nline two"),
        "{err}"
    );
    assert!(d[0]["attempts"].as_i64().unwrap() >= 2);
    let list = app.get_json("/api/destinations").await;
    assert_eq!(list["destinations"][0]["dead"], 1);
    assert!(list["destinations"][0]["problem"]
        .as_str()
        .unwrap()
        .contains("HTTP 500"));
    receiver.answer(Answer::Ok);
    let r = app
        .post_json(&format!("/api/destinations/{id}/retry"))
        .await;
    assert_eq!(r["retried"], 1);
    receiver.wait_for_accepted(1, Duration::from_secs(10)).await;
    wait_for_deliveries(&app, id, Duration::from_secs(5), |d| {
        in_state(d, "delivered") == 1
    })
    .await;
}

#[tokio::test]
async fn a_slow_receiver_times_out_and_holds_up_neither_ingest_nor_another_destination() {
    let app = TestApp::spawn_tuned(|s| s.tuning.forward_timeout = Duration::from_millis(500)).await;
    let slow = Receiver::start().await;
    let fast = Receiver::start().await;
    let slow_id = add_webhook(&app, &slow, json!({})).await;
    add_webhook(&app, &fast, json!({})).await;
    slow.answer(Answer::Slow(Duration::from_secs(30)));
    save_leads(&app, 1, 6).await;
    // Every lead saved and at the fast receiver while the slow one is still stuck.
    assert_eq!(app.wait_for_count(6, Duration::from_secs(5)).await, 6);
    fast.wait_for_accepted(6, Duration::from_secs(5)).await;
    let d = wait_for_deliveries(&app, slow_id, Duration::from_secs(10), |d| {
        d.iter().any(|x| {
            x["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("no answer within"))
        })
    })
    .await;
    assert_eq!(in_state(&d, "delivered"), 0);
}

#[tokio::test]
async fn a_destination_limited_to_some_forms_gets_only_their_leads() {
    let app = TestApp::spawn().await;
    let mine = Receiver::start().await;
    let other = Receiver::start().await;
    let all = Receiver::start().await;
    let other_id = add_webhook(&app, &other, json!({"forms": ["999999999999999"]})).await;
    add_webhook(&app, &mine, json!({"forms": [FORM_ID]})).await;
    add_webhook(&app, &all, json!({})).await;
    save_leads(&app, 1, 2).await;
    mine.wait_for_accepted(2, Duration::from_secs(10)).await;
    all.wait_for_accepted(2, Duration::from_secs(10)).await;
    assert!(deliveries(&app, other_id).await.is_empty());
    assert!(other.received().is_empty());
}

#[tokio::test]
async fn erasing_a_lead_drops_its_deliveries_so_its_answers_are_never_sent() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let id = add_webhook(&app, &receiver, json!({})).await;
    receiver.down();
    save_leads(&app, 1, 1).await;
    let d = wait_for_deliveries(&app, id, Duration::from_secs(10), |d| {
        d.len() == 1 && d[0]["attempts"].as_i64().unwrap() >= 1
    })
    .await;
    let lead = d[0]["lead_id"].as_i64().unwrap();
    let r = app
        .client
        .delete(app.url(&format!("/api/leads/{lead}")))
        .bearer_auth(DASHBOARD_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(deliveries(&app, id).await.is_empty());
    // Back up: the next lead arrives, and it alone.
    receiver.up().await;
    save_leads(&app, 2, 1).await;
    let got = receiver.wait_for_accepted(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].body["data"]["leadgen_id"], lead_id(2));
    wait_for_deliveries(&app, id, Duration::from_secs(5), |d| {
        in_state(d, "delivered") == 1
    })
    .await;
    assert_eq!(receiver.accepted().len(), 1);
}

#[tokio::test]
async fn a_change_to_a_lead_is_forwarded_as_lead_updated_to_destinations_that_want_it() {
    let app = TestApp::spawn().await;
    let everything = Receiver::start().await;
    let created_only = Receiver::start().await;
    add_webhook(
        &app,
        &everything,
        json!({"events": ["lead.created", "lead.updated"]}),
    )
    .await;
    add_webhook(&app, &created_only, json!({})).await;
    save_leads(&app, 1, 1).await;
    everything
        .wait_for_accepted(1, Duration::from_secs(10))
        .await;
    let lead = &app.leads("limit=1").await["leads"][0];
    let id = lead["id"].as_i64().unwrap();
    let r = app
        .patch_lead(id, &json!({"status": "contacted", "version": 1}))
        .await;
    assert_eq!(r.status().as_u16(), 200);

    let got = everything
        .wait_for_accepted(2, Duration::from_secs(10))
        .await;
    let update = got
        .iter()
        .find(|r| r.body["type"] == "lead.updated")
        .expect("the change is forwarded");
    assert!(update.verified);
    assert_eq!(update.body["data"]["id"], id);
    assert_eq!(update.body["data"]["status"], "contacted");
    assert_eq!(update.body["data"]["version"], 2);
    // The destination that asked for new leads only gets the new lead, once.
    created_only
        .wait_for_accepted(1, Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen: Vec<_> = created_only
        .received()
        .iter()
        .map(|r| r.body["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(seen, ["lead.created"]);
}
