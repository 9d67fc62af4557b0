//! Forwarding's destinations: `/api/destinations` to list and add them, and per destination
//! its removal, a test, its deliveries and a retry of its dead ones. Every route is private.

use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Notify;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::auth::authenticated;
use super::error::{respond, AppError};
use super::with;
use crate::auth::{Admin, Auth, Gate};
use crate::forward::{destination, failing_words, test_body};
use crate::store::{Store, MAX_LISTED_DELIVERIES};

/// What these routes use.
pub struct DestinationsContext {
    pub store: Store,
    /// Whether SMTP is configured (an e-mail destination is refused without it).
    pub smtp_configured: bool,
    /// Wakes the forwarder for a test or a retry.
    pub wake: Arc<Notify>,
}

type Ctx = Arc<DestinationsContext>;

/// The largest destination a client may send.
const MAX_BODY: u64 = 16 * 1024;

pub fn routes(ctx: Ctx, gate: Gate) -> BoxedFilter<(Response,)> {
    list(ctx.clone(), gate.clone())
        .or(add(ctx.clone(), gate.clone()))
        .unify()
        .or(remove(ctx.clone(), gate.clone()))
        .unify()
        .or(test(ctx.clone(), gate.clone()))
        .unify()
        .or(deliveries(ctx.clone(), gate.clone()))
        .unify()
        .or(retry(ctx, gate))
        .unify()
        .boxed()
}

/// GET /api/destinations — every destination with its counts and, if failing, why in words.
fn list(ctx: Ctx, gate: Gate) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "destinations")
        .and(warp::get())
        .and(with(ctx))
        .and(authenticated(gate))
        .then(list_destinations)
        .map(respond)
}

async fn list_destinations(ctx: Ctx, _auth: Auth) -> Result<impl Reply, AppError> {
    let list = ctx.store.destinations().await?;
    let list: Vec<serde_json::Value> = list
        .iter()
        .map(|d| {
            let mut v = serde_json::to_value(d).expect("a destination serialises");
            v["description"] = d.target.describe().into();
            v["problem"] = failing_words(d).into();
            v
        })
        .collect();
    Ok(warp::reply::json(&json!({
        "destinations": list,
        "email_available": ctx.smtp_configured,
    })))
}

/// POST /api/destinations — 201 with the destination and, for a webhook, its signing secret:
/// the only time it is shown.
fn add(ctx: Ctx, gate: Gate) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "destinations")
        .and(warp::post())
        .and(with(ctx))
        .and(warp::body::content_length_limit(MAX_BODY))
        .and(warp::body::bytes())
        .and(authenticated(gate))
        .then(add_destination)
        .map(respond)
}

async fn add_destination(ctx: Ctx, body: Bytes, auth: Auth) -> Result<impl Reply, AppError> {
    admin(&auth)?;
    let new = destination::parse(&body, ctx.smtp_configured).map_err(AppError::BadRequest)?;
    let secret = new.secret.clone();
    let saved = ctx.store.add_destination(new).await?;
    log::info!(
        "forwarding: destination {} added ({})",
        saved.id,
        saved.target.describe()
    );
    let mut v = serde_json::to_value(&saved).expect("a destination serialises");
    v["description"] = saved.target.describe().into();
    if let Some(s) = secret {
        v["secret"] = s.expose().into();
    }
    Ok(warp::reply::with_status(
        warp::reply::json(&v),
        StatusCode::CREATED,
    ))
}

/// DELETE /api/destinations/{id} — 204; its pending deliveries go with it.
fn remove(ctx: Ctx, gate: Gate) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "destinations" / i64)
        .and(warp::delete())
        .and(with(ctx))
        .and(authenticated(gate))
        .then(remove_destination)
        .map(respond)
}

async fn remove_destination(id: i64, ctx: Ctx, auth: Auth) -> Result<impl Reply, AppError> {
    admin(&auth)?;
    if !ctx.store.remove_destination(id).await? {
        return Err(AppError::NotFound);
    }
    log::info!("forwarding: destination {id} removed");
    Ok(StatusCode::NO_CONTENT)
}

/// POST /api/destinations/{id}/test — 202 with the queued test delivery (a made-up lead,
/// tried once); its outcome shows in the deliveries.
fn test(ctx: Ctx, gate: Gate) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "destinations" / i64 / "test")
        .and(warp::post())
        .and(with(ctx))
        .and(authenticated(gate))
        .then(send_test)
        .map(respond)
}

async fn send_test(id: i64, ctx: Ctx, auth: Auth) -> Result<impl Reply, AppError> {
    admin(&auth)?;
    let queued = ctx
        .store
        .queue_test_delivery(id, test_body())
        .await?
        .ok_or(AppError::NotFound)?;
    ctx.wake.notify_one();
    Ok(warp::reply::with_status(
        warp::reply::json(&queued),
        StatusCode::ACCEPTED,
    ))
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

/// GET /api/destinations/{id}/deliveries?limit= — the newest first (at most 200; 50 by
/// default).
fn deliveries(
    ctx: Ctx,
    gate: Gate,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "destinations" / i64 / "deliveries")
        .and(warp::get())
        .and(with(ctx))
        .and(warp::query::<Limit>())
        .and(authenticated(gate))
        .then(list_deliveries)
        .map(respond)
}

async fn list_deliveries(id: i64, ctx: Ctx, q: Limit, _auth: Auth) -> Result<impl Reply, AppError> {
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_LISTED_DELIVERIES {
        return Err(AppError::BadRequest(format!(
            "limit must be 1 to {MAX_LISTED_DELIVERIES}"
        )));
    }
    let list = ctx
        .store
        .deliveries(id, limit)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(warp::reply::json(&json!({ "deliveries": list })))
}

/// POST /api/destinations/{id}/retry — puts its dead deliveries back in the queue, due now,
/// with a new retry period; `{"retried": n}`.
fn retry(ctx: Ctx, gate: Gate) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "destinations" / i64 / "retry")
        .and(warp::post())
        .and(with(ctx))
        .and(authenticated(gate))
        .then(retry_dead)
        .map(respond)
}

async fn retry_dead(id: i64, ctx: Ctx, auth: Auth) -> Result<impl Reply, AppError> {
    admin(&auth)?;
    let n = ctx.store.retry_dead_deliveries(id).await?;
    if n == 0 && !ctx.store.destinations().await?.iter().any(|d| d.id == id) {
        return Err(AppError::NotFound);
    }
    ctx.wake.notify_one();
    Ok(warp::reply::json(&json!({ "retried": n })))
}

/// Destinations are changed by admins only: members see them and their deliveries.
fn admin(auth: &Auth) -> Result<Admin, AppError> {
    auth.admin().ok_or(AppError::Forbidden(
        "only an admin may change where leads are forwarded",
    ))
}
