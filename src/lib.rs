//! leadstream: signed Meta Lead Ads webhooks in, leads in SQLite exactly once, every saved lead
//! pushed live to open dashboards over Server-Sent Events.
//!
//! # A tour, in the order a lead travels
//!
//! - [`http::webhook`]: `POST /webhook` reads at most 4 MiB and hands the raw bytes to the
//!   [`ingest::Inbox`], which verifies the HMAC on them ([`ingest::signature`]), parses them
//!   ([`ingest::payload`]) and stores the delivery and one job per lead id in one transaction
//!   before the 200.
//! - [`ingest::Worker`] takes due jobs and asks Graph for each lead ([`meta::graph`]),
//!   retrying on the [`backoff`] schedule or setting a job aside as a dead letter.
//! - [`store::Store`] is the only writer (SQLite, or PostgreSQL for several instances): its
//!   writer commits in groups, and every committed lead then goes, in id order, to its sink,
//!   [`live::Hub`]: the single publish point (with PostgreSQL the store's feed reads them back
//!   by id, so leads saved by any instance reach it in one order).
//! - [`live`] is push: [`live::LeadStream`] is one `/api/stream` body (replay from the
//!   database after `Last-Event-ID` or lag, then live frames made once per lead), the
//!   [`live::writer`] writes an HTTP/1.x stream straight to its socket, and once a stream is
//!   caught up the [`live::fanout`] writes its leads, a few threads looping over many sockets.
//! - [`http::server`], the accept loop, admits connections within [`http::limits`]; our own
//!   HTTP/1.x loop hands every authorised stream request to the socket writer and every other
//!   request to the routes of [`http`] (HTTP/2 goes to hyper and the same routes).
//! - [`meta::sync`] catches up on leads webhooks missed, through the same save path;
//!   [`meta::status`] is what the process knows of Meta's health.
//! - A change to a lead (status, owner, a note: [`http::team`]) is one store operation that
//!   checks the lead's `version` and writes the change, its history and an `updated` event
//!   together. New leads, changes and erasures share one event sequence, whose ids are the
//!   stream's ids, so replay after `Last-Event-ID` interleaves them in order.
//! - [`forward`] sends each saved lead on to the destinations that want it (signed webhooks,
//!   e-mail): the store writes a delivery per destination in the lead's own transaction, and
//!   the [`forward::Forwarder`] sends them beside ingest, retrying on the [`backoff`] schedule.
//!
//! Beside the path: [`auth`] (the token and the users, sessions bound to them, the limit on guessing, and
//! the [`auth::Auth`] a private handler takes), [`http::origin`] (state changes from other
//! origins refused before any route), [`report`] (CSV and PDF), [`demo`] (a simulated Meta for
//! `make run` without a Meta app), [`config`], [`model`] (the values passed around),
//! [`logging`] (outside text escaped for the log) and [`shutdown`]. The store also says
//! whether the database can be written ([`store::Store::health_check`], for `/healthz`).
//!
//! For the people who run it: [`metrics`] (every Prometheus metric, registered once, and a
//! small function per thing counted; served by [`http::metrics`]) and [`erasure`] (a lead
//! erased by hand or by the retention period: one store transaction with its `erased` event,
//! which the open streams get like any event).
//!
//! [`run`] takes an already-bound listener and a shutdown future, so tests start the real server
//! in-process on port 0. [`backup`] is the `leadstream backup FILE` command.

pub mod auth;
pub mod backoff;
pub mod commands;
pub mod config;
pub mod demo;
pub mod erasure;
pub mod forward;
pub mod http;
pub mod ingest;
pub mod live;
pub mod logging;
pub mod meta;
pub mod metrics;
pub mod model;
pub mod report;
pub mod shutdown;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::auth::{Gate, GuessLimiter, ProxyTrust, Sessions};
use crate::config::{MetaSettings, Settings};
use crate::demo::DemoMeta;
use crate::erasure::Eraser;
use crate::forward::webhook::WebhookClient;
use crate::forward::Forwarder;
use crate::http::dashboard::DashboardContext;
use crate::http::destinations::DestinationsContext;
use crate::http::limits::BodyBudget;
use crate::http::metrics::MetricsContext;
use crate::http::ops::OpsContext;
use crate::http::origin::Origins;
use crate::http::server::ServerContext;
use crate::http::webhook::WebhookContext;
use crate::ingest::{Inbox, Worker};
use crate::live::{Hub, StreamParams, Streams};
use crate::meta::graph::GraphClient;
use crate::meta::status::Status;
use crate::meta::sync::Syncer;
use crate::model::LeadSource;
use crate::shutdown::Shutdown;
use crate::store::Store;

