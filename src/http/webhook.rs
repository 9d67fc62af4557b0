//! `GET /webhook` (Meta's subscription handshake) and `POST /webhook` (deliveries).
//!
//! The POST follows one order, and each step is cheap before the next costs more: count the
//! bytes as they arrive (a chunked body too) → hand them to the [`Inbox`] (verify the HMAC on
//! the raw bytes → parse → persist in one transaction) → 200. Graph is never called here.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;
use warp::{Filter, Reply};

use super::error::{respond, AppError};
use super::with;
use crate::auth::secret_eq;
use crate::config::Secret;
use crate::ingest::{Inbox, Refusal};
use crate::metrics::{self, WebhookOutcome};
use crate::store::StoreError;

/// Largest webhook body read: 4 MiB (docs/api.md); Meta's batches of 1000 changes stay well
/// below.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// What the webhook routes need.
pub struct WebhookContext {
    pub inbox: Inbox,
    /// The token Meta echoes in the subscription handshake.
    pub verify_token: Secret,
}

type Ctx = Arc<WebhookContext>;

pub fn routes(ctx: Ctx) -> warp::filters::BoxedFilter<(Response,)> {
    handshake(ctx.clone()).or(ingest(ctx)).unify().boxed()
}

/// GET /webhook?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…
fn handshake(ctx: Ctx) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("webhook")
        .and(warp::get())
        .and(with(ctx))
        .and(warp::query::<HashMap<String, String>>())
        .map(verify_handshake)
        .map(respond)
}

fn verify_handshake(ctx: Ctx, q: HashMap<String, String>) -> Result<Response, AppError> {
    let mode_ok = q.get("hub.mode").map(String::as_str) == Some("subscribe");
    // The settings never give an empty token; should one ever arrive here, it opens nothing.
    let token_ok = !ctx.verify_token.expose().is_empty()
        && q.get("hub.verify_token")
            .is_some_and(|t| secret_eq(t, ctx.verify_token.expose()));
    match (mode_ok && token_ok, q.get("hub.challenge")) {
        (true, Some(challenge)) => {
            log::info!("webhook subscription verified by Meta");
            // Echoed byte for byte, as text: Meta compares it with what it sent.
            Ok(warp::reply::with_header(
                challenge.clone(),
                "content-type",
                "text/plain; charset=utf-8",
            )
            .into_response())
        }
        _ => {
            log::warn!("webhook handshake refused (wrong mode, token or no challenge)");
            Err(AppError::Forbidden("verification failed"))
        }
    }
}

/// POST /webhook
fn ingest(ctx: Ctx) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("webhook")
        .and(warp::post())
        .and(with(ctx))
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(receive)
        .map(respond)
}

async fn receive<S, B>(ctx: Ctx, headers: HeaderMap, body: S) -> Result<Response, AppError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let answer = take(ctx, headers, body).await;
    metrics::webhook(match &answer {
        Ok(_) => WebhookOutcome::Accepted,
        Err(AppError::Forbidden(_)) => WebhookOutcome::BadSignature,
        Err(AppError::PayloadTooLarge) => WebhookOutcome::TooLarge,
        Err(AppError::BadRequest(_)) => WebhookOutcome::BadRequest,
        Err(_) => WebhookOutcome::NotStored,
    });
    answer
}

/// Reads, checks and stores one delivery.
async fn take<S, B>(ctx: Ctx, headers: HeaderMap, body: S) -> Result<Response, AppError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    // Refuse a declared oversize body before reading a byte of it.
    let declared = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        log::warn!(
            "webhook refused: declared body of {} bytes",
            declared.unwrap_or_default()
        );
        return Err(AppError::PayloadTooLarge);
    }
    let raw = read_limited(body, MAX_BODY).await?;
    // A header that is not even text is malformed, not missing: the log must say which.
    let sig = headers
        .get("x-hub-signature-256")
        .map(|v| v.to_str().unwrap_or(""));
    ctx.inbox.receive(raw, sig).await.map_err(|e| match e {
        Refusal::Signature(e) => AppError::Forbidden(e.describe()),
        // Meta delivers again after a 5xx; 503 says the trouble is ours and passing.
        Refusal::Store(StoreError::Unavailable(words)) => AppError::Unavailable(words),
        Refusal::Store(e) => AppError::Internal(format!("could not store a webhook delivery: {e}")),
    })?;
    Ok(warp::reply::with_status("EVENT_RECEIVED", StatusCode::OK).into_response())
}

/// Collects the body, failing with 413 as soon as it passes `limit` bytes, whatever the
/// transfer encoding said (warp's content_length_limit would answer 411 to a chunked body).
async fn read_limited<S, B>(mut body: S, limit: usize) -> Result<Bytes, AppError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk =
            chunk.map_err(|e| AppError::BadRequest(format!("could not read the body: {e}")))?;
        if buf.len() + chunk.remaining() > limit {
            log::warn!("webhook refused: body over {limit} bytes");
            return Err(AppError::PayloadTooLarge);
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            buf.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(buf.freeze())
}
