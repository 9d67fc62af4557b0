//! leadstream: signed Meta Lead Ads webhooks in, leads in SQLite exactly once, every saved lead
//! pushed live to open dashboards over Server-Sent Events.
//!
//! # A tour, in the order a lead travels
//!
//! - [`routes::webhook`]: `POST /webhook` reads at most 4 MiB, verifies the HMAC on the raw
//!   bytes ([`meta::signature`]), parses ([`meta::webhook`]) and stores the delivery and one job
//!   per lead id in one transaction ([`inbox::store_delivery`]) before it answers 200.
//! - [`inbox::Worker`] claims due jobs and asks Graph for each lead ([`meta::graph`]), retrying
//!   with backoff or setting a job aside as a dead letter.
//! - [`store::Store`] is the only writer: its writer thread commits in groups and then publishes
//!   every inserted lead on [`live::Hub`] — the single publish point.
//! - [`live::LeadStream`] is one `/api/stream` body: replay from the database after
//!   `Last-Event-ID` or lag, then live frames serialised once per lead. [`server`], the accept
//!   loop, writes it straight to the socket (no hyper buffers held per dashboard) and hands
//!   every other request to hyper and the warp routes. Once a stream is caught up,
//!   [`fanout`] writes its leads: a few threads looping over many sockets.
//! - [`meta::sync`] catches up on leads webhooks missed, through the same save path.
//! - [`routes`] holds the HTTP surface; [`auth`] the token, sessions and login limit;
//!   [`report`] CSV and PDF; [`demo`] a simulated Meta for `make run` without a Meta app.
//!
//! [`run`] takes an already-bound listener and a shutdown future, so tests start the real server
//! in-process on port 0.

pub mod auth;
pub mod backoff;
pub mod config;
pub mod demo;
pub mod error;
pub mod ingest;
pub mod live;
pub mod meta;
pub mod model;
pub mod report;
pub mod routes;
pub mod server;
pub mod shutdown;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::config::{Secret, Settings};
use crate::ingest::{Inbox, Worker};
use crate::live::{Hub, StreamParams, Streams};
use crate::meta::graph::GraphClient;
use crate::meta::status::Status;
use crate::meta::sync::Syncer;
use crate::model::LeadSource;
use crate::shutdown::Shutdown;
use crate::store::Store;

/// Everything a request handler may need, shared behind an `Arc`.
pub struct App {
    pub settings: Settings,
    pub store: Store,
    /// Opens `/api/stream` bodies; caught-up ones are written by its fan-out.
    pub streams: Streams,
    pub status: Arc<Status>,
    pub sessions: auth::Sessions,
    pub login_limiter: auth::LoginLimiter,
    /// Takes signed webhook deliveries.
    pub inbox: Inbox,
    pub verify_token: Secret,
    pub syncer: Arc<Syncer>,
    /// Wakes the worker when a delivery added jobs.
    pub wake_worker: Arc<Notify>,
    /// Open streams end when it starts.
    pub shutdown: Shutdown,
    /// The address the server is bound to.
    pub local_addr: SocketAddr,
}

/// Ends streams and stops the server this long after shutdown at the latest (SPEC: 5 s).
const SHUTDOWN_GRACE: Duration = Duration::from_millis(4500);