/// Ends streams and stops the server this long after shutdown at the latest (the promise is
/// an exit within 5 s; docs/architecture.md).
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
    let tuning = &settings.tuning;
    let hub = Hub::new(tuning.broadcast_capacity);
    let store = Store::connect(&settings.database(), hub.clone()).await?;
    let mailer = match &settings.smtp {
        Some((url, from)) => Some(forward::email::Mailer::new(
            url,
            from,
            settings.public_url.clone(),
            tuning.forward_timeout,
        )?),
        None => None,
    };
    // Several instances on one database share Meta's health; one process keeps it in memory.
    let status = if store.is_shared() {
        Status::shared(store.clone())
    } else {
        Arc::new(Status::default())
    };
    // A session that ends ends its streams: the hub tells them.
    let sessions = Sessions::load(store.clone(), tuning.session_ttl, Arc::new(hub.clone()))
        .await
        .map_err(|e| e.to_string())?;
    let gate = Gate::open(
        settings.dashboard_token.clone(),
        settings.metrics_token.clone(),
        sessions.clone(),
        &store,
        GuessLimiter::new(tuning.guess_limit, tuning.guess_window),
        ProxyTrust::header(settings.trust_proxy_header.as_deref()),
    )
    .await
    .map_err(|e| e.to_string())?;
    let (switch, stop) = Shutdown::new();
    let cap = http::server::connection_cap(&settings.limits);

    // In demo mode the simulated Meta makes up its secrets and serves Graph from this server.
    let (meta, demo) = match &settings.meta {
        Some(meta) => (meta.clone(), None),
        None => {
            let demo = DemoMeta::new(local_addr);
            (demo.meta_settings(), Some(demo))
        }
    };
    let MetaSettings {
        app_secret,
        verify_token,
        page_access_token,
        page_ids,
        graph_url,
    } = meta;
    let graph = GraphClient::new(
        &graph_url,
        page_access_token.expose(),
        app_secret.expose(),
        tuning.graph_timeout,
    );
    let syncer = Arc::new(Syncer::new(
        graph.clone(),
        store.clone(),
        status.clone(),
        page_ids,
        tuning,
        stop.clone(),
    ));
    let wake_worker = Arc::new(Notify::new());
    let params = StreamParams {
        keepalive: tuning.keepalive,
        max_replay: tuning.max_replay,
        write_timeout: settings.limits.write_timeout,
    };
    let eraser = Arc::new(Eraser {
        store: store.clone(),
    });
    // One fan-out writer per core: a fan-out then keeps every core busy.
    let wake_forwarder = Arc::new(Notify::new());
    let forwarder = Arc::new(Forwarder {
        store: store.clone(),
        webhooks: WebhookClient::new(tuning.forward_timeout),
        smtp_configured: mailer.is_some(),
        mailer,
        wake: wake_forwarder.clone(),
        tuning: tuning.clone(),
        hub: hub.clone(),
    });
    let streams = Arc::new(Streams::start(
        hub,
        store.clone(),
        params,
        std::thread::available_parallelism().map_or(2, |n| n.get()),
        stop.clone(),
    ));

    let worker = Arc::new(Worker {
        store: store.clone(),
        graph,
        status: status.clone(),
        wake: wake_worker.clone(),
        tuning: tuning.clone(),
        source: if demo.is_some() {
            LeadSource::Demo
        } else {
            LeadSource::Webhook
        },
    });
    let mut background = vec![
        tokio::spawn(worker.run(stop.clone())),
        tokio::spawn(forwarder.clone().run(stop.clone())),
        tokio::spawn(gate.clone().report_guesses(stop.clone())),
        tokio::spawn(sessions.sweep(stop.clone())),
    ];
    if let Some(every) = tuning.sync_every {
        background.push(tokio::spawn(meta::sync::run_periodic(
            syncer.clone(),
            tuning.sync_at_start,
            every,
            stop.clone(),
        )));
    }
    if let Some(period) = tuning.retention {
        background.push(tokio::spawn(erasure::run_retention(
            (*eraser).clone(),
            period,
            tuning.retention_every,
            stop.clone(),
        )));
    }
    if let Some(d) = demo.clone() {
        background.push(tokio::spawn(d.run(tuning.demo_every, stop.clone())));
    }

    let routes = http::routes(http::Areas {
        gate: gate.clone(),
        store: store.clone(),
        webhook: Arc::new(WebhookContext {
            inbox: Inbox::new(store.clone(), app_secret, wake_worker.clone()),
            verify_token,
        }),
        destinations: Arc::new(DestinationsContext {
            store: store.clone(),
            smtp_configured: forwarder.smtp_configured,
            wake: wake_forwarder,
        }),
        eraser,
        metrics: Arc::new(MetricsContext {
            store: store.clone(),
            streams: streams.clone(),
        }),
        ops: Arc::new(OpsContext {
            store,
            status,
            syncer,
            streams: streams.clone(),
            connections: cap.clone(),
            wake_worker,
            demo: settings.demo,
        }),
        streams: streams.clone(),
        dashboard: Arc::new(DashboardContext {
            gate: gate.clone(),
            secure_cookie: settings.https(),
        }),
        demo,
        origins: Arc::new(Origins::new(settings.public_url.as_deref())),
    });
    let server_context = Arc::new(ServerContext {
        gate,
        streams,
        routes,
        limits: settings.limits.clone(),
        budget: BodyBudget::new(settings.limits.body_budget),
    });
    let mut server = tokio::spawn(http::server::serve(
        listener,
        server_context,
        cap,
        stop.clone(),
    ));
    print_banner(&settings, local_addr);

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

/// `leadstream backup FILE`: copies the database at `db` while a server may be running; the
/// line to print when it is done.
pub async fn backup(db: std::path::PathBuf, args: config::BackupArgs) -> Result<String, String> {
    let file = args.file.clone();
    let report =
        tokio::task::spawn_blocking(move || store::backup_file(&db, &args.file, args.force))
            .await
            .map_err(|e| format!("the backup task failed: {e}"))??;
    Ok(format!(
        "backed up {} leads to {} ({} KiB), integrity_check ok",
        report.leads,
        file.display(),
        report.bytes.div_ceil(1024)
    ))
}

/// The one line a person needs: where the dashboard is (with the token when it was generated).
fn print_banner(settings: &Settings, addr: SocketAddr) {
    let base = config::base_url(addr);
    log::info!("listening on {addr}");
    if let Some(reason) = settings.demo_reason {
        log::info!(
            "demo mode ({reason}): a simulated Meta posts signed demo leads every few seconds"
        );
    }
    if settings.token_generated {
        println!(
            "leadstream is running: open {base}/?token={}",
            settings.dashboard_token.expose()
        );
    } else {
        println!("leadstream is running: open {base}/ and log in with DASHBOARD_TOKEN");
    }
}
