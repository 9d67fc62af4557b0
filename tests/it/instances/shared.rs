//! What one instance knows, all know: a session, the sync in progress, Meta's rate limit.

use std::time::Duration;

use super::*;

/// Logs in on `on` with the dashboard token; the session cookie (`name=value`).
pub async fn login(on: &Instance) -> String {
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(on.url("/login"))
        .form(&[("token", DASHBOARD_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_string()
}

pub async fn status_with(on: &Instance, cookie: &str) -> u16 {
    reqwest::Client::new()
        .get(on.url("/api/leads/count"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_made_on_one_instance_works_on_the_other_and_logout_there_ends_it_and_its_stream_here(
) {
    let Some(db) = database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (graph, _) = graph_with_leads(1, 0).await;
    let a = Instance::start(dir.path(), &db, &graph, &[]).await;
    let b = Instance::start(dir.path(), &db, &graph, &[]).await;
    let cookie = login(&a).await;
    assert_eq!(status_with(&a, &cookie).await, 200);
    assert_eq!(status_with(&b, &cookie).await, 200, "made on A, used on B");
    // A stream that session opened on A.
    let res = reqwest::Client::new()
        .get(a.url("/api/stream"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut stream = SseClient::new(res);

    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(b.url("/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(status_with(&b, &cookie).await, 401);
    // A heard of it: the stream the session opened there ends, and the session is refused,
    // at once, not after A's cache of the session runs out.
    assert!(
        stream.ends_within(Duration::from_secs(1)).await,
        "the stream on A outlived a logout on B"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while status_with(&a, &cookie).await != 401 {
        assert!(
            std::time::Instant::now() < deadline,
            "the session still works on A after logout on B"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two instances that sync page [`PAGE_ID`], whose form has a few leads, after their start-up
/// sync is over; the fake Graph each asks.
async fn syncing_pair(db: &str, dir: &Path) -> (Instance, FakeGraph, Instance, FakeGraph) {
    let mut graphs = Vec::new();
    for _ in 0..2 {
        let (graph, _) = graph_with_leads(1, 3).await;
        graph.add_form(PAGE_ID, FORM_ID, "Spring open day");
        graphs.push(graph);
    }
    let page = [("META_PAGE_ID", PAGE_ID)];
    let a = Instance::start(dir, db, &graphs[0], &page).await;
    let b = Instance::start(dir, db, &graphs[1], &page).await;
    // The elected leader syncs at start-up; wait for it to finish.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while a.get_json("/api/status").await["last_sync"].is_null() {
        assert!(std::time::Instant::now() < deadline, "no start-up sync");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let graph_b = graphs.pop().unwrap();
    let graph_a = graphs.pop().unwrap();
    (a, graph_a, b, graph_b)
}

fn form_listings(graph: &FakeGraph) -> usize {
    let listing = format!("{PAGE_ID}/leadgen_forms");
    graph.calls().iter().filter(|c| **c == listing).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sync_runs_at_a_time_across_instances_and_both_callers_get_its_result() {
    let Some(db) = database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (a, graph_a, b, graph_b) = syncing_pair(&db, dir.path()).await;
    let before = form_listings(&graph_a) + form_listings(&graph_b);
    // Whoever starts the sync finds Graph slow; the other asks meanwhile.
    for g in [&graph_a, &graph_b] {
        g.fail_next(Failure::Slow(Duration::from_millis(1500)), 1);
    }
    let sync = |on: &Instance| {
        let url = on.url("/api/leads/sync");
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .bearer_auth(DASHBOARD_TOKEN)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (on_a, on_b) = tokio::join!(sync(&a), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        sync(&b).await
    });
    assert_eq!(on_a.0, 200, "{on_a:?}");
    assert_eq!(on_b.0, 200, "{on_b:?}");
    assert_eq!(on_a.1, on_b.1, "both callers get the one sync's report");
    assert_eq!(
        form_listings(&graph_a) + form_listings(&graph_b) - before,
        1,
        "one sync ran, not two"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_met_by_one_instance_pauses_graph_calls_on_the_other() {
    let Some(db) = database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (a, graph_a, b, graph_b) = syncing_pair(&db, dir.path()).await;
    // A's sync meets Meta's rate limit: Graph is paused for every instance.
    graph_a.set_always(Some(Failure::RateLimited));
    let r = reqwest::Client::new()
        .post(a.url("/api/leads/sync"))
        .bearer_auth(DASHBOARD_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let s = b.get_json("/api/status").await;
        if s["graph_paused_seconds"].as_u64() > Some(0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "B does not know of the pause: {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A lead sent to B waits: B does not ask Graph during the pause.
    let calls_before = graph_b.calls().len();
    let new = add_leads(&graph_b, 100, 1);
    assert_eq!(
        b.post_webhook(&reqwest::Client::new(), &[&new[0]]).await,
        200
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        graph_b.calls().len(),
        calls_before,
        "B called Graph during the pause"
    );
    assert_eq!(graph_b.lead_calls(&new[0]), 0);
}
