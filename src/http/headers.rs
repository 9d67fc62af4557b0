//! Headers every answer carries, and those of a stream answer: one list each, for the routed
//! answers and for the stream head the socket writer sends.

use warp::http::{header, HeaderValue};
use warp::reply::Response;

/// The Content-Security-Policy of every page and answer: nothing but our own files.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'self'";

/// On every answer, routed or not.
pub const SECURITY_HEADERS: [(&str, &str); 4] = [
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
];

/// The headers of a stream answer besides the security headers.
pub const STREAM_HEADERS: [(&str, &str); 3] = [
    ("content-type", "text/event-stream"),
    ("cache-control", "no-store"),
    // nginx buffers proxied answers unless told not to; a buffered stream is not live.
    ("x-accel-buffering", "no"),
];

/// Puts the security headers on `res`, and `Cache-Control: no-store` unless it has its own
/// (answers hold personal data: no cache may keep them; static assets set theirs). Every
/// answer gets this: the routes' and the few the connection loop gives itself.
pub fn secure(res: &mut Response) {
    let headers = res.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
}

/// Now, as an HTTP `Date` value.
pub fn http_date() -> String {
    chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}
