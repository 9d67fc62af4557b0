//! `GET /` (the dashboard, or the login page), `POST /login` and `POST /logout`. The pages are
//! embedded in the binary at build time, like the assets they load (`assets`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;

use warp::http::{header, HeaderMap, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Reply};

use super::auth::{client_addr, optional_auth, session_cookie};
use super::error::AppError;
use super::with;
use crate::auth::{Auth, Gate, Login, Refusal, SESSION_COOKIE};

pub(super) const INDEX_HTML: &str = include_str!("../../web/index.html");
const LOGIN_HTML: &str = include_str!("../../web/login.html");

/// What the dashboard's routes need.
pub struct DashboardContext {
    /// Checks sessions and the token (counting wrong ones); starts and ends sessions.
    pub gate: Gate,
    /// Mark the session cookie `Secure` (the public URL is https).
    pub secure_cookie: bool,
}

type Ctx = Arc<DashboardContext>;

pub fn routes(ctx: Ctx) -> warp::filters::BoxedFilter<(Response,)> {
    index(ctx.clone())
        .or(login(ctx.clone()))
        .unify()
        .or(logout(ctx))
        .unify()
        .boxed()
}

/// The dashboard's own URL parameters (web/view-state.js): a shared link to a filtered view
/// keeps them through signing in. Nothing else is carried, so a redirect can only ever go to
/// `/` with these, never elsewhere.
const VIEW_KEYS: [&str; 9] = [
    "q", "form_id", "page_id", "since", "until", "status", "owner", "sort", "order",
];
/// Longer view parameters are not carried (a search box does not need more).
const MAX_VIEW_VALUE: usize = 500;

/// The raw query string, or "" when there is none (warp's `raw` rejects a missing one).
fn raw_query() -> impl Filter<Extract = (String,), Error = Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// The view parameters of a query string, re-encoded: `q=ada&form_id=1` or "".
fn view_query(raw: &str) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        if VIEW_KEYS.contains(&k.as_ref()) && !v.is_empty() && v.len() <= MAX_VIEW_VALUE {
            out.append_pair(&k, &v);
        }
    }
    out.finish()
}

fn query_value(raw: &str, key: &str) -> Option<String> {
    url::form_urlencoded::parse(raw.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// GET / — the dashboard with a session; else the login page. `?token=` logs in once and
/// redirects to `/` (with the view parameters), which drops the token from the address bar
/// and the history.
fn index(ctx: Ctx) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path::end()
        .and(warp::get())
        .and(with(ctx.clone()))
        .and(optional_auth(ctx.gate.clone()))
        .and(raw_query())
        .and(client_addr(ctx.gate.clone()))
        .then(dashboard)
}

async fn dashboard(ctx: Ctx, auth: Option<Auth>, raw: String, ip: Option<IpAddr>) -> Response {
    let view = view_query(&raw);
    if let Some(token) = query_value(&raw, "token") {
        return try_login(&ctx, &token, ip, &view).await;
    }
    match auth {
        Some(_) => html(StatusCode::OK, INDEX_HTML.to_string()),
        None => login_page(StatusCode::OK, "", &view),
    }
}

/// POST /login (form field `token`; the query holds the view to return to)
fn login(ctx: Ctx) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("login")
        .and(warp::post())
        .and(with(ctx.clone()))
        .and(raw_query())
        .and(warp::body::content_length_limit(16 * 1024))
        .and(warp::body::form::<HashMap<String, String>>())
        .and(client_addr(ctx.gate.clone()))
        .then(log_in)
}

async fn log_in(
    ctx: Ctx,
    raw: String,
    form: HashMap<String, String>,
    ip: Option<IpAddr>,
) -> Response {
    let view = view_query(&raw);
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if !field("name").trim().is_empty() {
        let login = match ctx
            .gate
            .log_in_user(field("name"), field("password"), ip)
            .await
        {
            Ok(login) => login,
            Err(e) => {
                return AppError::Internal(format!("could not check a login: {e}")).into_response()
            }
        };
        return start_session(&ctx, login, &view, "That name and password do not match.").await;
    }
    try_login(&ctx, field("token"), ip, &view).await
}

/// Wrong tokens are counted and logged by the gate (one line per address and minute).
async fn try_login(
    ctx: &DashboardContext,
    token: &str,
    ip: Option<IpAddr>,
    view: &str,
) -> Response {
    start_session(
        ctx,
        ctx.gate.log_in(token, ip),
        view,
        "That token is not right.",
    )
    .await
}

