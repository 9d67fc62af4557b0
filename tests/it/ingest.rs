//! Webhook ingest: handshake, signatures, durable jobs, exactly-once leads, retries.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::fake_graph::Failure;
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

// ---------------------------------------------------------------------------------------------
// Local helpers: a look into the database file, and webhook bodies with chosen ids.
// ---------------------------------------------------------------------------------------------

/// The test's own connection to the server's database (WAL: reading beside the server is fine).
fn db(app: &TestApp) -> rusqlite::Connection {
    rusqlite::Connection::open(&app.db_path).unwrap()
}

/// Every stored delivery, oldest first: `(kind, raw body)`.
fn deliveries(app: &TestApp) -> Vec<(String, Vec<u8>)> {
    let c = db(app);
    let mut stmt = c
        .prepare("SELECT kind, body FROM deliveries ORDER BY id")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap();
    rows
}

fn job_count(app: &TestApp) -> i64 {
    db(app)
        .query_row("SELECT count(*) FROM jobs", [], |r| r.get(0))
        .unwrap()
}

/// One change per `(leadgen_id, page_id, form_id)`, one entry per page, ids as strings.
fn body_with(changes: &[(&str, &str, &str)]) -> Vec<u8> {
    let mut pages: Vec<&str> = changes.iter().map(|c| c.1).collect();
    pages.dedup();
    let entries: Vec<Value> = pages
        .iter()
        .map(|page| {
            let ch: Vec<Value> = changes
                .iter()
                .filter(|c| c.1 == *page)
                .map(|(id, page, form)| {
                    json!({"field": "leadgen", "value": {
                        "leadgen_id": id, "page_id": page, "form_id": form,
                        "created_time": 1_764_338_531
                    }})
                })
                .collect();
            json!({"id": page, "time": 1_764_338_531, "changes": ch})
        })
        .collect();
    serde_json::to_vec(&json!({"object": "page", "entry": entries})).unwrap()
}

/// Asserts the server kept nothing: no delivery, no job, no lead, nothing waiting.
async fn assert_nothing_stored(app: &TestApp) {
    assert!(deliveries(app).is_empty(), "no delivery may be stored");
    assert_eq!(job_count(app), 0, "no job may be created");
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
        "META.md's vector uses this secret"
    );
    // The header value is META.md's, not computed here: the server must agree with Meta.
    let r = app
        .post_webhook_raw(META_VECTOR_BODY.to_vec(), Some(META_VECTOR_SIG))
        .await;
    assert_eq!(r.status(), 200);
    // Not a leadgen envelope, so it is kept raw, byte for byte, escapes and all.
    let stored = deliveries(&app);
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
    assert_eq!(deliveries(&app).len(), 1);
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
    assert_eq!(deliveries(&app)[0].1, b"Hello, World!");
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
    assert_eq!(deliveries(&app)[0].1, body.as_bytes(), "kept byte for byte");
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
    let stored = deliveries(&app);
    assert_eq!(stored, vec![("messaging".to_string(), body.to_vec())]);
    assert_eq!(job_count(&app), 0);
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
    let stored = deliveries(&app);
    assert_eq!(stored.len(), bodies.len());
    for ((kind, raw), sent) in stored.iter().zip(&bodies) {
        assert_eq!(kind, "unusable");
        assert_eq!(raw, sent);
    }
    assert_eq!(job_count(&app), 0);
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
        deliveries(&app).len(),
        10,
        "every delivery is kept for the audit trail"
    );
    assert_eq!(job_count(&app), 2, "one job per leadgen_id");
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
    let c = db(&app);
    let distinct: i64 = c
        .query_row("SELECT count(DISTINCT leadgen_id) FROM leads", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(distinct, 900);
}

