//! `GET /api/stream`: Server-Sent Events of saved leads (SPEC "Live stream").

use std::collections::HashMap;
use std::sync::Arc;

use warp::http::{HeaderMap, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Reply};

use super::{private, require_auth};
use crate::auth::Credentials;
use crate::App;

/// The headers of a stream answer besides the security headers, for the routed answer here
/// and the one `server` writes itself.
pub const STREAM_HEADERS: [(&str, &str); 3] = [
    ("content-type", "text/event-stream"),
    ("cache-control", "no-store"),
    // nginx buffers proxied answers unless told not to; a buffered stream is not live.
    ("x-accel-buffering", "no"),
];

/// GET /api/stream (Last-Event-ID header or ?last_event_id=)
pub fn routes(app: Arc<App>) -> warp::filters::BoxedFilter<(Response,)> {
    warp::path!("api" / "stream")
        .and(warp::get())
        .and(private(app))
        .and(warp::header::headers_cloned())
        .and(warp::query::<HashMap<String, String>>())
        .then(|app: Arc<App>, creds: Credentials, headers: HeaderMap, q: HashMap<String, String>| async move {
            if let Err(e) = require_auth(&app, &creds) {
                return e.into_response();
            }
            open(app, resume_point(&headers, &q)).await
        })
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

async fn open(app: Arc<App>, resume: Option<i64>) -> Response {
    let stream = app.streams.open(resume).await.into_body();
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
