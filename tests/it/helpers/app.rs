//! `TestApp`: the real server, in-process on a random port, with a temp SQLite file (or a
//! fresh PostgreSQL database, when `LEADSTREAM_TEST_DATABASE_URL` is set) and a fake Graph,
//! and named helpers for what tests do (post a webhook, list leads, open a stream).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use leadstream::config::{Limits, MetaSettings, Secret, Settings, Tuning};
use leadstream::ingest::signature::sign;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::bodies::leadgen_body;
use super::fake_graph::FakeGraph;
use super::sse::SseClient;

pub const APP_SECRET: &str = "test_app_secret";
pub const VERIFY_TOKEN: &str = "verify-me-please";
pub const PAGE_TOKEN: &str = "EAAG-test-page-token";
pub const DASHBOARD_TOKEN: &str = "dashboard-test-token-0123456789";
pub const PAGE_ID: &str = "111111111111111";
pub const FORM_ID: &str = "222222222222222";

/// Fast clocks for tests: retries after ~50 ms instead of ~1 s, no periodic sync.
pub fn test_tuning() -> Tuning {
    Tuning {
        retry_base: Duration::from_millis(50),
        retry_cap: Duration::from_millis(400),
        sync_every: None,
        sync_at_start: false,
        job_lease: Some(Duration::from_secs(5)),
        ..Tuning::default()
    }
}

/// How a stream's connection is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// A connection of its own, as curl opens it.
    Fresh,
    /// As a browser's EventSource (or a proxy's pool): on a keep-alive connection that
    /// carried an ordinary request first.
    Browser,
    /// HTTP/2 with prior knowledge, as a proxy speaking h2c upstream opens it.
    Http2,
}

/// The credentials a test request carries.
#[derive(Clone, Copy, Debug)]
pub enum Creds<'a> {
    Bearer,
    /// A whole `Cookie` header value.
    Cookie(&'a str),
}

impl Creds<'_> {
    fn apply(self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Creds::Bearer => req.bearer_auth(DASHBOARD_TOKEN),
            Creds::Cookie(c) => req.header("cookie", c),
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub graph: FakeGraph,
    pub client: reqwest::Client,
    /// Opens a fresh connection for every request ([`Via::Fresh`]).
    pub stream_client: reqwest::Client,
    pub db_path: PathBuf,
    /// The test's own PostgreSQL database, when the suite runs on PostgreSQL.
    pub database_url: Option<String>,
    pub settings: Settings,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), String>>>,
    // Kept so the directory lives as long as the app.
    pub dir: std::sync::Arc<tempfile::TempDir>,
}

impl TestApp {
    /// A server whose retries wait about `base`, doubling up to `cap`.
    pub async fn spawn_with_retries(base: Duration, cap: Duration) -> TestApp {
        Self::spawn_tuned(|s| {
            s.tuning.retry_base = base;
            s.tuning.retry_cap = cap;
        })
        .await
    }

    /// A server with a fresh database and a fresh fake Graph.
    pub async fn spawn() -> TestApp {
        Self::spawn_tuned(|_| {}).await
    }