// ---------------------------------------------------------------------------------------------
// Graph trouble: retried until it works, set aside when it never will
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_lead_arrives_once_graph_comes_back_after_being_down() {
    let app = TestApp::spawn().await;
    let ids = add_graph_leads(&app, 1, 5);
    app.graph.set_always(Some(Failure::ServerError));
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(app.post_webhook(&leadgen_body(&refs)).await.status(), 200);
    // Down long enough for every lead to be tried three times.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while ids.iter().any(|id| app.graph.lead_calls(id) < 3) {
        assert!(
            std::time::Instant::now() < deadline,
            "retries did not happen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.lead_count().await, 0);
    let s = app.status().await;
    assert_eq!(s["jobs_waiting"], 5);
    assert_eq!(
        s["dead_letters"], 0,
        "a Graph outage must not dead-letter leads"
    );

    app.graph.set_always(None);
    assert_eq!(app.wait_for_count(5, Duration::from_secs(5)).await, 5);
    let s = app
        .wait_for_status(Duration::from_secs(2), |s| s["jobs_waiting"] == 0)
        .await;
    assert_eq!(s["jobs_waiting"], 0);
    assert_eq!(s["dead_letters"], 0);
}

#[tokio::test]
async fn a_rate_limited_lead_arrives_after_the_limit_lifts() {
    let app = TestApp::spawn().await;
    let ids = add_graph_leads(&app, 1, 1);
    app.graph.fail_next(Failure::RateLimited, 2);
    assert_eq!(
        app.post_webhook(&leadgen_body(&[&ids[0]])).await.status(),
        200
    );
    assert_eq!(app.wait_for_count(1, Duration::from_secs(5)).await, 1);
    assert_eq!(app.graph.lead_calls(&ids[0]), 3);
    assert_eq!(app.status().await["dead_letters"], 0);
}

#[tokio::test]
async fn a_rate_limit_pauses_every_graph_call_not_just_the_limited_lead() {
    // Slow clocks so the pause is long enough to look inside it.
    let app = TestApp::spawn_tuned(|s| {
        s.tuning.retry_base = Duration::from_secs(2);
        s.tuning.retry_cap = Duration::from_secs(10);
    })
    .await;
    let ids = add_graph_leads(&app, 1, 2);
    app.graph.fail_next(Failure::RateLimited, 1);
    assert_eq!(
        app.post_webhook(&leadgen_body(&[&ids[0]])).await.status(),
        200
    );
    // The pause (1.6 to 2.4 s) starts before the failed try is written down.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while db(&app)
        .query_row("SELECT attempts FROM jobs", [], |r| r.get::<_, i64>(0))
        .unwrap()
        == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no failed try recorded"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let s = app.status().await;
    assert!(s["graph_paused_seconds"].as_u64() >= Some(1), "{s}");

    // A new lead during the pause waits; wakes from new deliveries do not call Graph.
    for _ in 0..3 {
        assert_eq!(
            app.post_webhook(&leadgen_body(&[&ids[1]])).await.status(),
            200
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        app.graph.lead_calls(&ids[1]),
        0,
        "no Graph call during the pause"
    );
    assert_eq!(app.graph.calls().len(), 1);

    assert_eq!(app.wait_for_count(2, Duration::from_secs(8)).await, 2);
    assert_eq!(app.graph.lead_calls(&ids[1]), 1);
}

#[tokio::test]
async fn slow_graph_answers_within_the_timeout_work_and_slower_ones_are_retried() {
    let app = TestApp::spawn_tuned(|s| s.tuning.graph_timeout = Duration::from_secs(1)).await;
    let ids = add_graph_leads(&app, 1, 2);
    app.graph
        .fail_next(Failure::Slow(Duration::from_millis(200)), 1);
    assert_eq!(
        app.post_webhook(&leadgen_body(&[&ids[0]])).await.status(),
        200
    );
    assert_eq!(app.wait_for_count(1, Duration::from_secs(5)).await, 1);
    assert_eq!(
        app.graph.lead_calls(&ids[0]),
        1,
        "slow but in time: one call"
    );

    app.graph
        .fail_next(Failure::Slow(Duration::from_secs(2)), 1);
    assert_eq!(
        app.post_webhook(&leadgen_body(&[&ids[1]])).await.status(),
        200
    );
    assert_eq!(app.wait_for_count(2, Duration::from_secs(5)).await, 2);
    assert_eq!(
        app.graph.lead_calls(&ids[1]),
        2,
        "timed out once, then fetched"
    );
}

#[tokio::test]
async fn a_502_html_page_from_a_proxy_is_retried() {
    let app = TestApp::spawn().await;
    let ids = add_graph_leads(&app, 1, 1);
    app.graph.fail_next(Failure::BadGateway, 2);
    assert_eq!(
        app.post_webhook(&leadgen_body(&[&ids[0]])).await.status(),
        200
    );
    assert_eq!(app.wait_for_count(1, Duration::from_secs(5)).await, 1);
    assert_eq!(app.graph.lead_calls(&ids[0]), 3);
}

#[tokio::test]
async fn the_dashboard_test_buttons_dummy_lead_is_set_aside_after_one_try_and_can_be_retried_by_hand(
) {
    let app = TestApp::spawn().await;
    let dummy = "444444444444";
    // Exactly what the App Dashboard "Test" button sends.
    let body = br#"{"object":"page","entry":[{"id":"0","time":1764338531,"changes":[{"field":"leadgen","value":{"ad_id":"444444444","form_id":"444444444444","leadgen_id":"444444444444","created_time":1764338531,"page_id":"444444444444","adgroup_id":"44444444444"}}]}]}"#;
    assert_eq!(app.post_webhook(body).await.status(), 200);
    let s = app
        .wait_for_status(Duration::from_secs(5), |s| s["dead_letters"] == 1)
        .await;
    assert_eq!(s["dead_letters"], 1);
    assert_eq!(s["jobs_waiting"], 0);
    // Several retry periods (~50 ms each) later, still one call: it does not loop.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(app.graph.lead_calls(dummy), 1);
    assert_eq!(app.status().await["dead_letters"], 1);

    let dl: Value = app
        .get_authed("/api/dead-letters")
        .await
        .json()
        .await
        .unwrap();
    let letter = &dl["dead_letters"][0];
    assert_eq!(letter["leadgen_id"], dummy);
    assert_eq!(letter["error_code"], 100);
    assert_eq!(letter["attempts"], 1);
    assert!(
        letter["error"]
            .as_str()
            .unwrap()
            .contains("Object with ID does not exist"),
        "Meta's message is shown: {letter}"
    );

    // Once Graph knows the lead, a retry by hand brings it in.
    app.graph
        .add_lead(dummy, FORM_ID, 1_764_338_531, &[("full_name", "Test Lead")]);
    let r: Value = app
        .post_authed("/api/dead-letters/retry")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["retried"], 1);
    assert_eq!(app.wait_for_count(1, Duration::from_secs(5)).await, 1);
    let s = app.status().await;
    assert_eq!(s["dead_letters"], 0);
    assert_eq!(s["jobs_waiting"], 0);
    assert_eq!(app.graph.lead_calls(dummy), 2);
}

#[tokio::test]
async fn an_expired_token_dead_letters_the_lead_and_status_says_to_set_meta_page_access_token() {
    let app = TestApp::spawn().await;
    let ids = add_graph_leads(&app, 1, 1);
    app.graph.fail_next(Failure::TokenExpired, 1);
    assert_eq!(
        app.post_webhook(&leadgen_body(&[&ids[0]])).await.status(),
        200
    );
    let s = app
        .wait_for_status(Duration::from_secs(5), |s| s["dead_letters"] == 1)
        .await;
    assert_eq!(s["dead_letters"], 1);
    let problems = s["problems"].to_string();
    assert!(problems.contains("META_PAGE_ACCESS_TOKEN"), "{problems}");
    let dl: Value = app
        .get_authed("/api/dead-letters")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(dl["dead_letters"][0]["error_code"], 190);
    assert_eq!(
        app.graph.lead_calls(&ids[0]),
        1,
        "a token error is not retried"
    );

    // With a working token again, the retry brings the lead and the problem goes away.
    app.post_authed("/api/dead-letters/retry").await;
    assert_eq!(app.wait_for_count(1, Duration::from_secs(5)).await, 1);
    let s = app.status().await;
    assert!(
        !s["problems"].to_string().contains("META_PAGE_ACCESS_TOKEN"),
        "{s}"
    );
}

#[tokio::test]
async fn a_job_backing_off_is_tried_at_once_after_a_restart() {
    // First run: a failure puts the next try a minute away.
    let mut app = TestApp::spawn_tuned(|s| {
        s.tuning.retry_base = Duration::from_secs(60);
        s.tuning.retry_cap = Duration::from_secs(60);
    })
    .await;
    let ids = add_graph_leads(&app, 1, 1);
    app.graph.fail_next(Failure::ServerError, 1);
    assert_eq!(
        app.post_webhook(&leadgen_body(&[&ids[0]])).await.status(),
        200
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let next_try_in_ms = loop {
        let row: (i64, i64) = db(&app)
            .query_row(
                "SELECT attempts, next_attempt_ms - CAST(strftime('%s','now') AS INTEGER) * 1000 FROM jobs",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        if row.0 == 1 {
            break row.1;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the failure was not recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(next_try_in_ms > 30_000, "backing off: {next_try_in_ms} ms");

    app.settings.tuning.retry_base = Duration::from_millis(50);
    let app = app.restart().await;
    // Well before the minute the first run had scheduled.
    assert_eq!(app.wait_for_count(1, Duration::from_secs(5)).await, 1);
    assert_eq!(app.graph.lead_calls(&ids[0]), 2);
}

// ---------------------------------------------------------------------------------------------
// kill -9: nothing acknowledged is lost
// ---------------------------------------------------------------------------------------------

/// The real `leadstream` binary as a child process; killed with SIGKILL when dropped.
struct Server {
    child: std::process::Child,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    async fn start(db_path: &std::path::Path, graph_url: &str, dir: &std::path::Path) -> Server {
        use std::io::BufRead;
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_leadstream"));
        // The temp dir as working directory, so no stray .env is read.
        cmd.current_dir(dir)
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("LEADS_DB", db_path)
            .env("META_APP_SECRET", APP_SECRET)
            .env("META_WEBHOOK_VERIFY_TOKEN", VERIFY_TOKEN)
            .env("META_PAGE_ACCESS_TOKEN", PAGE_TOKEN)
            .env("META_GRAPH_URL", graph_url)
            .env("DASHBOARD_TOKEN", DASHBOARD_TOKEN)
            .env("RUST_LOG", "info")
            .env_remove("META_PAGE_ID")
            .env_remove("LEADSTREAM_DEMO")
            .env_remove("PUBLIC_URL")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("start the leadstream binary");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        // Drained to the end so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let addr = loop {
            let found = log.lock().unwrap().iter().find_map(|l| {
                l.split("listening on ")
                    .nth(1)
                    .map(|a| a.trim().to_string())
            });
            if let Some(a) = found {
                break a;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("leadstream exited with {status}: {:?}", log.lock().unwrap());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no 'listening on' line"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Server {
            child,
            base: format!("http://{addr}"),
            log,
        }
    }

    fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn integrity(path: &std::path::Path) -> String {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_right_after_a_burst_of_acknowledged_webhooks_while_graph_fails_loses_none_of_them()
{
    let graph = crate::fake_graph::FakeGraph::start(PAGE_TOKEN, APP_SECRET).await;
    graph.set_always(Some(Failure::ServerError));
    let n = 200u64;
    let ids: Vec<String> = (1..=n)
        .map(|i| {
            let id = lead_id(i);
            graph.add_lead(
                &id,
                FORM_ID,
                1_764_338_531,
                &[
                    ("full_name", &format!("Secretive Person {i}")),
                    ("email", &format!("person{i}@private.example")),
                ],
            );
            id
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("leads.db");
    let mut first = Server::start(&db_path, &graph.url(), dir.path()).await;

    // The burst: every webhook at once; the kill comes while part of them is still in flight.
    let client = reqwest::Client::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let tasks: Vec<_> = ids
        .iter()
        .cloned()
        .map(|id| {
            let (client, url, tx) = (
                client.clone(),
                format!("{}/webhook", first.base),
                tx.clone(),
            );
            tokio::spawn(async move {
                let body = leadgen_body(&[&id]);
                let sig = leadstream::ingest::signature::sign(APP_SECRET.as_bytes(), &body);
                let ok = client
                    .post(url)
                    .header("x-hub-signature-256", sig)
                    .body(body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                let _ = tx.send(ok);
                (id, ok)
            })
        })
        .collect();
    drop(tx);
    let mut seen_ok = 0;
    while let Some(ok) = rx.recv().await {
        seen_ok += ok as usize;
        if seen_ok >= 120 {
            break;
        }
    }
    first.kill9();
    let mut acked = HashSet::new();
    for t in tasks {
        let (id, ok) = t.await.unwrap();
        if ok {
            acked.insert(id);
        }
    }
    assert!(acked.len() >= 120, "only {} acknowledged", acked.len());
    assert!(
        !graph.calls().is_empty(),
        "the worker was trying Graph (and failing) when killed"
    );

    // Straight after the kill: the file is sound, no lead yet, every acknowledged job there.
    assert_eq!(integrity(&db_path), "ok");
    {
        let c = rusqlite::Connection::open(&db_path).unwrap();
        let leads: i64 = c
            .query_row("SELECT count(*) FROM leads", [], |r| r.get(0))
            .unwrap();
        assert_eq!(leads, 0, "Graph was failing, so no lead could be saved");
        let mut stmt = c
            .prepare("SELECT leadgen_id FROM jobs WHERE state = 'pending'")
            .unwrap();
        let pending: HashSet<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(acked.is_subset(&pending), "an acknowledged job is missing");
    }

    // Graph heals; a new process on the same file brings every acknowledged lead in.
    graph.set_always(None);
    let mut second = Server::start(&db_path, &graph.url(), dir.path()).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    let status = loop {
        let s: Value = client
            .get(format!("{}/api/status", second.base))
            .bearer_auth(DASHBOARD_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if s["jobs_waiting"] == 0 || std::time::Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status["jobs_waiting"], 0, "{status}");
    assert_eq!(status["dead_letters"], 0);
    let listed: Value = client
        .get(format!("{}/api/leads?limit=1000", second.base))
        .bearer_auth(DASHBOARD_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let saved: HashSet<String> = listed["leads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["leadgen_id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        acked.is_subset(&saved),
        "lost: {:?}",
        acked.difference(&saved).collect::<Vec<_>>()
    );
    assert_eq!(listed["total"], saved.len());
    second.kill9();

    assert_eq!(integrity(&db_path), "ok");
    let c = rusqlite::Connection::open(&db_path).unwrap();
    let (rows, distinct): (i64, i64) = c
        .query_row(
            "SELECT count(*), count(DISTINCT leadgen_id) FROM leads",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(rows, distinct);
    assert_eq!(rows as usize, saved.len());

    // The logs of both runs name ids, never secrets or what people typed into the form.
    let logs = [first.log(), second.log()].concat();
    assert!(logs.iter().any(|l| l.contains("resuming")), "{logs:#?}");
    let proof = leadstream::meta::graph::appsecret_proof(APP_SECRET, PAGE_TOKEN);
    for line in &logs {
        for secret in [
            APP_SECRET,
            PAGE_TOKEN,
            DASHBOARD_TOKEN,
            VERIFY_TOKEN,
            &proof,
        ] {
            assert!(!line.contains(secret), "secret in the log: {line}");
        }
        assert!(
            !line.contains("Secretive Person") && !line.contains("private.example"),
            "lead value in the log: {line}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Reading leads back: /api/leads, /api/leads/count, /healthz
// ---------------------------------------------------------------------------------------------

const PAGE_A: &str = "500000000000001";
const PAGE_B: &str = "500000000000002";
const FORM_A: &str = "600000000000001";
const FORM_B: &str = "600000000000002";

/// One person of the listing fixture: where the lead came from, what they answered, when.
struct Person {
    id: &'static str,
    page: &'static str,
    form: &'static str,
    answers: [(&'static str, &'static str); 4],
    created: i64,
}

/// Four people on two pages and two forms, created on the 10th of January … April 2025.
async fn app_with_four_leads() -> TestApp {
    let app = TestApp::spawn().await;
    let answers = |name, email, phone, city| {
        [
            ("full_name", name),
            ("email", email),
            ("phone_number", phone),
            ("city", city),
        ]
    };
    let people = [
        Person {
            id: "700000000000001",
            page: PAGE_A,
            form: FORM_A,
            answers: answers(
                "Ada Lovelace",
                "ada@gmail.com",
                "+44 20 7946 0001",
                "London",
            ),
            created: 1_736_503_200,
        },
        Person {
            id: "700000000000002",
            page: PAGE_A,
            form: FORM_B,
            answers: answers(
                "Grace Hopper",
                "grace@navy.mil",
                "+1 202 555 0102",
                "Arlington",
            ),
            created: 1_739_181_600,
        },
        Person {
            id: "700000000000003",
            page: PAGE_B,
            form: FORM_A,
            answers: answers("Zoë Ström", "zoe@example.se", "+46 8 123 456", "Zürich"),
            created: 1_741_600_800,
        },
        Person {
            id: "700000000000004",
            page: PAGE_B,
            form: FORM_B,
            answers: answers(
                "alan turing",
                "alan@gmail.com",
                "+44 161 496 0000",
                "Manchester",
            ),
            created: 1_744_279_200,
        },
    ];
    for p in &people {
        app.graph.add_lead(p.id, p.form, p.created, &p.answers);
    }
    let changes: Vec<(&str, &str, &str)> = people.iter().map(|p| (p.id, p.page, p.form)).collect();
    assert_eq!(app.post_webhook(&body_with(&changes)).await.status(), 200);
    assert_eq!(app.wait_for_count(4, Duration::from_secs(5)).await, 4);
    app
}

/// The full names of a listing, in order.
async fn names(app: &TestApp, query: &str) -> Vec<String> {
    app.leads(query).await["leads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["fields"]["full_name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn lead_listing_filters_by_text_form_page_and_time() {
    let app = app_with_four_leads().await;
    let sorted = |q: &str| {
        let app = &app;
        let q = format!("sort=name&order=asc&{q}");
        async move { names(app, &q).await }
    };
    assert_eq!(sorted("q=ada").await, ["Ada Lovelace"]);
    assert_eq!(
        sorted("q=gmail").await,
        ["Ada Lovelace", "alan turing"],
        "email"
    );
    assert_eq!(
        sorted("q=ada+gmail").await,
        ["Ada Lovelace"],
        "every word must match"
    );
    assert!(sorted("q=ada+navy").await.is_empty());
    assert_eq!(sorted("q=7946").await, ["Ada Lovelace"], "phone");
    assert_eq!(sorted("q=z%C3%BCrich").await, ["Zoë Ström"], "any answer");
    assert_eq!(
        sorted("q=Z%C3%9CRICH").await,
        ["Zoë Ström"],
        "case does not matter"
    );
    assert_eq!(sorted("q=MANCHESTER").await, ["alan turing"]);
    assert_eq!(sorted("q=").await.len(), 4, "an empty q is no filter");

    assert_eq!(
        sorted(&format!("form_id={FORM_A}")).await,
        ["Ada Lovelace", "Zoë Ström"]
    );
    assert_eq!(
        sorted(&format!("page_id={PAGE_B}")).await,
        ["alan turing", "Zoë Ström"]
    );
    assert_eq!(
        sorted(&format!("form_id={FORM_A}&page_id={PAGE_B}")).await,
        ["Zoë Ström"]
    );
    assert_eq!(
        app.leads(&format!("page_id={PAGE_B}")).await["total"],
        2,
        "total counts the filtered set"
    );

    // since/until on the time the person sent the form, RFC 3339 or unix seconds, inclusive.
    assert_eq!(
        sorted("since=2025-02-10T10:00:00Z").await,
        ["alan turing", "Grace Hopper", "Zoë Ström"]
    );
    assert_eq!(
        sorted("since=2025-02-10T11:00:00%2B01:00").await.len(),
        3,
        "an offset is honoured"
    );
    assert_eq!(
        sorted("until=1741600800").await,
        ["Ada Lovelace", "Grace Hopper", "Zoë Ström"]
    );
    assert_eq!(
        sorted("since=1739181600&until=2025-03-10T10:00:00Z").await,
        ["Grace Hopper", "Zoë Ström"]
    );
    assert_eq!(sorted("since=1739181601&until=1741600799").await.len(), 0);
}

#[tokio::test]
async fn lead_listing_sorts_both_ways_and_pages_with_a_total() {
    let app = app_with_four_leads().await;
    assert_eq!(
        names(&app, "sort=name&order=asc").await,
        ["Ada Lovelace", "alan turing", "Grace Hopper", "Zoë Ström"]
    );
    assert_eq!(
        names(&app, "sort=name&order=desc").await,
        ["Zoë Ström", "Grace Hopper", "alan turing", "Ada Lovelace"]
    );
    assert_eq!(
        names(&app, "sort=created_time").await,
        ["alan turing", "Zoë Ström", "Grace Hopper", "Ada Lovelace"],
        "newest first by default"
    );
    assert_eq!(
        names(&app, "sort=created_time&order=asc").await,
        ["Ada Lovelace", "Grace Hopper", "Zoë Ström", "alan turing"]
    );
    let row_ids = |v: Value| -> Vec<i64> {
        v["leads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_i64().unwrap())
            .collect()
    };
    // received_at is the order of saving, which the row id follows.
    let asc = row_ids(app.leads("sort=received_at&order=asc").await);
    let mut expected = asc.clone();
    expected.sort();
    assert_eq!(asc, expected);
    let desc = row_ids(app.leads("sort=received_at&order=desc").await);
    assert_eq!(desc, asc.iter().rev().cloned().collect::<Vec<_>>());
    assert_eq!(row_ids(app.leads("").await), desc, "default: newest first");

    let page = app
        .leads("sort=created_time&order=asc&limit=2&offset=1")
        .await;
    assert_eq!(page["total"], 4);
    assert_eq!(page["leads"].as_array().unwrap().len(), 2);
    assert_eq!(page["leads"][0]["fields"]["full_name"], "Grace Hopper");
    assert_eq!(page["leads"][1]["fields"]["full_name"], "Zoë Ström");
    let last = app
        .leads("sort=created_time&order=asc&limit=2&offset=3")
        .await;
    assert_eq!(last["total"], 4);
    assert_eq!(last["leads"].as_array().unwrap().len(), 1);
    let past = app.leads("limit=2&offset=10").await;
    assert_eq!(past["total"], 4);
    assert!(past["leads"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn bad_listing_parameters_are_a_400_with_a_json_error_naming_the_parameter() {
    let app = TestApp::spawn().await;
    for (query, names) in [
        ("sort=price", "sort"),
        ("order=upwards", "order"),
        ("since=yesterday", "since"),
        ("until=soon", "until"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
    ] {
        let r = app.get_authed(&format!("/api/leads?{query}")).await;
        assert_eq!(r.status(), 400, "{query}");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
        let v: Value = r.json().await.unwrap();
        assert!(v["error"].as_str().unwrap().contains(names), "{query}: {v}");
    }
}

#[tokio::test]
async fn count_gives_the_count_and_last_id_and_only_healthz_answers_without_a_token() {
    let app = TestApp::spawn().await;
    let empty: Value = app
        .get_authed("/api/leads/count")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(empty, json!({"count": 0, "last_id": 0}));

    let ids = add_graph_leads(&app, 1, 3);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.post_webhook(&leadgen_body(&refs)).await;
    assert_eq!(app.wait_for_count(3, Duration::from_secs(5)).await, 3);
    let count: Value = app
        .get_authed("/api/leads/count")
        .await
        .json()
        .await
        .unwrap();
    let newest = app.leads("limit=1").await["leads"][0]["id"].clone();
    assert_eq!(count["count"], 3);
    assert_eq!(count["last_id"], newest);

    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
    for path in [
        "/api/leads",
        "/api/leads/count",
        "/api/status",
        "/api/dead-letters",
    ] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        assert!(r.json::<Value>().await.unwrap()["error"].is_string());
    }
    let r = app
        .client
        .get(app.url("/api/leads"))
        .bearer_auth("wrong-token-wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn a_lead_the_database_refuses_stays_queued_without_hammering_graph_and_arrives_later() {
    let app = TestApp::spawn().await;
    let ids = add_graph_leads(&app, 1, 1);
    let c = db(&app);
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    // A disk that says no, for leads only: Graph answers, the save fails.
    c.execute_batch(
        "CREATE TRIGGER refuse_leads BEFORE INSERT ON leads BEGIN SELECT RAISE(ABORT, 'disk says no'); END;",
    )
    .unwrap();
    assert_eq!(
        app.post_webhook(&leadgen_body(&[&ids[0]])).await.status(),
        200
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (attempts, error): (i64, Option<String>) = c
            .query_row("SELECT attempts, last_error FROM jobs", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        if attempts >= 2 {
            assert!(error.unwrap_or_default().contains("not saved"));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "failed saves not recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.status().await["jobs_waiting"], 1, "the job is kept");

    // Now even the failure cannot be written, so the row keeps saying "due now": the worker
    // must hold the job back rather than ask Graph again in a tight loop.
    c.execute_batch(
        "CREATE TRIGGER refuse_jobs BEFORE UPDATE ON jobs BEGIN SELECT RAISE(ABORT, 'disk says no'); END;",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = app.graph.lead_calls(&ids[0]);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let during = app.graph.lead_calls(&ids[0]) - before;
    assert!(during <= 10, "{during} Graph calls in 600 ms");

    c.execute_batch("DROP TRIGGER refuse_leads; DROP TRIGGER refuse_jobs;")
        .unwrap();
    assert_eq!(app.wait_for_count(1, Duration::from_secs(5)).await, 1);
    let s = app
        .wait_for_status(Duration::from_secs(2), |s| s["jobs_waiting"] == 0)
        .await;
    assert_eq!(s["jobs_waiting"], 0);
    assert_eq!(s["dead_letters"], 0);
}
