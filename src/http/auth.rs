//! Auth at the HTTP edge: the credentials a request carries (and the address it comes from),
//! and the filter that turns them into an [`Auth`], a 401 or a 429.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use warp::http::HeaderMap;
use warp::{Filter, Rejection};

use crate::auth::{Auth, Credentials, Gate, ProxyTrust, Refusal, Scraper, SESSION_COOKIE};

/// The peer of a connection, in each request's extensions (wrong tokens are counted by it).
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

/// A private route asked for without valid credentials, or from an address that guessed
/// too often; answered 401 or 429 by the recovery.
#[derive(Debug)]
pub struct Refused(pub Refusal);

impl warp::reject::Reject for Refused {}

/// The request's [`Auth`], or a rejection that becomes a 401 (or a 429 for an address that
/// sent too many wrong tokens). Placed after the path and method, so an unknown path stays
/// a 404 and a known private one without credentials is a 401, never the other way round.
pub fn authenticated(gate: Gate) -> impl Filter<Extract = (Auth,), Error = Rejection> + Clone {
    credentials(gate.clone()).and_then(move |creds: Credentials| {
        let gate = gate.clone();
        async move {
            gate.check(&creds)
                .await
                .map_err(|r| warp::reject::custom(Refused(r)))
        }
    })
}

/// The request's [`Scraper`] (a bearer dashboard or metrics token; no session), or a 401/429
/// rejection as for [`authenticated`].
pub fn scraper(gate: Gate) -> impl Filter<Extract = (Scraper,), Error = Rejection> + Clone {
    credentials(gate.clone()).and_then(move |creds: Credentials| {
        let result = gate
            .check_scraper(&creds)
            .map_err(|r| warp::reject::custom(Refused(r)));
        async move { result }
    })
}

/// The request's [`Auth`] if its credentials are good, `None` otherwise; never rejects. For
/// the one route that answers either way (`GET /`: the dashboard, or the login page).
pub fn optional_auth(
    gate: Gate,
) -> impl Filter<Extract = (Option<Auth>,), Error = Infallible> + Clone {
    credentials(gate.clone()).then(move |creds: Credentials| {
        let gate = gate.clone();
        async move { gate.check(&creds).await.ok() }
    })
}

/// The credentials a request carries; never rejects (a garbled header is just no credential).
pub fn credentials(
    gate: Gate,
) -> impl Filter<Extract = (Credentials,), Error = Infallible> + Clone {
    warp::header::headers_cloned()
        .and(peer_addr())
        .map(move |h: HeaderMap, peer: Option<SocketAddr>| credentials_of(&h, peer, gate.proxy()))
}

/// The credentials in a request's headers, from `peer`.
pub fn credentials_of(h: &HeaderMap, peer: Option<SocketAddr>, proxy: &ProxyTrust) -> Credentials {
    Credentials {
        authorization: h
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        session: session_cookie(h),
        client: client_of(h, peer, proxy),
    }
}

/// The client's address: the peer's, or what a trusted local proxy says it is.
pub fn client_of(h: &HeaderMap, peer: Option<SocketAddr>, proxy: &ProxyTrust) -> Option<IpAddr> {
    let forwarded = proxy
        .header_name()
        .and_then(|name| h.get(name))
        .and_then(|v| v.to_str().ok());
    proxy.client(peer.map(|p| p.ip()), forwarded)
}

/// The client's address of a request (see [`client_of`]).
pub fn client_addr(
    gate: Gate,
) -> impl Filter<Extract = (Option<IpAddr>,), Error = Infallible> + Clone {
    warp::header::headers_cloned()
        .and(peer_addr())
        .map(move |h: HeaderMap, peer: Option<SocketAddr>| client_of(&h, peer, gate.proxy()))
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
