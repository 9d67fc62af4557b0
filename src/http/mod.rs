//! The HTTP surface: the accept loop, the connections, and the warp routes they hand
//! requests to.
//!
//! - [`server`]: the accept loop, with the connection caps ([`limits`]); tells HTTP/2 from
//!   HTTP/1 by a connection's first bytes;
//! - `h1`: our own HTTP/1.x connection loop, which hands every authorised `GET /api/stream`
//!   to the stream's socket writer and every other request to the routes; `h2`: hyper's
//!   HTTP/2 server over the same routes;
//! - [`stream`]: the one place that decides who gets a stream and what its answer's head says;
//! - one file per area, each route a small function with a `/// METHOD /path` line and its
//!   handler a plain `async fn`: [`webhook`], [`leads`], [`ops`] (health, status, sync, dead
//!   letters), [`metrics`], [`erasure`], [`destinations`] (forwarding), [`stream`], [`team`]
//!   (a lead's notes, history and changes; users), [`reports`], [`dashboard`] (the page and
//!   login), [`assets`],
//!   [`demo`];
//! - [`auth`]: credentials from the headers, and the filter that gives a handler its
//!   [`Auth`](crate::auth::Auth) or answers 401;
//! - [`error`]: one error type mapped to HTTP once, and the recovery for warp's rejections;
//! - [`headers`]: the security and stream headers;
//! - [`origin`]: state changes from pages on other origins are refused before any route.
//!
//! A private handler takes an `Auth`: without one it cannot be reached, so a route whose
//! handler takes none is public on purpose. Each area gets a small context of what it uses.
//!
//! The route functions repeat one shape on purpose (path, method, context, extractors,
//! `authenticated`, handler, `respond`): each reads top to bottom as the request is handled,
//! and a generic combinator over warp's extract tuples would hide more than it saves.

pub mod assets;
pub mod auth;
pub mod dashboard;
pub mod demo;
pub mod destinations;
pub mod erasure;
pub mod error;
mod h1;
mod h2;
pub mod headers;
pub mod leads;
pub mod limits;
pub mod metrics;
pub mod ops;
pub mod origin;
mod replay;
pub mod reports;
pub mod server;
pub mod stream;
pub mod team;
pub mod webhook;

use std::convert::Infallible;
use std::sync::Arc;

use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use crate::auth::Gate;
use crate::demo::DemoMeta;
use crate::erasure::Eraser;
use crate::live::Streams;
use crate::store::Store;
use dashboard::DashboardContext;
use destinations::DestinationsContext;
use metrics::MetricsContext;
use ops::OpsContext;
use origin::Origins;
use webhook::WebhookContext;

/// Why a request whose target has no path (`CONNECT host:port`) is refused before the routes,
/// on HTTP/1 and HTTP/2 alike: no route serves one, and warp's path filters panic on it.
const NO_PATH: &str = "the request target must be a path";

/// Every area's context: what `routes` hands out.
pub struct Areas {
    pub gate: Gate,
    pub store: Store,
    pub webhook: Arc<WebhookContext>,
    pub destinations: Arc<DestinationsContext>,
    pub ops: Arc<OpsContext>,
    pub metrics: Arc<MetricsContext>,
    pub eraser: Arc<Eraser>,
    pub streams: Arc<Streams>,
    pub dashboard: Arc<DashboardContext>,
    /// The simulated Meta, in demo mode only.
    pub demo: Option<DemoMeta>,
    /// Where state changes may come from.
    pub origins: Arc<Origins>,
}

/// All routes, with the security headers and JSON answers for warp's own rejections.
pub fn routes(areas: Areas) -> BoxedFilter<(Response,)> {
    let Areas {
        gate,
        store,
        webhook,
        destinations,
        ops,
        metrics,
        eraser,
        streams,
        dashboard,
        demo,
        origins,
    } = areas;
    let routes = webhook::routes(webhook)
        .or(stream::routes(streams, gate.clone()))
        .unify()
        .or(ops::routes(ops, gate.clone()))
        .unify()
        .or(team::routes(team::TeamContext {
            store: store.clone(),
            gate: gate.clone(),
        }))
        .unify()
        .or(metrics::routes(metrics, gate.clone()))
        .unify()
        .or(erasure::routes(eraser, gate.clone()))
        .unify()
        .or(leads::routes(store.clone(), gate.clone()))
        .unify()
        .or(reports::routes(store, gate.clone()))
        .unify()
        .or(dashboard::routes(dashboard))
        .unify()
        .or(assets::routes())
        .unify()
        // After the page and its assets: a request for those never walks these routes.
        .or(destinations::routes(destinations, gate))
        .unify()
        .or(demo::routes(demo))
        .unify();
    // In front of every route, so no handler ever runs for a forged state change.
    origin::same_origin_changes(origins)
        .and(routes)
        .recover(error::handle_rejection)
        .unify()
        .map(|mut res: Response| {
            headers::secure(&mut res);
            res
        })
        .boxed()
}

/// Hands each request a clone of `value` (an area's context).
fn with<T: Clone + Send + Sync + 'static>(
    value: T,
) -> impl Filter<Extract = (T,), Error = Infallible> + Clone {
    warp::any().map(move || value.clone())
}