/// Runs leadstream on `listener` until `shutdown` resolves.
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let local_addr = listener
        .local_addr()
        .map_err(|e| format!("listener has no address: {e}"))?;
    let hub = Hub::new(settings.tuning.broadcast_capacity);
    let store = Store::open(&settings.db, hub.clone())?;
    let status = Arc::new(Status::default());
    let sessions = auth::Sessions::load(store.clone())
        .await
        .map_err(|e| e.to_string())?;
    let (switch, stop) = Shutdown::new();

    // In demo mode the simulated Meta makes up its secrets and serves Graph from this server.
    let demo_meta = settings
        .meta
        .is_none()
        .then(|| demo::DemoMeta::new(local_addr));
    let (app_secret, verify_token, page_token, graph_url, page_ids) =
        match (&settings.meta, &demo_meta) {
            (Some(m), _) => (
                m.app_secret.clone(),
                m.verify_token.clone(),
                m.page_access_token.clone(),
                m.graph_url.clone(),
                m.page_ids.clone(),
            ),
            (None, Some(d)) => (
                d.app_secret.clone(),
                d.verify_token.clone(),
                d.page_token.clone(),
                d.graph_url.clone(),
                d.page_ids.clone(),
            ),
            (None, None) => unreachable!("demo_meta is set whenever meta is not"),
        };
    let graph = GraphClient::new(
        &graph_url,
        page_token.expose(),
        app_secret.expose(),
        settings.tuning.graph_timeout,
    );
    let syncer = Arc::new(Syncer::new(
        graph.clone(),
        store.clone(),
        status.clone(),
        page_ids,
        &settings.tuning,
        stop.clone(),
    ));
    let wake_worker = Arc::new(Notify::new());
    let params = StreamParams {
        keepalive: settings.tuning.keepalive,
        max_replay: settings.tuning.max_replay,
    };
    // One fan-out writer per core: a fan-out then keeps every core busy.
    let streams = Streams::start(
        hub,
        store.clone(),
        params,
        std::thread::available_parallelism().map_or(2, |n| n.get()),
        stop.clone(),
    );
    let app = Arc::new(App {
        store: store.clone(),
        streams,
        status: status.clone(),
        sessions,
        login_limiter: auth::LoginLimiter::default(),
        inbox: Inbox::new(store.clone(), app_secret.clone(), wake_worker.clone()),
        verify_token,
        syncer: syncer.clone(),
        wake_worker: wake_worker.clone(),
        shutdown: stop.clone(),
        local_addr,
        settings,
    });

    let worker = Arc::new(Worker {
        store: store.clone(),
        graph,
        status,
        wake: wake_worker,
        tuning: app.settings.tuning.clone(),
        source: if demo_meta.is_some() {
            LeadSource::Demo
        } else {
            LeadSource::Webhook
        },
    });
    let mut background = vec![tokio::spawn(worker.run(stop.clone()))];
    if let Some(every) = app.settings.tuning.sync_every {
        background.push(tokio::spawn(meta::sync::run_periodic(
            syncer,
            app.settings.tuning.sync_at_start,
            every,
            stop.clone(),
        )));
    }
    if let Some(d) = demo_meta.clone() {
        background.push(tokio::spawn(
            d.run(app.settings.tuning.demo_every, stop.clone()),
        ));
    }

    let mut server = tokio::spawn(server::serve(
        listener,
        app.clone(),
        routes::routes(app.clone(), demo_meta),
        stop.clone(),
    ));
    print_banner(&app);

    tokio::select! {
        _ = shutdown => {}
        _ = &mut server => return Err("the HTTP server stopped unexpectedly".into()),
    }
    log::info!("shutting down: ending streams, finishing writes");
    switch.start();
    if tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
        .await
        .is_err()
    {
        log::warn!("connections still open after {SHUTDOWN_GRACE:?}; closing them");
        server.abort();
    }
    for task in background {
        let _ = tokio::time::timeout(Duration::from_millis(300), task).await;
    }
    Ok(())
}

/// The one line a person needs: where the dashboard is (with the token when it was generated).
fn print_banner(app: &App) {
    let addr = app.local_addr;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let base = format!("http://{host}:{}", addr.port());
    log::info!("listening on {addr}");
    if let Some(reason) = app.settings.demo_reason {
        log::info!(
            "demo mode ({reason}): a simulated Meta posts signed demo leads every few seconds"
        );
    }
    if app.settings.token_generated {
        println!(
            "leadstream is running: open {base}/?token={}",
            app.settings.dashboard_token.expose()
        );
    } else {
        println!("leadstream is running: open {base}/ and log in with DASHBOARD_TOKEN");
    }
}
