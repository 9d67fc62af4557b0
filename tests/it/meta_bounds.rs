//! Bounds on what Meta sends back: an answer that goes on for ever is given up at 8 MiB (a
//! transient error, retried later), and a listing whose `paging.next` loops, or never ends,
//! stops that listing; the sync answers, says so, and reads the other forms.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::Failure;
use crate::helpers::*;

const FORM_OK: &str = "777777777777771";
const FORM_LOOPING: &str = "777777777777772";

/// `POST /api/leads/sync`, which must answer within `within`: status and body.
async fn sync_answers_within(app: &TestApp, within: Duration) -> (u16, Value) {
    let r = tokio::time::timeout(within, app.post_authed("/api/leads/sync"))
        .await
        .expect("the sync button answers");
    (r.status().as_u16(), r.json().await.unwrap())
}

/// How many pages of `form`'s lead listing the fake Graph was asked for.
fn listing_calls(app: &TestApp, form: &str) -> usize {
    let path = format!("{form}/leads");
    app.graph.calls().iter().filter(|c| **c == path).count()
}

#[tokio::test]
async fn a_graph_answer_past_8_mib_is_given_up_and_retried_later() {
    let app = TestApp::spawn().await;
    let id = lead_id(1);
    app.graph.add_lead(
        &id,
        FORM_ID,
        1_764_338_531,
        &[("full_name", "Ada Lovelace")],
    );
    // 150 MB, made as it is read: the worker must stop long before the end.
    app.graph.fail_next(Failure::Huge(150 * 1024 * 1024), 1);
    app.deliver(&[&id]).await;
    assert_eq!(
        app.wait_for_count(1, Duration::from_secs(20)).await,
        1,
        "the next try saves the lead"
    );
    let sent = app.graph.huge_bytes_sent();
    assert!(
        sent < 32 * 1024 * 1024,
        "{} MiB of the 150 MiB answer were read",
        sent / (1024 * 1024)
    );
    assert_eq!(app.graph.lead_calls(&id), 2, "one failed try, one good one");
}

#[tokio::test]
async fn a_graph_answer_past_8_mib_is_a_transient_error_with_words() {
    // Retries far apart, so the error of the first try stays on the job to be read.
    let app = TestApp::spawn_with_retries(Duration::from_secs(600), Duration::from_secs(600)).await;
    let id = lead_id(2);
    app.graph.add_lead(
        &id,
        FORM_ID,
        1_764_338_531,
        &[("full_name", "Ada Lovelace")],
    );
    app.graph.fail_next(Failure::Huge(9 * 1024 * 1024), 1);
    app.deliver(&[&id]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let error = loop {
        let e: Option<String> = crate::helpers::db::one(
            &app,
            "SELECT last_error FROM jobs WHERE state = 'pending' AND attempts = 1",
        )
        .await;
        if let Some(e) = e {
            break e;
        }
        assert!(Instant::now() < deadline, "the first try never failed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(error.contains("larger than 8 MiB"), "{error}");
    assert_eq!(
        app.status().await["dead_letters"],
        0,
        "retried, not set aside"
    );
}

#[tokio::test]
async fn a_paging_next_that_points_back_stops_that_form_and_the_sync_answers() {
    let app = TestApp::spawn().await;
    app.graph.add_form(PAGE_ID, FORM_LOOPING, "Looping form");
    app.graph.add_form(PAGE_ID, FORM_OK, "Fine form");
    for i in 0..3 {
        let id = lead_id(100 + i);
        app.graph
            .add_lead(&id, FORM_OK, 1_764_338_531, &[("full_name", "Fine")]);
        let id = lead_id(200 + i);
        app.graph
            .add_lead(&id, FORM_LOOPING, 1_764_338_531, &[("full_name", "Loop")]);
    }
    app.graph
        .state
        .lock()
        .unwrap()
        .looping_forms
        .push(FORM_LOOPING.into());

    let (status, body) = sync_answers_within(&app, Duration::from_secs(20)).await;
    assert_eq!(status, 502, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("Looping form") && error.contains("led back to a page already read"),
        "{error}"
    );
    // The other form was read to the end.
    assert_eq!(body["partial"]["forms"], 1, "{body}");
    let leads = app.leads("").await;
    let names: Vec<&str> = leads["leads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["fields"]["full_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.iter().filter(|n| **n == "Fine").count(),
        3,
        "{names:?}"
    );
    let looping_calls = listing_calls(&app, FORM_LOOPING);
    assert_eq!(
        looping_calls,
        2,
        "the first page, and its next once: {:?}",
        app.graph.calls()
    );
    // /api/status names it too.
    let status = app.status().await;
    let last = status["last_sync"]["error"].as_str().unwrap();
    assert!(last.contains("led back to a page already read"), "{status}");
}

#[tokio::test]
async fn a_listing_that_never_ends_stops_at_the_page_cap() {
    let app = TestApp::spawn_tuned(|s| s.tuning.sync_max_pages = 5).await;
    app.graph.add_form(PAGE_ID, FORM_LOOPING, "Endless form");
    app.graph
        .state
        .lock()
        .unwrap()
        .endless_forms
        .push(FORM_LOOPING.into());
    let (status, body) = sync_answers_within(&app, Duration::from_secs(20)).await;
    assert_eq!(status, 502, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("Endless form") && error.contains("went on past 5 pages"),
        "{error}"
    );
    let calls = listing_calls(&app, FORM_LOOPING);
    assert_eq!(calls, 5, "five pages read, no more");
}
