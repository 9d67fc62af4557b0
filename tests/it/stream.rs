//! The live stream with real SSE clients: order, ids, replay after a drop, keep-alives, auth,
//! fan-out, slow readers, shutdown, and leads from sync. The tests that matter most run twice:
//! on a fresh connection (as curl opens it) and on a browser-style one (a keep-alive
//! connection that carried an ordinary request first, as EventSource and proxies use them).

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::Value;

use crate::helpers::*;

const WAIT: Duration = Duration::from_secs(10);

/// Runs the test body `$body` (an `async fn(Via)`) as two tests in a module `$name`: on a
/// fresh connection and on a browser-style one.
macro_rules! both_ways {
    ($name:ident, $body:ident) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn on_a_fresh_connection() {
                $body(Via::Fresh).await;
            }

            #[tokio::test]
            async fn on_a_browser_style_connection() {
                $body(Via::Browser).await;
            }
        }
    };
}

/// `GET /api/stream{query}` with the token and, if given, a raw `Last-Event-ID` header.
async fn get_stream(app: &TestApp, query: &str, last_event_id: Option<&str>) -> reqwest::Response {
    app.stream_via(Via::Fresh, query, last_event_id).await
}

fn event_stream(res: reqwest::Response) -> SseClient {
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    SseClient::new(res)
}

/// Posts one webhook per lead id, one after the other, as Meta does.
async fn post_each(app: &TestApp, ids: &[String]) {
    for id in ids {
        app.deliver(&[id]).await;
    }
}

/// Posts one webhook carrying every lead id, as Meta does when leads come in a burst.
async fn post_all_at_once(app: &TestApp, ids: &[String]) {
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(app.post_webhook(&leadgen_body(&ids)).await.status(), 200);
}

fn row_ids(leads: &[Value]) -> Vec<i64> {
    leads.iter().map(|l| l["id"].as_i64().unwrap()).collect()
}

fn leadgen_ids(leads: &[Value]) -> BTreeSet<String> {
    leads
        .iter()
        .map(|l| l["leadgen_id"].as_str().unwrap().to_string())
        .collect()
}

fn assert_strictly_increasing(ids: &[i64]) {
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids out of order or repeated: {ids:?}"
    );
}

/// Row ids of every saved lead, ascending.
async fn saved_row_ids(app: &TestApp) -> Vec<i64> {
    let v = app.leads("limit=1000").await;
    let mut ids = row_ids(v["leads"].as_array().unwrap());
    ids.sort();
    ids
}

both_ways!(
    thirty_leads_in_a_row_arrive_in_order_with_their_row_ids_as_event_ids,
    thirty_leads_in_a_row
);

async fn thirty_leads_in_a_row(via: Via) {
    let app = TestApp::spawn().await;
    let mut stream = app.open_stream_via(via, None).await;
    // Served by the socket writer either way; the helper did reuse the connection it says.
    let written = &app.status().await["streams_written"];
    assert_eq!(written["open"], 1);
    assert_eq!(
        written["on_reused_connections"],
        u8::from(via == Via::Browser)
    );
    let ids = add_graph_leads(&app, 1, 30);
    post_each(&app, &ids).await;

    // `leads` also checks each `id:` line against the JSON id.
    let got = stream.leads(30, WAIT).await;
    assert_strictly_increasing(&row_ids(&got));
    assert_eq!(row_ids(&got), saved_row_ids(&app).await);
    assert_eq!(leadgen_ids(&got), ids.into_iter().collect());
    for lead in &got {
        // The whole lead travels, not just its id (the worker saves them in any order).
        let n: u64 = lead["leadgen_id"].as_str().unwrap().parse().unwrap();
        let name = format!("Person {}", n - 1_000_000_000_000_000);
        assert_eq!(lead["fields"]["full_name"], name.as_str());
    }
    assert_eq!(
        stream.next_event(Duration::from_millis(300)).await,
        None,
        "nothing after the 30"
    );
}

/// Drops a stream, lets 5 leads arrive, reconnects after the last id seen (through `resume`),
/// and checks: exactly those 5, in order, then a 6th live, then nothing.
async fn reconnect_gets_exactly_the_missed_leads_then_live(
    via: Via,
    resume: impl Fn(&TestApp, i64) -> futures_util::future::BoxFuture<'_, reqwest::Response>,
) {
    let app = TestApp::spawn().await;
    let mut first = app.open_stream_via(via, None).await;
    let before = add_graph_leads(&app, 1, 2);
    post_each(&app, &before).await;
    let seen = first.leads(2, WAIT).await;
    let last = seen[1]["id"].as_i64().unwrap();
    drop(first);

    let missed = add_graph_leads(&app, 3, 5);
    post_each(&app, &missed).await;
    // All five are committed before reconnecting: they must come from the replay.
    assert_eq!(app.wait_for_count(7, WAIT).await, 7);

    let mut again = event_stream(resume(&app, last).await);
    let replayed = again.leads(5, WAIT).await;
    assert_eq!(leadgen_ids(&replayed), missed.into_iter().collect());
    let replayed_ids = row_ids(&replayed);
    assert_strictly_increasing(&replayed_ids);
    let saved = saved_row_ids(&app).await;
    assert_eq!(replayed_ids, saved[2..], "exactly the leads after {last}");

    let live = add_graph_leads(&app, 8, 1);
    post_each(&app, &live).await;
    // The very next event is the new lead: a duplicate of the replay would come first.
    let next = again.leads(1, WAIT).await;
    assert_eq!(next[0]["leadgen_id"], live[0].as_str());
    assert!(next[0]["id"].as_i64().unwrap() > replayed_ids[4]);
    assert_eq!(again.next_event(Duration::from_millis(300)).await, None);
}

