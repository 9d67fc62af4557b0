//! The HTTP surface. Each area has its file; each route is a small function with a
//! `/// METHOD /path` line, and handlers are plain `async fn`s returning
//! `Result<impl Reply, AppError>`.
//!
//! Auth is checked inside handlers, after path matching, so an unknown path is a 404 and a
//! known private path without credentials is a 401, never the other way round.

pub mod api;
pub mod dashboard;
pub mod reports;
pub mod stream;
pub mod webhook;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use warp::http::{HeaderMap, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::auth::{self, Credentials};
use crate::demo::DemoMeta;
use crate::error::AppError;
use crate::server::PeerAddr;
use crate::App;

/// Every page and answer carries these (issue "Lock it down").
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'self'";

/// On every answer, routed or not (`server` writes them on the streams it serves itself).
pub const SECURITY_HEADERS: [(&str, &str); 4] = [
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
];

/// All routes, with the security headers and JSON answers for warp's own rejections.
pub fn routes(app: Arc<App>, demo: Option<DemoMeta>) -> warp::filters::BoxedFilter<(Response,)> {
    let mut headers = HeaderMap::new();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    let demo_graph = match demo {
        Some(d) => api::demo_graph(d).boxed(),
        None => warp::any()
            .and(warp::path("demo-graph"))
            .and_then(|| async { Err::<Response, _>(warp::reject::not_found()) })
            .boxed(),
    };
    webhook::routes(app.clone())
        .or(stream::routes(app.clone()))
        .unify()
        .or(api::routes(app.clone()))
        .unify()
        .or(dashboard::routes(app))
        .unify()
        .or(demo_graph)
        .unify()
        .recover(handle_rejection)
        .unify()
        .with(warp::reply::with::headers(headers))
        // Answers hold personal data: no cache may keep them. Static assets set their own.
        .with(warp::reply::with::default_header(
            "cache-control",
            "no-store",
        ))
        .map(Reply::into_response)
        .boxed()
}

/// Passes the shared app to a handler.
pub fn with_app(app: Arc<App>) -> impl Filter<Extract = (Arc<App>,), Error = Infallible> + Clone {
    warp::any().map(move || app.clone())
}

/// The app and the request's credentials, for a private route (which then calls
/// [`authorised`] or [`require_auth`]).
pub fn private(
    app: Arc<App>,
) -> impl Filter<Extract = (Arc<App>, Credentials), Error = Infallible> + Clone {
    with_app(app).and(credentials())
}

/// The credentials a request carries; never rejects (a garbled header is just no credential).
pub fn credentials() -> impl Filter<Extract = (Credentials,), Error = Infallible> + Clone {
    warp::header::headers_cloned().map(|h: HeaderMap| credentials_of(&h))
}

/// The credentials in a request's headers.
pub fn credentials_of(h: &HeaderMap) -> Credentials {
    Credentials {
        authorization: h
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        session: session_cookie(h),
    }
}

/// The address of the connection's peer (set by `server` on every request).
pub fn peer_addr() -> impl Filter<Extract = (Option<SocketAddr>,), Error = Infallible> + Clone {
    warp::ext::optional::<PeerAddr>().map(|p: Option<PeerAddr>| p.map(|PeerAddr(addr)| addr))
}

/// The value of our session cookie, if the request has one.
pub fn session_cookie(h: &HeaderMap) -> Option<String> {
    h.get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == auth::SESSION_COOKIE)
        .map(|(_, v)| v.trim().to_string())
}

/// `Ok` when the request may read leads.
pub fn require_auth(app: &App, creds: &Credentials) -> Result<(), AppError> {
    if auth::is_authorised(creds, &app.settings.dashboard_token, &app.sessions) {
        Ok(())
    } else {
        Err(AppError::Unauthorized)
    }
}

/// Runs `handler` for a request that may read leads and maps its result to HTTP once;
/// answers 401 without running it otherwise. `handler` is a future, so nothing in it runs
/// before the check.
pub async fn authorised<T: Reply>(
    app: &App,
    creds: &Credentials,
    handler: impl std::future::Future<Output = Result<T, AppError>>,
) -> Response {
    crate::error::respond(match require_auth(app, creds) {
        Ok(()) => handler.await,
        Err(e) => Err(e),
    })
}

/// warp's own rejections (no route, wrong method, …) as JSON, with the security headers like
/// every other answer (a rejection passed on would get warp's bare text answer instead).
async fn handle_rejection(r: Rejection) -> Result<Response, Infallible> {
    let (status, msg) = if r.is_not_found() {
        (StatusCode::NOT_FOUND, "not found".to_string())
    } else if r.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed".to_string(),
        )
    } else if r.find::<warp::reject::InvalidQuery>().is_some() {
        (
            StatusCode::BAD_REQUEST,
            "malformed query string".to_string(),
        )
    } else if r.find::<warp::reject::PayloadTooLarge>().is_some() {
        (StatusCode::PAYLOAD_TOO_LARGE, "body too large".to_string())
    } else if let Some(e) = r.find::<warp::reject::InvalidHeader>() {
        (StatusCode::BAD_REQUEST, e.to_string())
    } else if let Some(e) = r.find::<warp::reject::MissingHeader>() {
        (StatusCode::BAD_REQUEST, e.to_string())
    } else if r.find::<warp::reject::UnsupportedMediaType>().is_some() {
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported content type".to_string(),
        )
    } else if r.find::<warp::reject::LengthRequired>().is_some() {
        (StatusCode::LENGTH_REQUIRED, "length required".to_string())
    } else if let Some(e) = r.find::<warp::body::BodyDeserializeError>() {
        (StatusCode::BAD_REQUEST, e.to_string())
    } else {
        // What is left is a body that broke off mid-way (warp's BodyReadError is private, so
        // it is told apart by name) or a bug.
        let what = format!("{r:?}");
        if what.contains("BodyReadError") {
            (
                StatusCode::BAD_REQUEST,
                "could not read the request body".to_string(),
            )
        } else {
            log::error!("unhandled rejection: {what}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; see the server log".to_string(),
            )
        }
    };
    let body = serde_json::json!({ "error": msg });
    Ok(warp::reply::with_status(warp::reply::json(&body), status).into_response())
}
