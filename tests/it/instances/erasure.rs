//! Erasing on one instance: every instance's open pages are told, and none replays the lead.

use std::time::Duration;

use serde_json::json;

use super::*;

const WAIT: Duration = Duration::from_secs(10);

/// The `erased` events among what `stream` sends within `WAIT`, until one names `id`.
async fn erased_event(stream: &mut SseClient, id: i64) {
    loop {
        let ev = stream.next_event(WAIT).await.expect("an erased event");
        if ev.event == "erased" {
            assert_eq!(ev.json(), json!({ "id": id }));
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lead_erased_on_one_instance_leaves_the_streams_and_replays_of_both() {
    let Some(db) = database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (graph, ids) = graph_with_leads(1, 2).await;
    let a = Instance::start(dir.path(), &db, &graph, &[]).await;
    let b = Instance::start(dir.path(), &db, &graph, &[]).await;
    let client = reqwest::Client::new();
    assert_eq!(a.post_webhook(&client, &[&ids[0], &ids[1]]).await, 200);
    assert_eq!(wait_for_leads(&db, 2, WAIT).await, 2);
    let (lead_ids, leadgen_ids) = saved(&db).await;
    let gone = lead_ids[leadgen_ids.iter().position(|g| *g == ids[0]).unwrap()];
    let mut on_a = a.open_stream(None).await;
    let mut on_b = b.open_stream(None).await;

    let r = client
        .delete(b.url(&format!("/api/leads/{gone}")))
        .bearer_auth(DASHBOARD_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    erased_event(&mut on_a, gone).await;
    erased_event(&mut on_b, gone).await;

    for on in [&a, &b] {
        let list = on.get_json("/api/leads").await;
        assert_eq!(list["total"], 1, "{list}");
        let mut replay = on.open_stream(Some(0)).await;
        let replayed = replay.leads(1, WAIT).await;
        assert_eq!(replayed[0]["leadgen_id"], ids[1]);
        assert!(replay
            .next_event(Duration::from_millis(300))
            .await
            .is_none());
    }
}
