//! `GET /api/stream` when hyper serves it (a stream asked for on a connection that carried
//! another request first, or over HTTP/2); the accept loop serves the rest itself. Both take
//! the resume point from [`resume_point`] and the headers from [`STREAM_HEADERS`].
//!
//! [`STREAM_HEADERS`]: super::headers::STREAM_HEADERS

use std::collections::HashMap;
use std::sync::Arc;

use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Reply};

use super::auth::authenticated;
use super::headers::STREAM_HEADERS;
use super::with;
use crate::auth::{Auth, Gate};
use crate::live::Streams;

/// GET /api/stream (Last-Event-ID header or ?last_event_id=)
pub fn routes(streams: Arc<Streams>, gate: Gate) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "stream")
        .and(warp::get())
        .and(with(streams))
        .and(warp::header::headers_cloned())
        .and(warp::query::<HashMap<String, String>>())
        .and(authenticated(gate))
        .then(open)
        .boxed()
}

/// The id to resume after: the header wins over the query. Anything unparseable is treated
/// as absent, never as an error (EventSource would give up for good on a non-200).
pub fn resume_point(headers: &HeaderMap, q: &HashMap<String, String>) -> Option<i64> {
    let parse = |s: &str| s.trim().parse::<i64>().ok().filter(|n| *n >= 0);
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(parse)
        .or_else(|| q.get("last_event_id").and_then(|s| parse(s)))
}

async fn open(
    streams: Arc<Streams>,
    headers: HeaderMap,
    q: HashMap<String, String>,
    _auth: Auth,
) -> Response {
    let stream = streams.open(resume_point(&headers, &q)).await.into_body();
    // warp wants a Sync stream; SyncWrapper makes any Send stream Sync (it is only ever
    // polled through a &mut), without a task or a channel per client.
    let mut res = warp::reply::stream(sync_wrapper::SyncStream::new(stream)).into_response();
    *res.status_mut() = StatusCode::OK;
    for (name, value) in STREAM_HEADERS {
        res.headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_last_event_ids_are_ignored() {
        let mut h = HeaderMap::new();
        let q = HashMap::new();
        assert_eq!(resume_point(&h, &q), None);
        h.insert("last-event-id", HeaderValue::from_static("abc"));
        assert_eq!(resume_point(&h, &q), None);
        h.insert("last-event-id", HeaderValue::from_static("-4"));
        assert_eq!(resume_point(&h, &q), None);
        h.insert("last-event-id", HeaderValue::from_static(" 42 "));
        assert_eq!(resume_point(&h, &q), Some(42));
        let q = HashMap::from([("last_event_id".to_string(), "7".to_string())]);
        assert_eq!(resume_point(&HeaderMap::new(), &q), Some(7));
    }
}