both_ways!(
    reconnecting_with_a_last_event_id_header_replays_the_missed_leads_then_goes_live,
    resume_by_header
);

async fn resume_by_header(via: Via) {
    reconnect_gets_exactly_the_missed_leads_then_live(via, move |app, last| {
        Box::pin(async move { app.stream_via(via, "", Some(&last.to_string())).await })
    })
    .await;
}

// As the dashboard does it: a new EventSource carries the id in the URL.
#[tokio::test]
async fn reconnecting_with_a_last_event_id_query_replays_the_missed_leads_then_goes_live() {
    reconnect_gets_exactly_the_missed_leads_then_live(Via::Browser, |app, last| {
        Box::pin(async move {
            let query = format!("?last_event_id={last}");
            app.stream_via(Via::Browser, &query, None).await
        })
    })
    .await;
}

#[tokio::test]
async fn an_unparseable_last_event_id_is_treated_as_absent() {
    let app = TestApp::spawn().await;
    let old = add_graph_leads(&app, 1, 3);
    post_each(&app, &old).await;
    assert_eq!(app.wait_for_count(3, WAIT).await, 3);

    let mut streams = vec![
        event_stream(get_stream(&app, "", Some("abc")).await),
        event_stream(get_stream(&app, "?last_event_id=abc", None).await),
        event_stream(get_stream(&app, "?last_event_id=", Some("")).await),
    ];
    let new = add_graph_leads(&app, 4, 1);
    post_each(&app, &new).await;
    for s in &mut streams {
        // Live from now: the old three are not replayed.
        let got = s.leads(1, WAIT).await;
        assert_eq!(got[0]["leadgen_id"], new[0].as_str());
    }
}

#[tokio::test]
async fn a_last_event_id_from_another_database_gets_refresh_and_then_new_leads() {
    let app = TestApp::spawn().await;
    post_each(&app, &add_graph_leads(&app, 1, 2)).await;
    assert_eq!(app.wait_for_count(2, WAIT).await, 2);

    // As after restoring an older backup: the browser remembers id 500, this database has 2.
    let mut s = event_stream(get_stream(&app, "", Some("500")).await);
    let refresh = s.next_event(WAIT).await.unwrap();
    assert_eq!(refresh.event, "refresh");
    assert_eq!(refresh.id.as_deref(), Some("2"));
    assert_eq!(refresh.json()["last_id"], 2);

    let new = add_graph_leads(&app, 3, 1);
    post_each(&app, &new).await;
    let got = s.leads(1, WAIT).await;
    assert_eq!(got[0]["leadgen_id"], new[0].as_str());
    assert_eq!(got[0]["id"], 3);
}

#[tokio::test]
async fn the_stream_needs_credentials() {
    let app = TestApp::spawn().await;
    let none = app.client.get(app.url("/api/stream")).send().await.unwrap();
    let wrong = app
        .client
        .get(app.url("/api/stream"))
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    let cookie = app
        .client
        .get(app.url("/api/stream"))
        .header("cookie", "session=forged")
        .send()
        .await
        .unwrap();
    for r in [none, wrong, cookie] {
        assert_eq!(r.status(), 401);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].is_string());
    }
}

both_ways!(
    an_idle_stream_gets_a_retry_hint_and_a_comment_every_keepalive,
    idle_stream
);

async fn idle_stream(via: Via) {
    let app = TestApp::spawn_tuned(|s| s.tuning.keepalive = Duration::from_millis(200)).await;
    let res = app.stream_via(via, "", None).await;
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["x-accel-buffering"], "no");
    let mut s = event_stream(res);
    assert_eq!(s.next_event(Duration::from_millis(1_300)).await, None);
    assert_eq!(s.retry, Some(2000));
    // The hello comment plus one per 200 ms: six in 1.3 s when on time; a 15 s clock gives one.
    assert!(s.comments >= 4, "{} comments in 1.3 s", s.comments);
}

#[tokio::test]
async fn two_hundred_concurrent_streams_each_get_every_lead_in_order() {
    let app = TestApp::spawn().await;
    let via = |i| if i % 2 == 0 { Via::Fresh } else { Via::Browser };
    let streams = join_all((0..200).map(|i| app.open_stream_via(via(i), None))).await;
    let ids = add_graph_leads(&app, 1, 10);
    post_each(&app, &ids).await;

    let got = join_all(streams.into_iter().map(|mut s| async move {
        let leads = s.leads(10, Duration::from_secs(15)).await;
        row_ids(&leads)
    }))
    .await;
    let saved = saved_row_ids(&app).await;
    assert_eq!(saved.len(), 10);
    for (i, ids) in got.iter().enumerate() {
        assert_eq!(ids, &saved, "stream {i}");
    }
}

