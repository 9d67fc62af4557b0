//! `kill -9` in the middle of a burst: nothing acknowledged is lost, nothing is saved twice, the
//! file stays sound, and the logs name ids, never secrets or what people typed.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use crate::helpers::db::integrity;
use crate::helpers::pg::skip_on_postgres;
use crate::helpers::process::{get_json_at, meta_env, Process};
use crate::helpers::*;

/// The real binary on `db_path`, asking the fake Graph at `graph_url`; the process and its
/// base URL.
async fn start(db_path: &Path, graph_url: &str, dir: &Path) -> (Process, String) {
    let mut env = meta_env(graph_url);
    env.push(("LEADS_DB", db_path.to_str().unwrap()));
    let mut process = Process::start(dir, &env);
    let base = process.base_url().await;
    (process, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_right_after_a_burst_of_acknowledged_webhooks_while_graph_fails_loses_none_of_them()
{
    // The same on PostgreSQL, with a second instance taking over: tests/it/instances/.
    if skip_on_postgres("this test is about the SQLite file surviving a kill") {
        return;
    }
    let graph = FakeGraph::start(PAGE_TOKEN, APP_SECRET).await;
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
    let (mut first, first_base) = start(&db_path, &graph.url(), dir.path()).await;

    // The burst: every webhook at once; the kill comes while part of them is still in flight.
    let client = reqwest::Client::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let tasks: Vec<_> = ids
        .iter()
        .cloned()
        .map(|id| {
            let (client, url, tx) = (client.clone(), format!("{first_base}/webhook"), tx.clone());
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
    let (mut second, second_base) = start(&db_path, &graph.url(), dir.path()).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    let status = loop {
        let s = get_json_at(&client, &format!("{second_base}/api/status")).await;
        if s["jobs_waiting"] == 0 || std::time::Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status["jobs_waiting"], 0, "{status}");
    assert_eq!(status["dead_letters"], 0);
    let listed = get_json_at(&client, &format!("{second_base}/api/leads?limit=1000")).await;
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
