//! `kill -9` of the real binary in the middle of a burst: after a restart, every saved lead
//! reaches every destination that wants it.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::helpers::process::{add_webhook_destination, get_json_at, meta_env, Process};
use crate::helpers::receiver::{Answer, Receiver};
use crate::helpers::*;
use leadstream::ingest::signature::sign;

/// The binary on the SQLite file `db`, or on the PostgreSQL database `pg` when the suite runs
/// on PostgreSQL.
async fn start(
    dir: &std::path::Path,
    graph_url: &str,
    db: &str,
    pg: Option<&str>,
) -> (Process, String) {
    let mut env = meta_env(graph_url);
    env.push(("LEADS_DB", db));
    if let Some(url) = pg {
        // The dead process's claims pass to the new one when their lease ends.
        env.push(("DATABASE_URL", url));
        env.push(("LEADSTREAM_JOB_LEASE_MS", "3000"));
    }
    let mut p = Process::start(dir, &env);
    let base = p.base_url().await;
    (p, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_burst_loses_no_delivery() {
    let graph = FakeGraph::start(PAGE_TOKEN, APP_SECRET).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("leads.db");
    let db = db.to_str().unwrap().to_string();
    let pg = crate::helpers::pg::fresh_database().await;
    let (mut p, base) = start(dir.path(), &graph.url(), &db, pg.as_deref()).await;
    let client = reqwest::Client::new();
    let a = Receiver::start().await;
    let b = Receiver::start().await;
    let mut secrets = Vec::new();
    for r in [&a, &b] {
        let v = add_webhook_destination(&client, &base, &r.url()).await;
        r.set_secret(v["secret"].as_str().unwrap());
        secrets.push(v["secret"].as_str().unwrap().to_string());
    }
    // One receiver slow, so deliveries are in flight or waiting when the process dies.
    a.answer(Answer::Slow(Duration::from_millis(300)));
    let n = 30u64;
    let ids: Vec<String> = (1..=n).map(lead_id).collect();
    for (i, id) in ids.iter().enumerate() {
        graph.add_lead(
            id,
            FORM_ID,
            1_764_338_531,
            &[("full_name", &format!("Crash {i}"))],
        );
    }
    for chunk in ids.chunks(5) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let body = leadgen_body(&refs);
        let r = client
            .post(format!("{base}/webhook"))
            .header("x-hub-signature-256", sign(APP_SECRET.as_bytes(), &body))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // Kill once some leads are saved and some delivered, but not all.
    let deadline = Instant::now() + Duration::from_secs(20);
    while b.accepted().is_empty() {
        assert!(
            Instant::now() < deadline,
            "nothing delivered before the kill"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    p.kill9();
    a.answer(Answer::Ok);
    let (_p2, base) = start(dir.path(), &graph.url(), &db, pg.as_deref()).await;
    // Every acknowledged lead is saved after the restart...
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = get_json_at(&client, &format!("{base}/api/leads/count")).await;
        if v["count"] == n {
            break;
        }
        assert!(Instant::now() < deadline, "leads after the restart: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...and at both receivers, each lead at least once, every signature good.
    for r in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = r.accepted();
            let leads: HashSet<String> = got
                .iter()
                .map(|x| x.body["data"]["leadgen_id"].as_str().unwrap().to_string())
                .collect();
            if leads.len() == n as usize {
                assert!(got.iter().all(|x| x.verified));
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} leads at {}",
                leads.len(),
                r.url()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