both_ways!(
    a_slow_reader_behind_a_tiny_channel_still_gets_every_lead_in_order,
    slow_reader
);

async fn slow_reader(via: Via) {
    let app = TestApp::spawn_tuned(|s| s.tuning.broadcast_capacity = 2).await;
    let mut s = app.open_stream_via(via, None).await;
    // Not read while 50 big leads are saved: the sockets fill up, the server stops pulling
    // from the channel, and the channel (two slots) drops most of them for this client.
    let ids = add_big_graph_leads(&app, 1, 50);
    post_all_at_once(&app, &ids).await;
    assert_eq!(app.wait_for_count(50, Duration::from_secs(20)).await, 50);

    let got = s.leads(50, Duration::from_secs(20)).await;
    assert_eq!(
        row_ids(&got),
        saved_row_ids(&app).await,
        "no gap, no repeat"
    );
    assert_eq!(leadgen_ids(&got), ids.into_iter().collect());
    assert_eq!(s.next_event(Duration::from_millis(300)).await, None);
}

#[tokio::test]
async fn a_hopelessly_behind_reader_is_told_to_refresh_and_then_continues_live() {
    let app = TestApp::spawn_tuned(|s| {
        s.tuning.broadcast_capacity = 2;
        s.tuning.max_replay = 5;
    })
    .await;
    let mut s = app.open_stream_via(Via::Browser, None).await;
    post_all_at_once(&app, &add_big_graph_leads(&app, 1, 50)).await;
    assert_eq!(app.wait_for_count(50, Duration::from_secs(20)).await, 50);

    // Whatever got through before the sockets filled, then `refresh` up to the newest lead
    // (possibly more than once: the burst can outrun the channel before the sockets fill).
    let mut ids = Vec::new();
    let mut refreshes = 0;
    while ids.last() != Some(&50) {
        let ev = s
            .next_event(Duration::from_secs(20))
            .await
            .unwrap_or_else(|| panic!("stream ended after ids {ids:?}"));
        let id: i64 = ev.id.as_deref().unwrap().parse().unwrap();
        match ev.event.as_str() {
            "lead" => assert_eq!(ev.json()["id"], id),
            "refresh" => {
                assert_eq!(ev.json()["last_id"], id);
                refreshes += 1;
            }
            other => panic!("unexpected event {other}"),
        }
        ids.push(id);
    }
    assert!(refreshes > 0, "50 leads through 2 slots, yet no refresh");
    assert_strictly_increasing(&ids);

    let live = add_graph_leads(&app, 51, 1);
    post_each(&app, &live).await;
    let next = s.leads(1, WAIT).await;
    assert_eq!(next[0]["id"], 51);
}

#[tokio::test]
async fn shutdown_with_open_streams_is_prompt_and_ends_them() {
    let mut app = TestApp::spawn().await;
    let via = |i| if i % 2 == 0 { Via::Fresh } else { Via::Browser };
    let mut streams = join_all((0..6).map(|i| app.open_stream_via(via(i), None))).await;
    for s in &mut streams {
        // The hello arrived: the server holds the stream open.
        assert_eq!(s.next_event(Duration::from_millis(100)).await, None);
        assert_eq!(s.retry, Some(2000));
    }
    let took = app.stop().await;
    // The server force-closes connections after 4.5 s anyway, so "under 5 s" alone would not
    // show that streams end on shutdown; ending them makes the whole stop take well under 2 s.
    assert!(took < Duration::from_secs(2), "stop took {took:?}");
    for s in &mut streams {
        assert!(s.ends_within(Duration::from_secs(1)).await);
    }
}

#[tokio::test]
async fn leads_saved_by_a_sync_arrive_on_the_stream_once() {
    let app = TestApp::spawn().await;
    app.graph.add_form(PAGE_ID, FORM_ID, "Spring form");
    let ids = add_graph_leads(&app, 1, 3);
    let mut s = app.open_stream(None).await;

    let r = app.post_authed("/api/leads/sync").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["new"], 3);
    let got = s.leads(3, WAIT).await;
    assert_strictly_increasing(&row_ids(&got));
    assert_eq!(leadgen_ids(&got), ids.iter().cloned().collect());
    assert!(got.iter().all(|l| l["source"] == "sync"));

    // The same leads again, by webhook and by sync, are duplicates: nothing new goes out.
    post_each(&app, &ids).await;
    let st = app
        .wait_for_status(WAIT, |st| st["jobs_waiting"] == 0)
        .await;
    assert_eq!(st["jobs_waiting"], 0);
    let r = app.post_authed("/api/leads/sync").await;
    assert_eq!(r.json::<Value>().await.unwrap()["new"], 0);
    assert_eq!(s.next_event(Duration::from_millis(300)).await, None);
    assert_eq!(app.lead_count().await, 3);
}