/// A session for a login that succeeded, or the login page again saying why not.
async fn start_session(
    ctx: &DashboardContext,
    login: Result<Login, Refusal>,
    view: &str,
    wrong: &str,
) -> Response {
    let login = match login {
        Ok(login) => login,
        Err(Refusal::Limited(wait)) => {
            let mut page = login_page(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts. Wait a minute and try again.",
                view,
            );
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            page.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            return page;
        }
        Err(Refusal::Unauthorized) => return login_page(StatusCode::UNAUTHORIZED, wrong, view),
    };
    let who = crate::logging::escaped(login.principal().name().to_string());
    match ctx.gate.start_session(login).await {
        Ok(session) => {
            log::info!("dashboard login: {who}");
            let secure = if ctx.secure_cookie { "; Secure" } else { "" };
            let cookie = format!(
                "{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
                ctx.gate.sessions().ttl().as_secs()
            );
            redirect_home(view, Some(cookie))
        }
        Err(e) => AppError::Internal(format!("could not create a session: {e}")).into_response(),
    }
}

/// POST /logout — ends the session here and in the database.
fn logout(ctx: Ctx) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("logout")
        .and(warp::post())
        .and(with(ctx))
        .and(warp::header::headers_cloned())
        .then(log_out)
}

async fn log_out(ctx: Ctx, headers: HeaderMap) -> Response {
    if let Some(s) = session_cookie(&headers) {
        if let Err(e) = ctx.gate.sessions().end(&s).await {
            return AppError::Internal(format!("could not end a session: {e}")).into_response();
        }
    }
    let clear = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    redirect_home("", Some(clear))
}

fn html(status: StatusCode, body: String) -> Response {
    let mut res = warp::reply::with_status(warp::reply::html(body), status).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

const LOGIN_ACTION: &str = r#"action="/login""#;

/// The login page; `view` (from [`view_query`]) rides along on the form's action so signing in
/// lands on the view that was asked for.
fn login_page(status: StatusCode, message: &str, view: &str) -> Response {
    html(status, login_html(message, view))
}

fn login_html(message: &str, view: &str) -> String {
    // The message is one of our own fixed sentences, never user input. `view` is
    // form-urlencoded (only [A-Za-z0-9*-._+%&=]), so escaping `&` makes it a safe attribute value.
    let mut page = LOGIN_HTML.replace("<!--LOGIN_ERROR-->", message);
    if !view.is_empty() {
        let action = format!(r#"action="/login?{}""#, view.replace('&', "&amp;"));
        page = page.replace(LOGIN_ACTION, &action);
    }
    page
}

/// 303 to `/`, or to `/?<view>`.
fn redirect_home(view: &str, cookie: Option<String>) -> Response {
    let mut res = warp::reply::with_status(warp::reply(), StatusCode::SEE_OTHER).into_response();
    let location = if view.is_empty() {
        HeaderValue::from_static("/")
    } else {
        // Form-urlencoded text is always a valid header value; "/" is the fallback regardless.
        HeaderValue::from_str(&format!("/?{view}")).unwrap_or(HeaderValue::from_static("/"))
    };
    res.headers_mut().insert(header::LOCATION, location);
    if let Some(c) = cookie {
        if let Ok(v) = HeaderValue::from_str(&c) {
            res.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_dashboards_view_parameters_survive_signing_in() {
        assert_eq!(
            view_query("token=secret&q=ada+l%C3%B6&form_id=12&evil=%2F%2Fx.example&sort=name"),
            "q=ada+l%C3%B6&form_id=12&sort=name"
        );
        assert_eq!(view_query("token=secret"), "");
        assert_eq!(view_query(""), "");
        assert_eq!(view_query("q="), "");
        assert_eq!(
            view_query(&format!("q={}", "a".repeat(MAX_VIEW_VALUE + 1))),
            ""
        );
        // Anything that could end an attribute or a header is percent-encoded.
        assert_eq!(
            view_query("q=%22%3E%3Cscript%3E%0D%0ALocation:x"),
            "q=%22%3E%3Cscript%3E%0D%0ALocation%3Ax"
        );
    }

    #[test]
    fn the_login_form_carries_the_view_in_its_action() {
        assert!(
            LOGIN_HTML.contains(LOGIN_ACTION),
            "login.html's form posts to /login"
        );
        let page = login_html("That token is not right.", "q=ada&form_id=12");
        assert!(page.contains(r#"action="/login?q=ada&amp;form_id=12""#));
        assert!(page.contains(">That token is not right.</p>"));
        assert!(login_html("", "").contains(LOGIN_ACTION));
        let res = redirect_home("q=ada&form_id=12", None);
        assert_eq!(res.headers()[header::LOCATION], "/?q=ada&form_id=12");
        assert_eq!(redirect_home("", None).headers()[header::LOCATION], "/");
    }
}
