//! Webhook ingest: the handshake, signatures, payload shapes, and exactly one lead per lead id
//! however often Meta sends it.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::db::{count, deliveries, job_count};
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

/// Asserts the server kept nothing: no delivery, no job, no lead, nothing waiting.
async fn assert_nothing_stored(app: &TestApp) {
    assert!(
        deliveries(app).await.is_empty(),
        "no delivery may be stored"
    );
    assert_eq!(job_count(app).await, 0, "no job may be created");
    let s = app.status().await;
    assert_eq!(s["jobs_waiting"], 0);
    assert_eq!(s["leads"], 0);
}

/// How often Graph was asked for each lead id.
fn graph_calls_per_id(app: &TestApp) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for c in app.graph.calls() {
        *m.entry(c).or_insert(0) += 1;
    }
    m
}

const META_VECTOR_BODY: &[u8] = br#"{"name":"Jos\u00e9 \u00e4\u00f6\u00e5","url":"https:\/\/x"}"#;
const META_VECTOR_SIG: &str =
    "sha256=1c05557cd8709f96cdcd9b68b0d5bc88b85456f53cc0292ee4a0eac1a69f4094";

// ---------------------------------------------------------------------------------------------
// Signatures
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_missing_malformed_or_wrong_signature_is_refused_with_403_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let id = lead_id(1);
    add_graph_leads(&app, 1, 1);
    let body = leadgen_body(&[&id]);
    let right = leadstream::ingest::signature::sign(APP_SECRET.as_bytes(), &body);
    let other_secret = leadstream::ingest::signature::sign(b"not-the-app-secret", &body);
    let mut tampered = body.clone();
    *tampered.last_mut().unwrap() = b' ';
    let cases: Vec<(&str, Vec<u8>, Option<String>)> = vec![
        ("missing", body.clone(), None),
        ("empty", body.clone(), Some(String::new())),
        (
            "sha1 only",
            body.clone(),
            Some("sha1=0123456789abcdef0123456789abcdef01234567".into()),
        ),
        (
            "no prefix",
            body.clone(),
            Some(right.trim_start_matches("sha256=").into()),
        ),
        ("short hex", body.clone(), Some(right[..40].to_string())),
        (
            "not hex",
            body.clone(),
            Some(format!("sha256={}", "zz".repeat(32))),
        ),
        ("other secret", body.clone(), Some(other_secret)),
        ("body changed after signing", tampered, Some(right.clone())),
        (
            "all zeros",
            body.clone(),
            Some(format!("sha256={}", "0".repeat(64))),
        ),
    ];
    for (what, body, sig) in cases {
        let r = app.post_webhook_raw(body, sig.as_deref()).await;
        assert_eq!(r.status(), 403, "{what}");
        let err: Value = r.json().await.unwrap();
        assert!(
            err["error"]
                .as_str()
                .unwrap()
                .contains("X-Hub-Signature-256"),
            "{what}: {err}"
        );
    }
    assert_nothing_stored(&app).await;
    assert!(
        app.graph.calls().is_empty(),
        "a refused webhook must never reach Graph"
    );

    // The same body with the right signature goes through: the refusals above were about
    // the signature, not the body.
    let r = app.post_webhook_raw(body, Some(&right)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.wait_for_count(1, Duration::from_secs(5)).await, 1);
}

#[tokio::test]
async fn meta_test_vector_with_escapes_intact_is_accepted_with_its_published_signature() {
    let app = TestApp::spawn().await;
    assert_eq!(
        APP_SECRET, "test_app_secret",
        "the published vector (docs/meta.md) uses this secret"
    );
    // The header value is the published one (docs/meta.md), not computed here: the server must agree with Meta.
    let r = app
        .post_webhook_raw(META_VECTOR_BODY.to_vec(), Some(META_VECTOR_SIG))
        .await;
    assert_eq!(r.status(), 200);
    // Not a leadgen envelope, so it is kept raw, byte for byte, escapes and all.
    let stored = deliveries(&app).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0, "unusable");
    assert_eq!(stored[0].1, META_VECTOR_BODY);

    // The same JSON re-serialised (escapes resolved) is other bytes: refused.
    let reserialised =
        serde_json::to_vec(&serde_json::from_slice::<Value>(META_VECTOR_BODY).unwrap()).unwrap();
    assert_ne!(reserialised, META_VECTOR_BODY);
    let r = app
        .post_webhook_raw(reserialised, Some(META_VECTOR_SIG))
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(deliveries(&app).await.len(), 1);
}

