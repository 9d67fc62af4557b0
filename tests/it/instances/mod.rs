//! Several instances on one PostgreSQL database, as real processes (the built binary), each
//! with the fake Graph: every promise of one instance holds across them. These run when the
//! suite runs on PostgreSQL (`make test`); on SQLite they say so and return.
//!
//! - `feed`: a lead saved by one instance reaches every stream on every instance, at once, in
//!   one id order, with replay anywhere;
//! - `failover`: an instance killed mid-burst, and PostgreSQL restarted mid-burst;
//! - `shared`: sessions, the sync and Meta's rate limit, one for all;
//! - `migrate`: a SQLite database moved over with `leadstream migrate-to-postgres`.

mod erasure;
mod failover;
mod feed;
mod migrate;
mod shared;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::pg;
use crate::helpers::process::{meta_env, Process};
use crate::helpers::*;

/// One leadstream process on `database_url`, asking `graph` for leads.
pub struct Instance {
    pub process: Process,
    pub base: String,
}

impl Instance {
    pub async fn start(
        dir: &Path,
        database_url: &str,
        graph: &FakeGraph,
        extra: &[(&str, &str)],
    ) -> Instance {
        let graph_url = graph.url();
        let mut env = meta_env(&graph_url);
        env.push(("DATABASE_URL", database_url));
        env.extend_from_slice(extra);
        let mut process = Process::start(dir, &env);
        let base = process.base_url().await;
        Instance { process, base }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// POSTs a webhook announcing `ids`, signed; the answer's status (0: no answer at all).
    pub async fn post_webhook(&self, client: &reqwest::Client, ids: &[&str]) -> u16 {
        let body = leadgen_body(ids);
        let sig = leadstream::ingest::signature::sign(APP_SECRET.as_bytes(), &body);
        client
            .post(self.url("/webhook"))
            .header("x-hub-signature-256", sig)
            .body(body)
            .send()
            .await
            .map_or(0, |r| r.status().as_u16())
    }

    /// `GET path` with the dashboard token, as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        crate::helpers::process::get_json_at(&reqwest::Client::new(), &self.url(path)).await
    }

    /// Opens `/api/stream` on a fresh connection, resuming after `last_event_id`.
    pub async fn open_stream(&self, last_event_id: Option<i64>) -> SseClient {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let mut req = client
            .get(self.url("/api/stream"))
            .bearer_auth(DASHBOARD_TOKEN);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200);
        SseClient::new(res)
    }
}

/// A fresh database on the suite's PostgreSQL server, or `None` (with a line saying so) when
/// the suite runs on SQLite.
pub async fn database() -> Option<String> {
    let url = pg::fresh_database().await;
    if url.is_none() {
        eprintln!("skipped: several instances need PostgreSQL (LEADSTREAM_TEST_DATABASE_URL)");
    }
    url
}

/// A fake Graph that knows leads `first..first + n` (see [`lead_id`]); their ids.
pub async fn graph_with_leads(first: u64, n: u64) -> (FakeGraph, Vec<String>) {
    let graph = FakeGraph::start(PAGE_TOKEN, APP_SECRET).await;
    let ids = add_leads(&graph, first, n);
    (graph, ids)
}

/// Adds leads `first..first + n` to `graph`; their ids.
pub fn add_leads(graph: &FakeGraph, first: u64, n: u64) -> Vec<String> {
    (first..first + n)
        .map(|i| {
            let id = lead_id(i);
            graph.add_lead(
                &id,
                FORM_ID,
                1_764_338_531,
                &[("full_name", &format!("Person {i}"))],
            );
            id
        })
        .collect()
}

/// The lead ids in the database, ascending, and their `leadgen_id`s.
pub async fn saved(database_url: &str) -> (Vec<i64>, Vec<String>) {
    let c = pg::connect(database_url).await;
    let rows = c
        .query("SELECT id, leadgen_id FROM leads ORDER BY id", &[])
        .await
        .unwrap();
    (
        rows.iter().map(|r| r.get(0)).collect(),
        rows.iter().map(|r| r.get(1)).collect(),
    )
}

/// Waits until the database holds `n` leads (up to `timeout`); the count seen last.
pub async fn wait_for_leads(database_url: &str, n: usize, timeout: Duration) -> usize {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let have = saved(database_url).await.0.len();
        if have >= n || std::time::Instant::now() > deadline {
            return have;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The ids a stream delivered are the database's ids, ascending, each once.
pub fn assert_exactly(streamed: &[Value], db_ids: &[i64], what: &str) {
    let ids: Vec<i64> = streamed.iter().map(|l| l["id"].as_i64().unwrap()).collect();
    let distinct: HashSet<i64> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), ids.len(), "{what}: a lead came twice");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{what}: out of order");
    assert_eq!(ids, db_ids, "{what}: not exactly the database's leads");
}
