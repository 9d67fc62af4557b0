//! One order for every stream on every instance: the feed, and the lock that makes it
//! possible.

use std::time::{Duration, Instant};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lead_sent_to_one_instance_is_streamed_by_the_other_within_a_second_and_replayed_there() {
    let Some(db) = database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (graph, ids) = graph_with_leads(1, 6).await;
    let a = Instance::start(dir.path(), &db, &graph, &[]).await;
    let b = Instance::start(dir.path(), &db, &graph, &[]).await;
    let client = reqwest::Client::new();

    let mut on_b = b.open_stream(None).await;
    let sent = Instant::now();
    assert_eq!(a.post_webhook(&client, &[&ids[0]]).await, 200);
    let first = on_b.leads(1, Duration::from_secs(5)).await;
    let took = sent.elapsed();
    assert_eq!(first[0]["leadgen_id"], ids[0]);
    assert!(
        took < Duration::from_secs(1),
        "webhook on A → stream on B took {took:?}"
    );

    for id in &ids[1..] {
        assert_eq!(a.post_webhook(&client, &[id]).await, 200);
    }
    assert_eq!(wait_for_leads(&db, 6, Duration::from_secs(10)).await, 6);
    // A's listing, oldest first, is what B replays to a client that has seen nothing.
    let mut listed = a.get_json("/api/leads?order=asc").await["leads"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(listed.len(), 6);
    let mut replay = b.open_stream(Some(0)).await;
    assert_eq!(replay.leads(6, Duration::from_secs(5)).await, listed);
    // And from the middle: exactly the later ones.
    let after = listed[2]["id"].as_i64().unwrap();
    let mut resumed = b.open_stream(Some(after)).await;
    listed.drain(..3);
    assert_eq!(resumed.leads(3, Duration::from_secs(5)).await, listed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_webhooks_split_over_two_instances_reach_every_stream_once_in_the_database_order(
) {
    let Some(db) = database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let n = 500u64;
    let (graph, ids) = graph_with_leads(1, n).await;
    let a = Instance::start(dir.path(), &db, &graph, &[]).await;
    let b = Instance::start(dir.path(), &db, &graph, &[]).await;
    let mut streams = vec![
        ("A", a.open_stream(None).await),
        ("A", a.open_stream(None).await),
        ("B", b.open_stream(None).await),
        ("B", b.open_stream(None).await),
    ];

    // Every webhook at once, alternating instances, 32 in flight.
    let client = reqwest::Client::new();
    let bases = [a.base.clone(), b.base.clone()];
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(32));
    let sends: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let (client, base, id, sem) = (
                client.clone(),
                bases[i % 2].clone(),
                id.clone(),
                sem.clone(),
            );
            tokio::spawn(async move {
                let _permit = sem.acquire().await.unwrap();
                let body = leadgen_body(&[&id]);
                let sig = leadstream::ingest::signature::sign(APP_SECRET.as_bytes(), &body);
                client
                    .post(format!("{base}/webhook"))
                    .header("x-hub-signature-256", sig)
                    .body(body)
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for s in sends {
        assert_eq!(s.await.unwrap(), 200);
    }
    assert_eq!(
        wait_for_leads(&db, n as usize, Duration::from_secs(30)).await,
        n as usize
    );
    let (db_ids, _) = saved(&db).await;
    for (on, stream) in &mut streams {
        let got = stream.leads(n as usize, Duration::from_secs(10)).await;
        assert_exactly(&got, &db_ids, &format!("a stream on {on}"));
    }
}