#[tokio::test]
async fn githubs_published_vector_verifies_when_its_secret_is_the_app_secret() {
    let app = TestApp::spawn_tuned(|s| {
        s.meta.as_mut().unwrap().app_secret =
            leadstream::config::Secret::new("It's a Secret to Everybody");
    })
    .await;
    let r = app
        .post_webhook_raw(
            b"Hello, World!".to_vec(),
            Some("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(deliveries(&app).await[0].1, b"Hello, World!");
}

#[tokio::test]
async fn a_leadgen_body_with_unicode_and_slash_escapes_is_verified_on_its_raw_bytes_and_becomes_a_lead(
) {
    let app = TestApp::spawn().await;
    let id = lead_id(7);
    add_graph_leads(&app, 7, 1);
    // Written by hand so the escapes are exactly as Meta sends them.
    let body = format!(
        r#"{{"object":"page","entry":[{{"id":"{PAGE_ID}","time":1764338531,"changes":[{{"field":"leadgen","value":{{"leadgen_id":"{id}","page_id":"{PAGE_ID}","form_id":"{FORM_ID}","created_time":1764338531,"note":"K\u00e4se \/ Br\u00f6tchen","link":"https:\/\/fb.me\/x"}}}}]}}]}}"#
    );
    assert!(body.contains(r"\u00e4") && body.contains(r"\/"));
    let r = app.post_webhook(body.as_bytes()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.wait_for_count(1, Duration::from_secs(5)).await, 1);
    assert_eq!(app.leads("").await["leads"][0]["leadgen_id"], id);
    assert_eq!(
        deliveries(&app).await[0].1,
        body.as_bytes(),
        "kept byte for byte"
    );
}

// ---------------------------------------------------------------------------------------------
// Payload shapes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn ids_sent_as_16_digit_numbers_or_strings_become_exact_string_ids_and_a_missing_ad_id_is_null(
) {
    let app = TestApp::spawn().await;
    // 2^53 + 1: a JSON number that an f64 would silently turn into ...992.
    let as_number = "9007199254740993";
    let as_string = lead_id(2);
    for id in [as_number, as_string.as_str()] {
        app.graph
            .add_lead(id, FORM_ID, 1_764_338_531, &[("full_name", "Ada")]);
    }
    let body = format!(
        r#"{{"object":"page","entry":[{{"id":{PAGE_ID},"time":1764338531,"changes":[
            {{"field":"leadgen","value":{{"leadgen_id":{as_number},"page_id":{PAGE_ID},"form_id":{FORM_ID},"ad_id":1234567890123456,"created_time":1764338531}}}},
            {{"field":"leadgen","value":{{"leadgen_id":"{as_string}","page_id":"{PAGE_ID}","form_id":"{FORM_ID}","created_time":"1764338531"}}}}
        ]}}]}}"#
    );
    let r = app.post_webhook(body.as_bytes()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.wait_for_count(2, Duration::from_secs(5)).await, 2);
    let leads = app.leads("").await;
    let by_id = |id: &str| {
        leads["leads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["leadgen_id"] == id)
            .unwrap_or_else(|| panic!("lead {id} missing from {leads}"))
            .clone()
    };
    let n = by_id(as_number);
    assert_eq!(n["page_id"], PAGE_ID, "numeric page id kept as text");
    assert_eq!(n["form_id"], FORM_ID);
    assert_eq!(n["ad_id"], "1234567890123456");
    let s = by_id(&as_string);
    assert_eq!(s["ad_id"], Value::Null, "no ad_id for organic leads");
    assert_eq!(s["adgroup_id"], Value::Null);
    assert_eq!(
        app.graph.lead_calls(as_number),
        1,
        "Graph asked for the exact id"
    );
}

#[tokio::test]
async fn messaging_events_are_accepted_and_kept_raw_but_are_not_leads() {
    let app = TestApp::spawn().await;
    let body = br#"{"object":"page","entry":[{"id":"111111111111111","time":1764338531000,"messaging":[{"sender":{"id":"5"},"recipient":{"id":"111111111111111"},"timestamp":1764338531000,"message":{"mid":"m_1","text":"Hi \u00e4"}}]}]}"#;
    let r = app.post_webhook(body).await;
    assert_eq!(r.status(), 200);
    let stored = deliveries(&app).await;
    assert_eq!(stored, vec![("messaging".to_string(), body.to_vec())]);
    assert_eq!(job_count(&app).await, 0);
    assert_eq!(app.lead_count().await, 0);
    assert!(app.graph.calls().is_empty(), "messages are not looked up");
}

