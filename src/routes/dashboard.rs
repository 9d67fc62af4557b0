//! `GET /` (dashboard or login page), `POST /login`, `POST /logout`, and the static assets,
//! embedded in the binary at build time (no files to deploy, no build step).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use warp::http::{header, HeaderMap, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Reply};

use super::{credentials, session_cookie, with_app};
use crate::auth::{self, secret_eq, Credentials};
use crate::error::AppError;
use crate::App;

const INDEX_HTML: &str = include_str!("../../web/index.html");
const LOGIN_HTML: &str = include_str!("../../web/login.html");
const APP_JS: &str = include_str!("../../web/app.js");
const STYLE_CSS: &str = include_str!("../../web/style.css");

pub fn routes(app: Arc<App>) -> warp::filters::BoxedFilter<(Response,)> {
    index(app.clone())
        .or(login(app.clone()))
        .unify()
        .or(logout(app))
        .unify()
        .or(assets())
        .unify()
        .boxed()
}

/// GET / — the dashboard with a session; else the login page. `?token=` logs in once and
/// redirects to `/`, which drops the token from the address bar (and the history).
fn index(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path::end()
        .and(warp::get())
        .and(with_app(app))
        .and(credentials())
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::addr::remote())
        .then(
            |app: Arc<App>,
             creds: Credentials,
             q: HashMap<String, String>,
             ip: Option<SocketAddr>| async move {
                if let Some(token) = q.get("token") {
                    return try_login(&app, token, ip).await;
                }
                if auth::is_authorised(&creds, &app.settings.dashboard_token, &app.sessions) {
                    html(StatusCode::OK, INDEX_HTML.to_string())
                } else {
                    login_page(StatusCode::OK, "")
                }
            },
        )
}

/// POST /login (form field `token`)
fn login(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("login")
        .and(warp::post())
        .and(with_app(app))
        .and(warp::body::content_length_limit(16 * 1024))
        .and(warp::body::form::<HashMap<String, String>>())
        .and(warp::addr::remote())
        .then(
            |app: Arc<App>, form: HashMap<String, String>, ip: Option<SocketAddr>| async move {
                try_login(
                    &app,
                    form.get("token").map(String::as_str).unwrap_or(""),
                    ip,
                )
                .await
            },
        )
}

async fn try_login(app: &App, token: &str, ip: Option<SocketAddr>) -> Response {
    let ip = ip.map(|a| a.ip());
    if !app.login_limiter.allowed(ip) {
        log::warn!(
            "login refused: too many failed attempts from {}",
            ip.map_or("?".into(), |i| i.to_string())
        );
        return login_page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts. Wait a minute and try again.",
        );
    }
    if !secret_eq(token.trim(), app.settings.dashboard_token.expose()) {
        app.login_limiter.failed(ip);
        log::warn!(
            "login failed from {}",
            ip.map_or("?".into(), |i| i.to_string())
        );
        return login_page(StatusCode::UNAUTHORIZED, "That token is not right.");
    }
    app.login_limiter.succeeded(ip);
    match app.sessions.create().await {
        Ok(session) => {
            log::info!("dashboard login");
            let secure = if app.settings.https() { "; Secure" } else { "" };
            let cookie = format!(
                "{}={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
                auth::SESSION_COOKIE,
                auth::SESSION_TTL.as_secs()
            );
            redirect_home(Some(cookie))
        }
        Err(e) => AppError::Internal(format!("could not create a session: {e}")).into_response(),
    }
}

/// POST /logout — ends the session here and in the database.
fn logout(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("logout")
        .and(warp::post())
        .and(with_app(app))
        .and(warp::header::headers_cloned())
        .then(|app: Arc<App>, headers: HeaderMap| async move {
            if let Some(s) = session_cookie(&headers) {
                if let Err(e) = app.sessions.end(&s).await {
                    return AppError::Internal(format!("could not end a session: {e}"))
                        .into_response();
                }
            }
            let clear = format!(
                "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
                auth::SESSION_COOKIE
            );
            redirect_home(Some(clear))
        })
}

/// GET /assets/app.js, /assets/style.css — public: they hold no lead data.
fn assets() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("assets" / String)
        .and(warp::get())
        .and_then(|name: String| async move {
            let (body, kind) = match name.as_str() {
                "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
                "style.css" => (STYLE_CSS, "text/css; charset=utf-8"),
                _ => return Err(warp::reject::not_found()),
            };
            let mut res = Response::new(body.into());
            res.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            // Revalidate every time: a new binary must never run with yesterday's script.
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            Ok(res)
        })
}

fn html(status: StatusCode, body: String) -> Response {
    let mut res = warp::reply::with_status(warp::reply::html(body), status).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn login_page(status: StatusCode, message: &str) -> Response {
    // The message is one of our own fixed sentences, never user input.
    html(status, LOGIN_HTML.replace("<!--LOGIN_ERROR-->", message))
}

fn redirect_home(cookie: Option<String>) -> Response {
    let mut res = warp::reply::with_status(warp::reply(), StatusCode::SEE_OTHER).into_response();
    res.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/"));
    if let Some(c) = cookie {
        if let Ok(v) = HeaderValue::from_str(&c) {
            res.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    res
}
