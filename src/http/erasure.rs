//! `DELETE /api/leads/{id}`: erases one lead everywhere leadstream keeps it.

use std::sync::Arc;

use serde_json::json;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::auth::authenticated;
use super::error::{respond, AppError};
use super::with;
use crate::auth::{Auth, Gate};
use crate::erasure::Eraser;

/// DELETE /api/leads/{id} — `{"erased": id}`, or 404 when there is no such lead (any more).
pub fn routes(eraser: Arc<Eraser>, gate: Gate) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "leads" / i64)
        .and(warp::delete())
        .and(with(eraser))
        .and(authenticated(gate))
        .then(erase)
        .map(respond)
        .boxed()
}

async fn erase(id: i64, eraser: Arc<Eraser>, auth: Auth) -> Result<Response, AppError> {
    let erased = eraser.erase(vec![id]).await?;
    if erased.is_empty() {
        return Err(AppError::NotFound);
    }
    // The id and who asked: nothing the lead held.
    log::info!("lead #{id} erased by {}", auth.principal().name());
    Ok(warp::reply::json(&json!({ "erased": id })).into_response())
}