#[tokio::test]
async fn signed_but_unusable_bodies_are_kept_raw_and_answered_200() {
    let app = TestApp::spawn().await;
    let bodies: Vec<&[u8]> = vec![
        b"not json at all",
        b"[]",
        b"{}",
        b"",
        br#"{"object":"page","entry":[{"id":"1","changes":[{"field":"feed","value":{"item":"post"}}]}]}"#,
        br#"{"object":"page","entry":[{"id":"1","changes":[{"field":"leadgen","value":{"leadgen_id":"..\/..\/me"}}]}]}"#,
        b"\xff\xfe\x00binary",
    ];
    for b in &bodies {
        let r = app.post_webhook(b).await;
        assert_eq!(r.status(), 200, "{:?}", String::from_utf8_lossy(b));
    }
    let stored = deliveries(&app).await;
    assert_eq!(stored.len(), bodies.len());
    for ((kind, raw), sent) in stored.iter().zip(&bodies) {
        assert_eq!(kind, "unusable");
        assert_eq!(raw, sent);
    }
    assert_eq!(job_count(&app).await, 0);
    assert!(app.graph.calls().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Exactly once
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn one_delivery_sent_five_times_even_concurrently_gives_one_lead_and_one_graph_call() {
    let app = TestApp::spawn().await;
    let ids = add_graph_leads(&app, 1, 2);
    let body = leadgen_body(&[&ids[0], &ids[1]]);
    // Five at once, as Meta's retries can overlap…
    let answers = futures_util::future::join_all((0..5).map(|_| app.post_webhook(&body))).await;
    assert!(answers.iter().all(|r| r.status() == 200));
    assert_eq!(app.wait_for_count(2, Duration::from_secs(5)).await, 2);
    // …and five more after the leads are saved.
    for _ in 0..5 {
        assert_eq!(app.post_webhook(&body).await.status(), 200);
    }
    let s = app
        .wait_for_status(Duration::from_secs(5), |s| s["jobs_waiting"] == 0)
        .await;
    assert_eq!(s["jobs_waiting"], 0);
    assert_eq!(app.lead_count().await, 2);
    assert_eq!(
        deliveries(&app).await.len(),
        10,
        "every delivery is kept for the audit trail"
    );
    assert_eq!(job_count(&app).await, 2, "one job per leadgen_id");
    for id in &ids {
        assert_eq!(app.graph.lead_calls(id), 1, "Graph asked once for {id}");
    }
}

#[tokio::test]
async fn a_batch_of_1000_changes_across_entries_gives_exactly_one_lead_per_leadgen_id() {
    // More fetches in flight than the default 8 means bigger group commits (one fsync each), so
    // 900 leads fit the test budget on a slow disk; what is checked here is exactly-once.
    let app = TestApp::spawn_tuned(|s| s.tuning.worker_concurrency = 32).await;
    let ids = add_graph_leads(&app, 1, 900);
    // 1000 changes over 4 pages: 900 distinct leads, 100 repeated in another entry; numbers
    // and strings mixed as Meta mixes them.
    let pages = [
        "111111111111111",
        "222222222222221",
        "333333333333331",
        "444444444444441",
    ];
    let entries: Vec<Value> = (0..4)
        .map(|e| {
            let changes: Vec<Value> = (0..250)
                .map(|k| {
                    let n = e * 250 + k;
                    let id = &ids[if n < 900 { n } else { n - 900 }];
                    let leadgen_id = if n % 2 == 0 {
                        json!(id)
                    } else {
                        json!(id.parse::<u64>().unwrap())
                    };
                    json!({"field": "leadgen", "value": {
                        "leadgen_id": leadgen_id, "page_id": pages[e], "form_id": FORM_ID,
                        "created_time": 1_764_338_531
                    }})
                })
                .collect();
            json!({"id": pages[e], "time": 1_764_338_531, "changes": changes})
        })
        .collect();
    let body = serde_json::to_vec(&json!({"object": "page", "entry": entries})).unwrap();
    let started = std::time::Instant::now();
    let r = app.post_webhook(&body).await;
    let answered_in = started.elapsed();
    assert_eq!(r.status(), 200);
    assert!(
        answered_in < Duration::from_secs(2),
        "a 1000-change batch must be answered fast, took {answered_in:?}"
    );
    // Meta resends the whole batch.
    assert_eq!(app.post_webhook(&body).await.status(), 200);
    assert_eq!(app.wait_for_count(900, Duration::from_secs(8)).await, 900);
    let s = app
        .wait_for_status(Duration::from_secs(5), |s| s["jobs_waiting"] == 0)
        .await;
    assert_eq!(s["jobs_waiting"], 0);
    assert_eq!(s["dead_letters"], 0);
    assert_eq!(app.lead_count().await, 900);
    let calls = graph_calls_per_id(&app);
    for id in &ids {
        assert_eq!(calls.get(id), Some(&1), "Graph asked once for {id}");
    }
    // The form's name is asked for once, not once per lead.
    assert_eq!(calls.get(FORM_ID), Some(&1));
    let distinct = count(&app, "SELECT count(DISTINCT leadgen_id) FROM leads").await;
    assert_eq!(distinct, 900);
}
