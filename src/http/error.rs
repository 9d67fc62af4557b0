//! One error type for the HTTP layer, mapped to a status and a JSON body in one place; and
//! the recovery that answers warp's own rejections (and a missing [`Auth`]) the same way.
//!
//! 5xx bodies are generic on purpose: the cause is logged once here, never sent to a client
//! (it may name a file path or a SQL statement).
//!
//! [`Auth`]: crate::auth::Auth

use std::convert::Infallible;

use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::Rejection;

use super::auth::Refused;
use super::origin::CrossOrigin;
use crate::auth::Refusal;

#[derive(Debug)]
pub enum AppError {
    /// 400: a query or body the caller can fix; the message says how.
    BadRequest(String),
    /// 401: no session and no valid bearer token.
    Unauthorized,
    /// 403: a webhook whose signature is missing, malformed or wrong; or a failed handshake.
    Forbidden(&'static str),
    /// 403: a state change a page on another origin made a browser send; the words say so.
    CrossOrigin(String),
    /// 404
    NotFound,
    /// 408: a request body that did not arrive in time.
    RequestTimeout,
    /// 413: a request body over the limit.
    PayloadTooLarge,
    /// 431: a request head over the limit.
    HeadTooLarge,
    /// 429: too many wrong tokens from one address lately; it may try again after this long
    /// (`Retry-After`).
    TooManyRequests(std::time::Duration),
    /// 503: a feature that needs configuration that is absent (e.g. sync without page ids),
    /// or Meta refused and the caller should look at /api/status.
    Unavailable(String),
    /// 500: a bug or a broken database; the text is logged, not sent.
    Internal(String),
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) | AppError::CrossOrigin(_) => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            AppError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn public_message(&self) -> String {
        match self {
            AppError::BadRequest(m) | AppError::Unavailable(m) | AppError::CrossOrigin(m) => {
                m.clone()
            }
            AppError::Unauthorized => {
                "a session or an Authorization: Bearer token is required".into()
            }
            AppError::Forbidden(why) => (*why).into(),
            AppError::NotFound => "not found".into(),
            AppError::RequestTimeout => "the request body did not arrive in time".into(),
            AppError::PayloadTooLarge => "body larger than 4 MiB".into(),
            AppError::HeadTooLarge => "request head too large".into(),
            AppError::TooManyRequests(wait) => format!(
                "too many wrong tokens from your address; wait {} s and try again",
                wait.as_secs_f64().ceil() as u64
            ),
            AppError::Internal(_) => "internal error; see the server log".into(),
        }
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::Internal(cause) => write!(f, "internal error: {cause}"),
            other => f.write_str(&other.public_message()),
        }
    }
}

impl std::error::Error for AppError {}

impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> Self {
        if e.is_unavailable() {
            log::warn!("request failed: {e}");
            return AppError::Unavailable(
                "the database is unreachable; leadstream reconnects by itself, try again shortly"
                    .into(),
            );
        }
        AppError::Internal(e.to_string())
    }
}

impl Reply for AppError {
    fn into_response(self) -> Response {
        if let AppError::Internal(cause) = &self {
            log::error!("request failed: {cause}");
        }
        let body = serde_json::json!({ "error": self.public_message() });
        let mut res =
            warp::reply::with_status(warp::reply::json(&body), self.status()).into_response();
        match self {
            AppError::Unauthorized => {
                res.headers_mut().insert(
                    warp::http::header::WWW_AUTHENTICATE,
                    warp::http::HeaderValue::from_static("Bearer"),
                );
            }
            AppError::TooManyRequests(wait) => {
                let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                res.headers_mut()
                    .insert(warp::http::header::RETRY_AFTER, secs.into());
            }
            _ => {}
        }
        res
    }
}

/// An error the connection loop answers itself, before any route sees the request (a
/// malformed head, a body too large or too slow): the same JSON and headers as a route's.
pub fn before_routes(e: AppError) -> Response {
    let mut res = e.into_response();
    super::headers::secure(&mut res);
    res
}

/// Turns a handler's result into a response; handlers return `Result<impl Reply, AppError>`.
pub fn respond<T: Reply>(result: Result<T, AppError>) -> Response {
    match result {
        Ok(r) => r.into_response(),
        Err(e) => e.into_response(),
    }
}

/// warp's own rejections (no route, wrong method, …) as JSON, with the security headers like
/// every other answer (a rejection passed on would get warp's bare text answer instead).
pub async fn handle_rejection(r: Rejection) -> Result<Response, Infallible> {
    // A private route without good credentials: the same answer a handler's error would give.
    if let Some(Refused(why)) = r.find::<Refused>() {
        return Ok(match why {
            Refusal::Unauthorized => AppError::Unauthorized,
            Refusal::Limited(wait) => AppError::TooManyRequests(*wait),
        }
        .into_response());
    }
    if let Some(CrossOrigin(why)) = r.find::<CrossOrigin>() {
        return Ok(AppError::CrossOrigin(why.clone()).into_response());
    }
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
