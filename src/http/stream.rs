//! `GET /api/stream`: the one place that decides who gets a stream, where it resumes, and
//! what its answer's head says, whatever the protocol.
//!
//! - HTTP/1.x, on any request of a connection (its first, or one after others, as a browser's
//!   EventSource and a proxy's pooled connections ask): [`for_socket`] takes an authorised
//!   request, and the connection goes to the socket writer ([`Streams::serve`]) with the head
//!   made here: chunked for HTTP/1.1, close-delimited for HTTP/1.0.
//! - HTTP/2 (a proxy speaking h2c): the route below, whose body hyper frames.
//! - Without valid credentials: the route below too, which answers the same 401 as every
//!   private route.
//!
//! Both take the resume point from [`resume_point`] and the headers from [`STREAM_HEADERS`]
//! and [`SECURITY_HEADERS`].
//!
//! [`STREAM_HEADERS`]: super::headers::STREAM_HEADERS
//! [`SECURITY_HEADERS`]: super::headers::SECURITY_HEADERS

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use warp::filters::BoxedFilter;
use warp::http::{request, HeaderMap, HeaderValue, Method, StatusCode, Version};
use warp::reply::Response;
use warp::{Filter, Reply};

use super::auth::{authenticated, credentials_of};
use super::headers::{http_date, SECURITY_HEADERS, STREAM_HEADERS};
use super::with;
use crate::auth::{Auth, Gate};
use crate::live::{Framing, SocketStream, Streams};

/// The stream's path.
const PATH: &str = "/api/stream";

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

fn query_of(parts: &request::Parts) -> HashMap<String, String> {
    let query = parts.uri.query().unwrap_or("");
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// An HTTP/1.x request from `peer` the socket writer serves: an authorised `GET /api/stream`.
/// `None`: anything else, which the routes answer (a refusal included: they count a wrong
/// token, once, and refuse a limited address). `reused`: the connection carried another
/// request first.
pub async fn for_socket(
    parts: &request::Parts,
    gate: &Gate,
    peer: SocketAddr,
    reused: bool,
) -> Option<SocketStream> {
    // The route takes the path with a trailing slash too (warp's `path!` ends that way), so
    // this must: otherwise that one stream would be the routes' own, framed and timed apart.
    let path = parts.uri.path();
    if parts.method != Method::GET || path.strip_suffix('/').unwrap_or(path) != PATH {
        return None;
    }
    let auth = gate
        .would_admit(&credentials_of(&parts.headers, Some(peer), gate.proxy()))
        .await?;
    let framing = match parts.version {
        Version::HTTP_10 => Framing::CloseDelimited,
        _ => Framing::Chunked,
    };
    Some(SocketStream {
        head: socket_head(framing),
        framing,
        resume: resume_point(&parts.headers, &query_of(parts)),
        session: auth.session_end().cloned(),
        reused,
    })
}

/// The head the socket writer sends: the routed answers' headers, and a body that is chunked
/// (HTTP/1.1) or runs until the close (HTTP/1.0). `Connection: close` either way: the
/// connection ends with the stream, and a proxy must not pool it.
fn socket_head(framing: Framing) -> Bytes {
    let mut head = String::with_capacity(700);
    head.push_str("HTTP/1.1 200 OK\r\n");
    if framing == Framing::Chunked {
        head.push_str("transfer-encoding: chunked\r\n");
    }
    head.push_str("connection: close\r\n");
    for (name, value) in STREAM_HEADERS.iter().chain(&SECURITY_HEADERS) {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str(&format!("date: {}\r\n\r\n", http_date()));
    Bytes::from(head)
}

async fn open(
    streams: Arc<Streams>,
    headers: HeaderMap,
    q: HashMap<String, String>,
    auth: Auth,
) -> Response {
    let session = auth.session_end().cloned();
    let stream = streams
        .open(resume_point(&headers, &q), session)
        .await
        .into_body();
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

    #[test]
    fn the_socket_head_says_how_the_body_ends_and_carries_every_header() {
        let chunked = String::from_utf8(socket_head(Framing::Chunked).to_vec()).unwrap();
        assert!(chunked.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(chunked.ends_with("\r\n\r\n"));
        assert!(chunked.contains("\r\ntransfer-encoding: chunked\r\n"));
        assert!(chunked.contains("\r\nconnection: close\r\n"));
        for (name, value) in STREAM_HEADERS.iter().chain(&SECURITY_HEADERS) {
            assert!(
                chunked.contains(&format!("\r\n{name}: {value}\r\n")),
                "{name}"
            );
        }
        let close = String::from_utf8(socket_head(Framing::CloseDelimited).to_vec()).unwrap();
        assert!(!close.contains("transfer-encoding"));
        assert!(close.contains("\r\nconnection: close\r\n"));
    }
}
