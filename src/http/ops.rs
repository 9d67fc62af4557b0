//! The pipeline's health and the levers on it: `/healthz`, `/api/status`, a sync with Meta on
//! demand, and the dead letters.

use std::sync::Arc;

use serde_json::json;
use tokio::sync::Notify;
use warp::filters::BoxedFilter;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::auth::authenticated;
use super::error::{respond, AppError};
use super::limits::ConnectionCap;
use super::with;
use crate::auth::{Auth, Gate};
use crate::live::Streams;
use crate::meta::graph::ErrorClass;
use crate::meta::status::Status;
use crate::meta::sync::{SyncError, Syncer};
use crate::model::format_seconds;
use crate::store::Store;

/// What these routes read and act on.
pub struct OpsContext {
    pub store: Store,
    /// Meta's health as this process knows it.
    pub status: Arc<Status>,
    pub syncer: Arc<Syncer>,
    /// For the count of open streams.
    pub streams: Arc<Streams>,
    /// For the count of open connections.
    pub connections: Arc<ConnectionCap>,
    /// Wakes the worker when dead letters are put back in the queue.
    pub wake_worker: Arc<Notify>,
    pub demo: bool,
}

type Ctx = Arc<OpsContext>;

pub fn routes(ctx: Ctx, gate: Gate) -> BoxedFilter<(Response,)> {
    healthz(ctx.clone())
        .or(status(ctx.clone(), gate.clone()))
        .unify()
        .or(sync(ctx.clone(), gate.clone()))
        .unify()
        .or(dead_letters(ctx.clone(), gate.clone()))
        .unify()
        .or(retry_dead_letters(ctx, gate))
        .unify()
        .boxed()
}

/// GET /healthz — public; `200 {"status":"ok"}` while the database can be written, else
/// `503 {"status":"unavailable","reason":"…"}`. Bounded: the store's check answers within
/// about 2 s at worst, and reuses its verdict for a second.
fn healthz(ctx: Ctx) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("healthz")
        .and(warp::get())
        .and(with(ctx))
        .then(health)
}

async fn health(ctx: Ctx) -> Response {
    match ctx.store.health_check().await {
        Ok(()) => warp::reply::json(&json!({"status": "ok"})).into_response(),
        Err(reason) => warp::reply::with_status(
            warp::reply::json(&json!({"status": "unavailable", "reason": reason})),
            StatusCode::SERVICE_UNAVAILABLE,
        )
        .into_response(),
    }
}

/// GET /api/status — health for humans.
fn status(ctx: Ctx, gate: Gate) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "status")
        .and(warp::get())
        .and(with(ctx))
        .and(authenticated(gate))
        .then(pipeline_status)
        .map(respond)
}

async fn pipeline_status(ctx: Ctx, _auth: Auth) -> Result<impl Reply, AppError> {
    // The database's own trouble first: it is the one that loses leads.
    let mut problems: Vec<String> = ctx.store.health_check().await.err().into_iter().collect();
    // A database that cannot be read is one more thing to say, not a reason to say nothing.
    let overview = match ctx.store.overview().await {
        Ok(o) => Some(o),
        Err(e) => {
            log::error!("status: could not read the database: {e}");
            problems.push(format!("the database cannot be read ({e})"));
            None
        }
    };
    let last_webhook_at = overview
        .as_ref()
        .and_then(|o| o.last_webhook_ms)
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(format_seconds);
    problems.extend(ctx.status.problems());
    // Forwarding that fails, destination by destination, in words.
    match ctx.store.destinations().await {
        Ok(list) => problems.extend(list.iter().filter_map(crate::forward::failing_words)),
        Err(e) => log::error!("status: could not read the destinations: {e}"),
    }
    if ctx.syncer.page_ids.is_empty() {
        problems.push(
            "sync with Meta is off, so leads that webhooks miss are never caught up: \
             set META_PAGE_ID to your page id(s), comma-separated, and restart leadstream"
                .into(),
        );
    }
    let paused = ctx.status.graph_paused_for();
    let overview = overview.as_ref();
    // Streams the socket writer serves (every HTTP/1.x one), and of those the ones on a
    // connection that carried another request first, as a browser's EventSource does.
    let written = ctx.streams.written_counts();
    Ok(warp::reply::json(&json!({
        "last_webhook_at": last_webhook_at,
        "last_sync": overview.and_then(|o| o.last_sync.clone()),
        "jobs_waiting": overview.map(|o| o.jobs_waiting),
        "dead_letters": overview.map(|o| o.dead_letters),
        "leads": overview.map(|o| o.leads),
        "problems": problems,
        "graph_paused_seconds": paused.as_secs_f64().ceil() as u64,
        "sync_running": ctx.syncer.is_running(),
        "connections": {
            "open": ctx.connections.open(),
            "max": ctx.connections.max(),
        },
        "stream_clients": ctx.streams.open_count(),
        "streams_written": {
            "open": written.open,
            "on_reused_connections": written.on_reused_connections,
        },
        "demo": ctx.demo,
        "version": env!("CARGO_PKG_VERSION"),
    })))
}

