//! Catch-up sync with Meta: forms and leads read through every page of paging, saved once
//! whichever door a lead came through, joined when asked twice, run at start-up, and polite to
//! Meta when it rate-limits or refuses the token.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use leadstream::config::{Secret, Settings};
use serde_json::{json, Value};

use crate::helpers::Failure;
use crate::helpers::*;

const PAGE_2: &str = "333333333333333";
const FORM_B: &str = "444444444444441";
const FORM_C: &str = "444444444444442";
const FORM_D: &str = "444444444444443";
const FORM_E: &str = "444444444444444";

/// The margin the sync re-reads before a form's last complete read (30 minutes;
/// docs/settings.md).
const MARGIN_SECS: i64 = 30 * 60;

/// When the fake's old leads were created (2025-11-28): long before any sync in these tests.
const LONG_AGO: i64 = 1_764_338_531;

/// Adds `n` leads to `form` in the fake Graph (ids from `first`), created at `created`.
fn add_leads(app: &TestApp, form: &str, first: u64, n: u64, created: i64) -> Vec<String> {
    (first..first + n)
        .map(|i| {
            let id = lead_id(i);
            let name = format!("Person {i}");
            app.graph
                .add_lead(&id, form, created, &[("full_name", &name)]);
            id
        })
        .collect()
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A server configured for two pages, with `tune` applied on top.
async fn two_pages(tune: impl FnOnce(&mut Settings)) -> TestApp {
    TestApp::spawn_tuned(|s| {
        s.meta.as_mut().unwrap().page_ids = vec![PAGE_ID.to_string(), PAGE_2.to_string()];
        tune(s);
    })
    .await
}

/// `POST /api/leads/sync`: status, body, and the Retry-After header if any.
async fn sync_now(app: &TestApp) -> (u16, Value, Option<String>) {
    let r = app.post_authed("/api/leads/sync").await;
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (status, r.json().await.unwrap(), retry_after)
}

/// `POST /api/leads/sync` on a task of its own; the task gives status and body.
fn sync_in_background(app: &TestApp) -> tokio::task::JoinHandle<(u16, Value)> {
    let client = app.client.clone();
    let url = app.url("/api/leads/sync");
    tokio::spawn(async move {
        let r = client
            .post(url)
            .bearer_auth(DASHBOARD_TOKEN)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    })
}

/// Calls made to one path of the fake Graph.
fn calls_to(app: &TestApp, path: &str) -> usize {
    app.graph
        .calls()
        .iter()
        .filter(|c| c.as_str() == path)
        .count()
}

/// Waits until the fake Graph has received at least `n` calls.
async fn wait_for_calls(app: &TestApp, n: usize, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let c = app.graph.calls().len();
        if c >= n || Instant::now() > deadline {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// All leads as the API lists them, by leadgen id.
async fn leads_by_id(app: &TestApp) -> HashMap<String, Value> {
    let v = app.leads("limit=1000").await;
    let list = v["leads"].as_array().unwrap();
    let by_id: HashMap<String, Value> = list
        .iter()
        .map(|l| (l["leadgen_id"].as_str().unwrap().to_string(), l.clone()))
        .collect();
    assert_eq!(by_id.len(), list.len(), "a lead is listed twice");
    assert_eq!(v["total"], json!(list.len()));
    by_id
}

fn problems(status: &Value) -> Vec<String> {
    status["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn sync_reads_every_form_of_two_pages_through_all_paging_and_saves_each_lead_once() {
    let app = two_pages(|_| {}).await;
    let g = &app.graph;
    g.add_form(PAGE_ID, FORM_ID, "Spring offer");
    g.add_form(PAGE_ID, FORM_B, "Newsletter");
    g.add_form(PAGE_ID, FORM_C, "Nobody filled this in");
    g.add_form(PAGE_2, FORM_D, "Test drive");
    g.add_form(PAGE_2, FORM_E, "Callback");
    {
        let mut s = g.state.lock().unwrap();
        // Two leads a page, an empty page (with a `next`) second in every longer listing, and
        // the forms of a page over two pages as well.
        s.page_size = 2;
        s.empty_pages = vec![1];
        s.forms_page_size = Some(2);
    }
    let mut expected: HashMap<String, &str> = HashMap::new();
    for (form, name, first, n) in [
        (FORM_ID, "Spring offer", 1, 7),
        (FORM_B, "Newsletter", 11, 3),
        (FORM_D, "Test drive", 21, 5),
        (FORM_E, "Callback", 31, 1),
    ] {
        for id in add_leads(&app, form, first, n, LONG_AGO) {
            expected.insert(id, name);
        }
    }

    // One lead already came by webhook: the sync must not save it again.
    let by_webhook = lead_id(1);
    assert_eq!(
        app.post_webhook(&leadgen_body(&[&by_webhook]))
            .await
            .status(),
        200
    );
    assert_eq!(app.wait_for_count(1, Duration::from_secs(5)).await, 1);
    let mut stream = app.open_stream(None).await;

    let (status, body, _) = sync_now(&app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"forms": 5, "fetched": 16, "new": 15}));

    // The new leads went out live, each once, and the webhook's lead was not sent again.
    let live: HashSet<String> = stream
        .leads(15, Duration::from_secs(5))
        .await
        .iter()
        .map(|l| l["leadgen_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(live.len(), 15);
    assert!(!live.contains(&by_webhook));

    let saved = leads_by_id(&app).await;
    assert_eq!(saved.len(), 16);
    for (id, form_name) in &expected {
        let lead = &saved[id];
        assert_eq!(lead["form_name"], *form_name, "{id}");
        let source = if *id == by_webhook { "webhook" } else { "sync" };
        assert_eq!(lead["source"], source, "{id}");
    }
    assert_eq!(saved[&lead_id(21)]["page_id"], PAGE_2);
    assert_eq!(saved[&lead_id(11)]["page_id"], PAGE_ID);

    // Every page of paging was followed, the empty one included: 7 leads at 2 a page are 4
    // pages, plus the empty one.
    assert_eq!(calls_to(&app, &format!("{FORM_ID}/leads")), 5);
    assert_eq!(calls_to(&app, &format!("{FORM_C}/leads")), 1);
    assert_eq!(calls_to(&app, &format!("{PAGE_ID}/leadgen_forms")), 2);
    assert_eq!(calls_to(&app, &format!("{PAGE_2}/leadgen_forms")), 1);

    // Asking again saves nothing twice.
    let (status, body, _) = sync_now(&app).await;
    assert_eq!(status, 200);
    assert_eq!(body["new"], 0);
    assert_eq!(app.lead_count().await, 16);
}

#[tokio::test]
async fn a_webhook_for_a_lead_the_sync_already_saved_needs_no_graph_call() {
    let app = TestApp::spawn().await;
    app.graph.add_form(PAGE_ID, FORM_ID, "Spring offer");
    let synced = add_leads(&app, FORM_ID, 1, 2, LONG_AGO);
    let (status, body, _) = sync_now(&app).await;
    assert_eq!((status, body["new"].clone()), (200, json!(2)));

    // Meta delivers the webhook late, together with a lead the sync has not seen.
    let fresh = add_leads(&app, FORM_ID, 3, 1, now_unix()).remove(0);
    let r = app.post_webhook(&leadgen_body(&[&synced[0], &fresh])).await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.wait_for_count(3, Duration::from_secs(5)).await, 3);

    // Only the unseen lead was fetched: the known one never became a job.
    assert_eq!(app.graph.lead_calls(&fresh), 1);
    assert_eq!(app.graph.lead_calls(&synced[0]), 0);
    let status = app.status().await;
    assert_eq!(status["jobs_waiting"], 0);
    assert_eq!(status["dead_letters"], 0);
    let saved = leads_by_id(&app).await;
    assert_eq!(saved.len(), 3);
    assert_eq!(saved[&synced[0]]["source"], "sync");
}

#[tokio::test]
async fn a_second_sync_reads_only_from_the_last_one_minus_the_margin() {
    let app = TestApp::spawn().await;
    app.graph.add_form(PAGE_ID, FORM_ID, "Spring offer");
    add_leads(&app, FORM_ID, 1, 3, LONG_AGO);

    let before = now_unix();
    let (status, body, _) = sync_now(&app).await;
    let after = now_unix();
    assert_eq!(status, 200);
    assert_eq!(body, json!({"forms": 1, "fetched": 3, "new": 3}));
    // The first run reads everything.
    assert!(app.graph.filters_seen().is_empty());

    let fresh = add_leads(&app, FORM_ID, 4, 1, now_unix());
    let (status, body, _) = sync_now(&app).await;
    assert_eq!(status, 200);
    // Only the lead created since was read: the old ones are outside the window.
    assert_eq!(body, json!({"forms": 1, "fetched": 1, "new": 1}));
    assert_eq!(leads_by_id(&app).await[&fresh[0]]["source"], "sync");

    let filters = app.graph.filters_seen();
    assert_eq!(filters.len(), 1);
    let f: Value = serde_json::from_str(&filters[0]).unwrap();
    assert_eq!(f[0]["field"], "time_created");
    assert_eq!(f[0]["operator"], "GREATER_THAN");
    let since = f[0]["value"].as_i64().unwrap();
    assert!(
        (before - MARGIN_SECS..=after - MARGIN_SECS).contains(&since),
        "since {since} is not the first sync's start ({before}..={after}) minus {MARGIN_SECS} s"
    );
}

#[tokio::test]
async fn a_page_added_to_the_settings_later_is_read_from_the_beginning() {
    let app = TestApp::spawn().await;
    app.graph.add_form(PAGE_ID, FORM_ID, "Spring offer");
    app.graph.add_form(PAGE_2, FORM_D, "Test drive");
    add_leads(&app, FORM_ID, 1, 2, LONG_AGO);
    let old_on_page_2 = add_leads(&app, FORM_D, 21, 3, LONG_AGO);
    let (status, body, _) = sync_now(&app).await;
    assert_eq!((status, body["new"].clone()), (200, json!(2)));

    // The user adds their second page to META_PAGE_ID and restarts.
    let mut app = app;
    app.settings
        .meta
        .as_mut()
        .unwrap()
        .page_ids
        .push(PAGE_2.to_string());
    let app = app.restart().await;
    let (status, body, _) = sync_now(&app).await;
    assert_eq!(status, 200, "{body}");
    // The new page's leads, months old, come in; the known form is read only from its mark.
    assert_eq!(body, json!({"forms": 2, "fetched": 3, "new": 3}));
    let saved = leads_by_id(&app).await;
    for id in &old_on_page_2 {
        assert_eq!(saved[id]["page_id"], PAGE_2);
    }
    assert_eq!(
        app.graph.filters_seen().len(),
        1,
        "only the known form is filtered"
    );
}

#[tokio::test]
async fn a_sync_requested_while_one_runs_joins_it() {
    let app = TestApp::spawn().await;
    app.graph.add_form(PAGE_ID, FORM_ID, "Spring offer");
    add_leads(&app, FORM_ID, 1, 2, LONG_AGO);
    // The first Graph call (the form listing) takes a while, so the first sync is in flight.
    app.graph
        .fail_next(Failure::Slow(Duration::from_millis(700)), 1);

    let first = sync_in_background(&app);
    assert_eq!(wait_for_calls(&app, 1, Duration::from_secs(5)).await, 1);
    assert_eq!(app.status().await["sync_running"], true);

    let (status, second, _) = sync_now(&app).await;
    let (first_status, first) = first.await.unwrap();
    assert_eq!((first_status, status), (200, 200));
    assert_eq!(first, json!({"forms": 1, "fetched": 2, "new": 2}));
    assert_eq!(second, first, "the joined call gets the same answer");
    // One sync's worth of calls: the form listing and one page of leads.
    assert_eq!(app.graph.calls().len(), 2, "{:?}", app.graph.calls());
    assert_eq!(app.lead_count().await, 2);
    assert_eq!(app.status().await["sync_running"], false);
}

#[tokio::test]
async fn a_sync_goes_on_when_the_caller_that_asked_for_it_goes_away() {
    let app = TestApp::spawn().await;
    app.graph.add_form(PAGE_ID, FORM_ID, "Spring offer");
    add_leads(&app, FORM_ID, 1, 3, LONG_AGO);
    app.graph
        .fail_next(Failure::Slow(Duration::from_millis(600)), 1);

    // The browser tab is closed while the sync runs: the request is dropped mid-way.
    let gone = app
        .client
        .post(app.url("/api/leads/sync"))
        .bearer_auth(DASHBOARD_TOKEN)
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    assert!(gone.unwrap_err().is_timeout());

    assert_eq!(app.wait_for_count(3, Duration::from_secs(5)).await, 3);
    let s = app
        .wait_for_status(Duration::from_secs(5), |s| s["last_sync"]["ok"] == true)
        .await;
    assert_eq!(s["last_sync"]["new"], 3, "{s}");
}

#[tokio::test]
async fn leads_created_while_the_server_was_stopped_appear_after_start_up_without_a_click() {
    let app = TestApp::spawn_tuned(|s| {
        s.tuning.sync_at_start = true;
        s.tuning.sync_every = Some(Duration::from_secs(600));
    })
    .await;
    // The start-up sync ran (Graph has no forms yet).
    let s = app
        .wait_for_status(Duration::from_secs(5), |s| s["last_sync"]["ok"] == true)
        .await;
    assert_eq!(s["last_sync"]["forms"], 0);
    app.graph.add_form(PAGE_ID, FORM_ID, "Spring offer");
    add_leads(&app, FORM_ID, 1, 1, now_unix());
    assert_eq!(sync_now(&app).await.1["new"], 1);

    let mut app = app;
    app.stop().await;
    let while_down = add_leads(&app, FORM_ID, 2, 3, now_unix());
    let app = app.restart().await;

    assert_eq!(app.wait_for_count(4, Duration::from_secs(5)).await, 4);
    let saved = leads_by_id(&app).await;
    for id in &while_down {
        assert_eq!(saved[id]["source"], "sync");
        assert_eq!(saved[id]["form_name"], "Spring offer");
    }
    // The start-up sync read from the last one, not from the beginning.
    assert_eq!(app.graph.filters_seen().len(), 1);
}

#[tokio::test]
async fn a_rate_limit_mid_sync_keeps_what_was_saved_pauses_graph_and_finishes_by_itself() {
    let app = two_pages(|s| {
        s.tuning.sync_every = Some(Duration::from_secs(600));
        s.tuning.sync_at_start = false;
        // The sync's first retry comes after 30 × this (± 20%): 480..720 ms.
        s.tuning.retry_base = Duration::from_millis(20);
    })
    .await;
    let g = &app.graph;
    g.add_form(PAGE_ID, FORM_ID, "Spring offer");
    g.add_form(PAGE_ID, FORM_B, "Newsletter");
    g.add_form(PAGE_2, FORM_D, "Test drive");
    g.add_form(PAGE_2, FORM_E, "Callback");
    g.state.lock().unwrap().page_size = 2;
    for (i, form) in [FORM_ID, FORM_B, FORM_D, FORM_E].iter().enumerate() {
        add_leads(&app, form, 10 * i as u64 + 1, 5, LONG_AGO);
    }
    // Calls: page 1's forms, the 3 pages of the first form, the first page of the second
    // form; then Meta says "(#4) Application request limit reached".
    g.fail_after(5, Failure::RateLimited, 1);

    let (status, body, retry_after) = sync_now(&app).await;
    assert_eq!(status, 429, "{body}");
    let words = body["error"].as_str().unwrap();
    assert!(
        words.contains("rate limit") && words.contains("by itself"),
        "{words}"
    );
    assert_eq!(body["partial"], json!({"forms": 1, "fetched": 7, "new": 7}));
    assert_eq!(retry_after.as_deref(), Some("1"));
    // What was read before the limit is kept.
    assert_eq!(app.lead_count().await, 7);

    // While paused, nobody calls Graph: not a click, not the periodic sync.
    let calls_at_limit = app.graph.calls().len();
    assert_eq!(calls_at_limit, 6);
    let (status, body, _) = sync_now(&app).await;
    assert_eq!(status, 429);
    assert!(
        body["error"].as_str().unwrap().contains("no calls to Meta"),
        "{body}"
    );
    assert_eq!(app.graph.calls().len(), calls_at_limit);
    let s = app.status().await;
    assert!(problems(&s).iter().any(|p| p.contains("rate limit")), "{s}");
    assert!(s["graph_paused_seconds"].as_u64().unwrap() >= 1, "{s}");

    // Then it resumes and finishes by itself.
    assert_eq!(app.wait_for_count(20, Duration::from_secs(8)).await, 20);
    let s = app
        .wait_for_status(Duration::from_secs(5), |s| s["last_sync"]["ok"] == true)
        .await;
    assert_eq!(s["last_sync"]["forms"], 4, "{s}");
    assert_eq!(s["last_sync"]["new"], 13, "{s}");
    assert!(problems(&s).is_empty(), "{s}");

    let times = app.graph.state.lock().unwrap().call_times.clone();
    let quiet = times[calls_at_limit] - times[calls_at_limit - 1];
    assert!(
        quiet >= Duration::from_millis(450),
        "Graph called again {quiet:?} after the rate limit"
    );
    // The resumed sync did not start over: the form read to the end before the limit is only
    // checked for newer leads (1 call, not 3). Page 1's forms, that check, 3 + 3 + 3 pages,
    // page 2's forms: 12 calls.
    assert_eq!(
        app.graph.calls().len(),
        calls_at_limit + 12,
        "{:?}",
        app.graph.calls()
    );
}

#[tokio::test]
async fn an_expired_token_is_explained_is_not_retried_in_a_loop_and_clears_once_it_works() {
    let app = TestApp::spawn_tuned(|s| {
        s.tuning.sync_every = Some(Duration::from_millis(400));
        s.tuning.sync_at_start = false;
    })
    .await;
    app.graph.add_form(PAGE_ID, FORM_ID, "Spring offer");
    add_leads(&app, FORM_ID, 1, 1, LONG_AGO);
    app.graph.set_always(Some(Failure::TokenExpired));

    let (status, body, _) = sync_now(&app).await;
    assert_eq!(status, 502, "{body}");
    let words = body["error"].as_str().unwrap();
    assert!(
        words.contains("expired") && words.contains("META_PAGE_ACCESS_TOKEN"),
        "{words}"
    );
    let s = app.status().await;
    assert!(
        problems(&s)
            .iter()
            .any(|p| p.contains("long-lived") && p.contains("META_PAGE_ACCESS_TOKEN")),
        "{s}"
    );
    assert_eq!(s["last_sync"]["ok"], false);
    assert!(s["last_sync"]["error"]
        .as_str()
        .unwrap()
        .contains("META_PAGE_ACCESS_TOKEN"));

    // The periodic sync keeps its schedule (every 400 ms here), no faster: a loop would make
    // hundreds of calls in this window. Measuring a rate needs a fixed window.
    let before = app.graph.calls().len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = app.graph.calls().len() - before;
    assert!(during <= 7, "{during} calls in 2 s with an expired token");
    let healthz = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(healthz.status(), 200);

    // The token works again: the next scheduled sync clears the problem without a click.
    app.graph.set_always(None);
    let s = app
        .wait_for_status(Duration::from_secs(5), |s| {
            s["last_sync"]["ok"] == true && s["problems"] == json!([])
        })
        .await;
    assert_eq!(s["last_sync"]["ok"], true, "{s}");
    assert_eq!(s["problems"], json!([]), "{s}");
    assert_eq!(app.lead_count().await, 1);
}

#[tokio::test]
async fn a_wrong_app_secret_is_named_as_such_not_as_a_missing_page() {
    let app = TestApp::spawn_tuned(|s| {
        s.meta.as_mut().unwrap().app_secret = Secret::new("the-secret-of-another-app");
    })
    .await;
    app.graph.add_form(PAGE_ID, FORM_ID, "Spring offer");

    let (status, body, _) = sync_now(&app).await;
    assert_eq!(status, 502, "{body}");
    let words = body["error"].as_str().unwrap();
    assert!(
        words.contains("appsecret_proof") && words.contains("META_APP_SECRET"),
        "{words}"
    );
    assert!(!words.contains("META_PAGE_ID"), "{words}");
    let s = app.status().await;
    assert!(
        problems(&s).iter().any(|p| p.contains("META_APP_SECRET")),
        "{s}"
    );
}

#[tokio::test]
async fn a_form_graph_will_not_read_is_skipped_and_the_other_forms_still_come_in() {
    let app = TestApp::spawn().await;
    app.graph.add_form(PAGE_ID, FORM_ID, "Spring offer");
    app.graph.add_form(PAGE_ID, FORM_B, "Newsletter");
    app.graph.add_form(PAGE_ID, FORM_C, "Callback");
    add_leads(&app, FORM_ID, 1, 2, LONG_AGO);
    add_leads(&app, FORM_B, 11, 2, LONG_AGO);
    add_leads(&app, FORM_C, 21, 2, LONG_AGO);
    // The form listing and the first form pass; Meta will not read the second form.
    app.graph.fail_after(2, Failure::NotFound, 1);

    let (status, body, _) = sync_now(&app).await;
    assert_eq!(status, 502, "{body}");
    let words = body["error"].as_str().unwrap();
    assert!(words.contains("\"Newsletter\""), "{words}");
    assert_eq!(body["partial"], json!({"forms": 2, "fetched": 4, "new": 4}));
    assert_eq!(app.lead_count().await, 4);
    let s = app.status().await;
    assert_eq!(s["last_sync"]["ok"], false);

    // Once Meta reads it again, the skipped form is read from the beginning.
    let (status, body, _) = sync_now(&app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["new"], 2);
    assert_eq!(app.lead_count().await, 6);
}

#[tokio::test]
async fn status_shows_last_webhook_last_sync_jobs_waiting_dead_letters_and_problems() {
    // The periodic sync is on, as in production, but not due during the test.
    let app = TestApp::spawn_tuned(|s| {
        s.tuning.sync_every = Some(Duration::from_secs(600));
        s.tuning.sync_at_start = false;
    })
    .await;
    let s = app.status().await;
    assert_eq!(s["last_webhook_at"], Value::Null);
    assert_eq!(s["last_sync"], Value::Null);
    assert_eq!(s["jobs_waiting"], 0);
    assert_eq!(s["dead_letters"], 0);
    assert_eq!(s["problems"], json!([]));
    assert_eq!(s["sync_running"], false);

    // A lead id Graph does not know (code 100) becomes a dead letter.
    let unknown = lead_id(999);
    app.deliver(&[&unknown]).await;
    let s = app
        .wait_for_status(Duration::from_secs(5), |s| s["dead_letters"] == 1)
        .await;
    assert_eq!(s["dead_letters"], 1);
    assert!(s["last_webhook_at"].as_str().unwrap().ends_with('Z'), "{s}");

    app.graph.add_form(PAGE_ID, FORM_ID, "Spring offer");
    add_leads(&app, FORM_ID, 1, 2, LONG_AGO);
    assert_eq!(sync_now(&app).await.0, 200);
    let s = app.status().await;
    let last = &s["last_sync"];
    assert_eq!(last["ok"], true);
    assert_eq!(
        (&last["forms"], &last["fetched"], &last["new"]),
        (&json!(1), &json!(2), &json!(2))
    );
    assert_eq!(last["error"], Value::Null);
    assert!(last["at"].as_str().unwrap().ends_with('Z'));

    // Meta is down: a new lead waits for a retry, and the failed sync says why.
    app.graph.set_always(Some(Failure::ServerError));
    let waiting = lead_id(500);
    app.deliver(&[&waiting]).await;
    let (status, body, _) = sync_now(&app).await;
    assert_eq!(status, 502, "{body}");
    let s = app.status().await;
    assert_eq!(s["jobs_waiting"], 1, "{s}");
    assert_eq!(s["last_sync"]["ok"], false);
    let error = s["last_sync"]["error"].as_str().unwrap();
    assert!(
        error.contains(PAGE_ID) && error.contains("tries again"),
        "{error}"
    );
    // A passing outage is not something for a person to fix.
    assert_eq!(s["problems"], json!([]), "{s}");

    // An expired token is.
    app.graph.set_always(Some(Failure::TokenExpired));
    assert_eq!(sync_now(&app).await.0, 502);
    let s = app.status().await;
    assert!(
        problems(&s)
            .iter()
            .any(|p| p.contains("META_PAGE_ACCESS_TOKEN")),
        "{s}"
    );
}

#[tokio::test]
async fn without_a_page_id_sync_answers_503_and_status_says_what_to_set() {
    let app = TestApp::spawn_tuned(|s| {
        s.meta.as_mut().unwrap().page_ids = Vec::new();
        // The periodic sync is on as in production: it must not call Graph either.
        s.tuning.sync_every = Some(Duration::from_millis(200));
        s.tuning.sync_at_start = true;
    })
    .await;
    let (status, body, _) = sync_now(&app).await;
    assert_eq!(status, 503);
    assert!(
        body["error"].as_str().unwrap().contains("META_PAGE_ID"),
        "{body}"
    );
    let s = app.status().await;
    assert!(
        problems(&s).iter().any(|p| p.contains("META_PAGE_ID")),
        "{s}"
    );
    assert_eq!(s["last_sync"], Value::Null);
    assert!(app.graph.calls().is_empty());
}

#[tokio::test]
async fn shutting_down_during_a_sync_answers_at_once_and_keeps_the_server_stoppable() {
    let mut app = TestApp::spawn().await;
    app.graph.add_form(PAGE_ID, FORM_ID, "Spring offer");
    app.graph
        .fail_next(Failure::Slow(Duration::from_secs(8)), 1);
    let pending = sync_in_background(&app);
    assert_eq!(wait_for_calls(&app, 1, Duration::from_secs(5)).await, 1);
    let took = app.stop().await;
    assert!(took < Duration::from_secs(2), "stop took {took:?}");
    let (status, body) = pending.await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("next start"),
        "{body}"
    );
}
