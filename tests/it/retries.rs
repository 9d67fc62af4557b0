//! Graph trouble: a lead is retried until Graph answers, set aside when it never will, and
//! neither a rate limit nor a failing database makes leadstream hammer Graph.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::db::{count, exec, rows};
use crate::helpers::pg::skip_on_postgres;
use crate::helpers::*;

/// A lead whose first two Graph reads fail with `failure` arrives, on the third read.
async fn arrives_after_two_failures(failure: Failure) -> TestApp {
    let app = TestApp::spawn().await;
    let id = deliver_failing(&app, failure, 2).await;
    assert_eq!(app.wait_for_count(1, Duration::from_secs(5)).await, 1);
    assert_eq!(app.graph.lead_calls(&id), 3);
    app
}

/// Waits until `n` leads are saved, then checks that no job is left waiting or set aside.
async fn assert_every_lead_arrived(app: &TestApp, n: i64) {
    assert_eq!(app.wait_for_count(n, Duration::from_secs(5)).await, n);
    let s = app
        .wait_for_status(Duration::from_secs(2), |s| s["jobs_waiting"] == 0)
        .await;
    assert_eq!(s["jobs_waiting"], 0);
    assert_eq!(s["dead_letters"], 0);
}

/// Adds one lead to the fake Graph, makes its next `times` reads fail with `failure`, and
/// delivers the webhook that announces it; returns its id.
async fn deliver_failing(app: &TestApp, failure: Failure, times: usize) -> String {
    let id = add_graph_leads(app, 1, 1).remove(0);
    app.graph.fail_next(failure, times);
    app.deliver(&[&id]).await;
    id
}

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
    assert_every_lead_arrived(&app, 5).await;
}

#[tokio::test]
async fn a_rate_limited_lead_arrives_after_the_limit_lifts() {
    let app = arrives_after_two_failures(Failure::RateLimited).await;
    assert_eq!(app.status().await["dead_letters"], 0);
}

#[tokio::test]
async fn a_rate_limit_pauses_every_graph_call_not_just_the_limited_lead() {
    // Slow clocks so the pause is long enough to look inside it.
    let app = TestApp::spawn_with_retries(Duration::from_secs(2), Duration::from_secs(10)).await;
    let ids = add_graph_leads(&app, 1, 2);
    app.graph.fail_next(Failure::RateLimited, 1);
    app.deliver(&[&ids[0]]).await;
    // The pause (1.6 to 2.4 s) starts before the failed try is written down.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while count(&app, "SELECT attempts FROM jobs").await == 0 {
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
        app.deliver(&[&ids[1]]).await;
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
    for (n, slowness, calls, what) in [
        (
            1,
            Duration::from_millis(200),
            1,
            "slow but in time: one call",
        ),
        (2, Duration::from_secs(2), 2, "timed out once, then fetched"),
    ] {
        let id = &ids[n - 1];
        app.graph.fail_next(Failure::Slow(slowness), 1);
        app.deliver(&[id]).await;
        let saved = n as i64;
        assert_eq!(
            app.wait_for_count(saved, Duration::from_secs(5)).await,
            saved
        );
        assert_eq!(app.graph.lead_calls(id), calls, "{what}");
    }
}

#[tokio::test]
async fn a_502_html_page_from_a_proxy_is_retried() {
    arrives_after_two_failures(Failure::BadGateway).await;
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

    let dl: Value = app.get_json("/api/dead-letters").await;
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
    let r: Value = app.post_json("/api/dead-letters/retry").await;
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
    let id = deliver_failing(&app, Failure::TokenExpired, 1).await;
    let s = app
        .wait_for_status(Duration::from_secs(5), |s| s["dead_letters"] == 1)
        .await;
    assert_eq!(s["dead_letters"], 1);
    let problems = s["problems"].to_string();
    assert!(problems.contains("META_PAGE_ACCESS_TOKEN"), "{problems}");
    let dl: Value = app.get_json("/api/dead-letters").await;
    assert_eq!(dl["dead_letters"][0]["error_code"], 190);
    assert_eq!(app.graph.lead_calls(&id), 1, "a token error is not retried");

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
    if skip_on_postgres("an instance that starts must not reset the other instances' backoff") {
        return;
    }
    // First run: a failure puts the next try a minute away.
    let mut app =
        TestApp::spawn_with_retries(Duration::from_secs(60), Duration::from_secs(60)).await;
    let id = deliver_failing(&app, Failure::ServerError, 1).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let next_try_in_ms = loop {
        let row = rows(&app, "SELECT attempts, next_attempt_ms FROM jobs")
            .await
            .remove(0);
        let number = |i: usize| row[i].as_deref().unwrap().parse::<i64>().unwrap();
        let row = (number(0), number(1) - chrono::Utc::now().timestamp_millis());
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
    assert_eq!(app.graph.lead_calls(&id), 2);
}

#[tokio::test]
async fn a_lead_the_database_refuses_stays_queued_without_hammering_graph_and_arrives_later() {
    let app = TestApp::spawn().await;
    let ids = add_graph_leads(&app, 1, 1);
    // A disk that says no, for leads only: Graph answers, the save fails.
    exec(
        &app,
        "CREATE TRIGGER refuse_leads BEFORE INSERT ON leads BEGIN SELECT RAISE(ABORT, 'disk says no'); END;",
        "CREATE FUNCTION disk_says_no() RETURNS trigger LANGUAGE plpgsql
             AS $$ BEGIN RAISE EXCEPTION 'disk says no'; END $$;
         CREATE TRIGGER refuse_leads BEFORE INSERT ON leads
             FOR EACH ROW EXECUTE FUNCTION disk_says_no();",
    )
    .await;
    app.deliver(&[&ids[0]]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let row = rows(&app, "SELECT attempts, last_error FROM jobs")
            .await
            .remove(0);
        let (attempts, error): (i64, Option<String>) =
            (row[0].as_deref().unwrap().parse().unwrap(), row[1].clone());
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
    exec(
        &app,
        "CREATE TRIGGER refuse_jobs BEFORE UPDATE ON jobs BEGIN SELECT RAISE(ABORT, 'disk says no'); END;",
        "CREATE TRIGGER refuse_jobs BEFORE UPDATE ON jobs
             FOR EACH ROW EXECUTE FUNCTION disk_says_no();",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = app.graph.lead_calls(&ids[0]);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let during = app.graph.lead_calls(&ids[0]) - before;
    assert!(during <= 10, "{during} Graph calls in 600 ms");

    exec(
        &app,
        "DROP TRIGGER refuse_leads; DROP TRIGGER refuse_jobs;",
        "DROP TRIGGER refuse_leads ON leads; DROP TRIGGER refuse_jobs ON jobs;",
    )
    .await;
    assert_every_lead_arrived(&app, 1).await;
}
