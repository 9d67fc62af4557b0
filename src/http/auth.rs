//! Auth at the HTTP edge: the credentials a request carries, the filter that turns them into
//! an [`Auth`] or a 401, and the peer address the login limiter counts by.

use std::convert::Infallible;
use std::net::SocketAddr;

use warp::http::HeaderMap;
use warp::{Filter, Rejection};

use crate::auth::{Auth, Credentials, Gate, SESSION_COOKIE};

/// The peer of a connection, in each request's extensions (the login limiter counts by it).
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

/// A private route asked for without valid credentials; answered 401 by the recovery.
#[derive(Debug)]
pub struct Unauthorized;

impl warp::reject::Reject for Unauthorized {}

/// The request's [`Auth`], or a rejection that becomes a 401. Placed after the path and
/// method, so an unknown path stays a 404 and a known private one without credentials is a
/// 401, never the other way round.
pub fn authenticated(gate: Gate) -> impl Filter<Extract = (Auth,), Error = Rejection> + Clone {
    credentials().and_then(move |creds: Credentials| {
        let gate = gate.clone();
        async move {
            gate.check(&creds)
                .await
                .ok_or_else(|| warp::reject::custom(Unauthorized))
        }
    })
}

/// The request's [`Auth`] if its credentials are good, `None` otherwise; never rejects. For
/// the one route that answers either way (`GET /`: the dashboard, or the login page).
pub fn optional_auth(
    gate: Gate,
) -> impl Filter<Extract = (Option<Auth>,), Error = Infallible> + Clone {
    credentials().then(move |creds: Credentials| {
        let gate = gate.clone();
        async move { gate.check(&creds).await }
    })
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

/// The value of our session cookie, if the request has one.
pub fn session_cookie(h: &HeaderMap) -> Option<String> {
    h.get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.trim().to_string())
}

/// The address of the connection's peer (set by the accept loop on every request).
pub fn peer_addr() -> impl Filter<Extract = (Option<SocketAddr>,), Error = Infallible> + Clone {
    warp::ext::optional::<PeerAddr>().map(|p: Option<PeerAddr>| p.map(|PeerAddr(addr)| addr))
}