/// POST /api/leads/sync — pull from Meta now; joins a sync already running. Answers
/// `{"forms","fetched","new"}` when it is done, or `{"error", "partial"?}` with 429 (Meta's rate
/// limit; `Retry-After` says when the sync resumes by itself), 502 (Meta refused: the words say
/// what to do) or 503 (no page configured, or shutting down).
fn sync(ctx: Ctx, gate: Gate) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "leads" / "sync")
        .and(warp::post())
        .and(with(ctx))
        .and(authenticated(gate))
        .then(sync_now)
        .map(respond)
}

async fn sync_now(ctx: Ctx, _auth: Auth) -> Result<Response, AppError> {
    let e = match ctx.syncer.sync().await {
        Ok(report) => return Ok(warp::reply::json(&report).into_response()),
        Err(e) => e,
    };
    let status = match &e {
        SyncError::NotConfigured | SyncError::Interrupted => {
            return Err(AppError::Unavailable(e.words()))
        }
        SyncError::Store(cause) => return Err(AppError::Internal(cause.clone())),
        _ if e.class() == Some(ErrorClass::RateLimited) => StatusCode::TOO_MANY_REQUESTS,
        // Meta's refusal is not our failure: 502 with words a person can use.
        _ => StatusCode::BAD_GATEWAY,
    };
    let mut body = json!({ "error": e.words() });
    if let SyncError::Graph { partial, .. } = &e {
        body["partial"] = json!(partial);
    }
    let mut res = warp::reply::with_status(warp::reply::json(&body), status).into_response();
    if let Some(wait) = e.retry_in() {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    Ok(res)
}

/// GET /api/dead-letters — jobs set aside, newest first, with Meta's message.
fn dead_letters(
    ctx: Ctx,
    gate: Gate,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "dead-letters")
        .and(warp::get())
        .and(with(ctx))
        .and(authenticated(gate))
        .then(list_dead_letters)
        .map(respond)
}

async fn list_dead_letters(ctx: Ctx, _auth: Auth) -> Result<impl Reply, AppError> {
    Ok(warp::reply::json(
        &json!({ "dead_letters": ctx.store.dead_letters(500).await? }),
    ))
}

/// POST /api/dead-letters/retry — puts every dead letter back in the queue.
fn retry_dead_letters(
    ctx: Ctx,
    gate: Gate,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "dead-letters" / "retry")
        .and(warp::post())
        .and(with(ctx))
        .and(authenticated(gate))
        .then(retry_all)
        .map(respond)
}

async fn retry_all(ctx: Ctx, _auth: Auth) -> Result<impl Reply, AppError> {
    let n = ctx.store.retry_dead_letters().await?;
    log::info!("{n} dead letters put back in the queue by hand");
    ctx.wake_worker.notify_one();
    Ok(warp::reply::json(&json!({ "retried": n })))
}