    /// Like [`spawn`], with settings changed by `tune` first.
    pub async fn spawn_tuned(tune: impl FnOnce(&mut Settings)) -> TestApp {
        let graph = FakeGraph::start(PAGE_TOKEN, APP_SECRET).await;
        let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
        let db_path = dir.path().join("leads.db");
        let database_url = super::pg::fresh_database().await;
        let mut settings = Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            db: db_path.clone(),
            database_url: database_url.as_deref().map(Secret::new),
            database_listen_url: None,
            meta: Some(MetaSettings {
                app_secret: Secret::new(APP_SECRET),
                verify_token: Secret::new(VERIFY_TOKEN),
                page_access_token: Secret::new(PAGE_TOKEN),
                page_ids: vec![PAGE_ID.to_string()],
                graph_url: graph.url(),
            }),
            dashboard_token: Secret::new(DASHBOARD_TOKEN),
            metrics_token: None,
            token_generated: false,
            demo: false,
            demo_reason: None,
            public_url: None,
            trust_proxy_header: None,
            smtp: None,
            limits: Limits::default(),
            tuning: test_tuning(),
        };
        tune(&mut settings);
        Self::start(settings, graph, dir).await
    }

    async fn start(
        settings: Settings,
        graph: FakeGraph,
        dir: std::sync::Arc<tempfile::TempDir>,
    ) -> TestApp {
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(leadstream::run(settings.clone(), listener, async move {
            let _ = rx.await;
        }));
        let app = TestApp {
            base: format!("http://{addr}"),
            graph,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            stream_client: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
            db_path: settings.db.clone(),
            database_url: settings
                .database_url
                .as_ref()
                .map(|u| u.expose().to_string()),
            settings,
            shutdown: Some(tx),
            handle: Some(handle),
            dir,
        };
        app.wait_until_healthy().await;
        app
    }

    async fn wait_until_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(r) = self
                .client
                .get(format!("{}/healthz", self.base))
                .send()
                .await
            {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("server did not become healthy");
    }

    /// Stops the server (as SIGTERM would) and waits for it; returns how long that took.
    pub async fn stop(&mut self) -> Duration {
        let started = Instant::now();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
        started.elapsed()
    }

    /// Stops this server and starts another on the same database and fake Graph.
    pub async fn restart(self) -> TestApp {
        self.restart_with(|_| {}).await
    }

    /// Like [`restart`](TestApp::restart), with settings changed by `tune` first.
    pub async fn restart_with(mut self, tune: impl FnOnce(&mut Settings)) -> TestApp {
        self.stop().await;
        let mut settings = self.settings.clone();
        settings.listen = "127.0.0.1:0".parse().unwrap();
        tune(&mut settings);
        Self::start(settings, self.graph.clone(), self.dir.clone()).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Delivers a webhook announcing `ids` (one leadgen change each), signed as Meta signs
    /// it, and checks that it was taken (200).
    pub async fn deliver(&self, ids: &[&str]) {
        let r = self.post_webhook(&leadgen_body(ids)).await;
        assert_eq!(r.status(), 200, "a webhook announcing {ids:?}");
    }

    /// POSTs `body` to /webhook, signed like Meta signs it.
    pub async fn post_webhook(&self, body: &[u8]) -> reqwest::Response {
        let sig = sign(APP_SECRET.as_bytes(), body);
        self.post_webhook_raw(body.to_vec(), Some(&sig)).await
    }

    /// POSTs `body` to /webhook with the given signature header (or none).
    pub async fn post_webhook_raw(
        &self,
        body: Vec<u8>,
        signature: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url("/webhook"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(s) = signature {
            req = req.header("x-hub-signature-256", s);
        }
        req.send().await.unwrap()
    }

    /// GET with the bearer token.
    pub async fn get_authed(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(DASHBOARD_TOKEN)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_authed(&self, path: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(DASHBOARD_TOKEN)
            .send()
            .await
            .unwrap()
    }

    /// `PATCH /api/leads/{id}` with the bearer token (the token's `admin`) and `body`.
    pub async fn patch_lead(&self, id: i64, body: &Value) -> reqwest::Response {
        self.client
            .patch(self.url(&format!("/api/leads/{id}")))
            .bearer_auth(DASHBOARD_TOKEN)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// GET with the bearer token, as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        self.get_authed(path).await.json().await.unwrap()
    }

    /// POST with the bearer token, as JSON.
    pub async fn post_json(&self, path: &str) -> Value {
        self.post_authed(path).await.json().await.unwrap()
    }

    /// `GET /api/leads?{query}` as JSON.
    pub async fn leads(&self, query: &str) -> Value {
        let r = self.get_authed(&format!("/api/leads?{query}")).await;
        assert_eq!(r.status(), 200, "GET /api/leads?{query}");
        r.json().await.unwrap()
    }

    pub async fn lead_count(&self) -> i64 {
        self.get_json("/api/leads/count").await["count"]
            .as_i64()
            .unwrap()
    }

    pub async fn status(&self) -> Value {
        self.get_json("/api/status").await
    }

    /// Waits until at least `n` leads exist (up to `timeout`); returns the count seen last.
    pub async fn wait_for_count(&self, n: i64, timeout: Duration) -> i64 {
        let deadline = Instant::now() + timeout;
        loop {
            let c = self.lead_count().await;
            if c >= n || Instant::now() > deadline {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `cond` holds on `/api/status` (up to `timeout`).
    pub async fn wait_for_status(&self, timeout: Duration, cond: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.status().await;
            if cond(&s) || Instant::now() > deadline {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Opens `/api/stream` on a fresh connection, optionally resuming after `last_event_id`
    /// (sent as the header).
    pub async fn open_stream(&self, last_event_id: Option<i64>) -> SseClient {
        self.open_stream_via(Via::Fresh, last_event_id).await
    }

    /// Opens `/api/stream` the way `via` says, optionally resuming after `last_event_id`.
    pub async fn open_stream_via(&self, via: Via, last_event_id: Option<i64>) -> SseClient {
        let last = last_event_id.map(|id| id.to_string());
        let res = self.stream_via(via, "", last.as_deref()).await;
        assert_eq!(res.status(), 200);
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        SseClient::new(res)
    }

    /// `GET /api/stream{query}` with the token and, if given, a raw `Last-Event-ID` header,
    /// on a connection opened the way `via` says.
    pub async fn stream_via(
        &self,
        via: Via,
        query: &str,
        last_event_id: Option<&str>,
    ) -> reqwest::Response {
        self.stream_with(via, Creds::Bearer, query, last_event_id)
            .await
    }

    /// `GET /api/stream{query}` with `creds`, on a connection opened the way `via` says.
    pub async fn stream_with(
        &self,
        via: Via,
        creds: Creds<'_>,
        query: &str,
        last_event_id: Option<&str>,
    ) -> reqwest::Response {
        let client = match via {
            Via::Fresh => self.stream_client.clone(),
            Via::Http2 => reqwest::Client::builder()
                .http2_prior_knowledge()
                .build()
                .unwrap(),
            Via::Browser => {
                // A pool of one connection of its own: the stream goes on the connection the
                // count request left idle.
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .build()
                    .unwrap();
                let count = creds
                    .apply(client.get(self.url("/api/leads/count")))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(count.status(), 200);
                count.bytes().await.unwrap();
                client
            }
        };
        let mut req = creds.apply(client.get(self.url(&format!("/api/stream{query}"))));
        if let Some(v) = last_event_id {
            req = req.header("last-event-id", v);
        }
        let res = req.send().await.unwrap();
        if via == Via::Http2 {
            assert_eq!(res.version(), reqwest::Version::HTTP_2);
        }
        res
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
