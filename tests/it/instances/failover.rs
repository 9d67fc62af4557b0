//! Losing a machine, losing the database for a moment: nothing acknowledged is lost, nothing
//! is saved twice, and every stream still gets every lead once, in order.

use std::collections::HashSet;
use std::time::Duration;

use super::*;

/// Sends a webhook per id to `base`, 16 at a time; the ids answered 200 come back on `acked`
/// as they are answered, and every status is returned at the end.
fn burst(
    client: &reqwest::Client,
    bases: &[String],
    ids: &[String],
    acked: tokio::sync::mpsc::UnboundedSender<String>,
) -> Vec<tokio::task::JoinHandle<(String, u16)>> {
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            let (client, base, id) = (client.clone(), bases[i % bases.len()].clone(), id.clone());
            let (sem, acked) = (sem.clone(), acked.clone());
            tokio::spawn(async move {
                let _permit = sem.acquire().await.unwrap();
                let body = leadgen_body(&[&id]);
                let sig = leadstream::ingest::signature::sign(APP_SECRET.as_bytes(), &body);
                let status = client
                    .post(format!("{base}/webhook"))
                    .header("x-hub-signature-256", sig)
                    .body(body)
                    .send()
                    .await
                    .map_or(0, |r| r.status().as_u16());
                if status == 200 {
                    let _ = acked.send(id.clone());
                }
                (id, status)
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_one_instance_mid_burst_loses_nothing_and_the_other_finishes_its_jobs() {
    let Some(db) = database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let n = 200u64;
    // A's Graph hangs: the jobs A claims are in flight when it dies. B's Graph answers.
    let (graph_a, ids) = graph_with_leads(1, n).await;
    graph_a.set_always(Some(Failure::Slow(Duration::from_secs(60))));
    let (graph_b, _) = graph_with_leads(1, n).await;
    let lease = [("LEADSTREAM_JOB_LEASE_MS", "3000")];
    let mut a = Instance::start(dir.path(), &db, &graph_a, &lease).await;
    let b = Instance::start(dir.path(), &db, &graph_b, &lease).await;
    let mut on_b = b.open_stream(None).await;

    let client = reqwest::Client::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let sends = burst(&client, std::slice::from_ref(&a.base), &ids, tx);
    let mut acked_early = 0;
    while rx.recv().await.is_some() {
        acked_early += 1;
        if acked_early >= 120 {
            break;
        }
    }
    // Wait until A holds claims (its Graph calls hang), then kill it.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while graph_a.calls().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "A never claimed a job"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.process.kill9();
    let mut acked = HashSet::new();
    for s in sends {
        let (id, status) = s.await.unwrap();
        if status == 200 {
            acked.insert(id);
        }
    }
    assert!(acked.len() >= 120, "only {} acknowledged", acked.len());
    let held_by_a: HashSet<String> = graph_a.calls().into_iter().collect();

    // B takes A's claims over when their lease ends, and saves every acknowledged lead once.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (db_ids, saved_ids) = loop {
        let (db_ids, saved_ids) = saved(&db).await;
        let saved_set: HashSet<String> = saved_ids.iter().cloned().collect();
        if acked.is_subset(&saved_set) || std::time::Instant::now() > deadline {
            break (db_ids, saved_ids);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let saved_set: HashSet<String> = saved_ids.iter().cloned().collect();
    assert_eq!(saved_set.len(), saved_ids.len(), "a lead was saved twice");
    let lost: Vec<_> = acked.difference(&saved_set).collect();
    assert!(lost.is_empty(), "acknowledged but not saved: {lost:?}");
    let b_calls: HashSet<String> = graph_b.calls().into_iter().collect();
    assert!(
        held_by_a.iter().all(|id| b_calls.contains(id)),
        "B did not finish the jobs A held: {:?}",
        held_by_a.difference(&b_calls).collect::<Vec<_>>()
    );
    let streamed = on_b.leads(db_ids.len(), Duration::from_secs(10)).await;
    assert_exactly(&streamed, &db_ids, "B's stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_mid_burst_loses_and_doubles_nothing_and_streams_stay_whole() {
    if pg::server_url().is_none() {
        eprintln!("skipped: several instances need PostgreSQL (LEADSTREAM_TEST_DATABASE_URL)");
        return;
    }
    // A server of this test's own: restarting the suite's would cut every other test off.
    let server = pg::PrivateServer::start();
    let db = server.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let n = 300u64;
    let (graph, ids) = graph_with_leads(1, n).await;
    let a = Instance::start(dir.path(), &db, &graph, &[]).await;
    let b = Instance::start(dir.path(), &db, &graph, &[]).await;
    let mut streams = vec![
        ("A", a.open_stream(None).await),
        ("B", b.open_stream(None).await),
    ];

    let client = reqwest::Client::new();
    let bases = [a.base.clone(), b.base.clone()];
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let sends = burst(&client, &bases, &ids, tx);
    let mut acked_early = 0;
    while rx.recv().await.is_some() {
        acked_early += 1;
        if acked_early >= 100 {
            break;
        }
    }
    server.restart();
    let mut acked = HashSet::new();
    let mut refused = Vec::new();
    for s in sends {
        let (id, status) = s.await.unwrap();
        match status {
            200 => {
                acked.insert(id);
            }
            500..=599 => refused.push(id),
            other => panic!("webhook {id}: {other}, neither 200 nor a 5xx Meta would retry"),
        }
    }
    // Meta sends what was refused again, until it is taken.
    pg::wait_until_up(&db, Duration::from_secs(10)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while let Some(id) = refused.pop() {
        let status = a.post_webhook(&client, &[&id]).await;
        if status == 200 {
            acked.insert(id);
        } else {
            assert!(
                std::time::Instant::now() < deadline,
                "still {status} for {id}"
            );
            refused.push(id);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(acked.len(), n as usize);
    assert_eq!(
        wait_for_leads(&db, n as usize, Duration::from_secs(30)).await,
        n as usize
    );
    let (db_ids, saved_ids) = saved(&db).await;
    let saved_set: HashSet<String> = saved_ids.iter().cloned().collect();
    assert_eq!(saved_set.len(), saved_ids.len(), "a lead was saved twice");
    assert_eq!(saved_set, acked);
    for (on, stream) in &mut streams {
        let got = stream.leads(db_ids.len(), Duration::from_secs(10)).await;
        assert_exactly(&got, &db_ids, &format!("the stream on {on}"));
    }
}
