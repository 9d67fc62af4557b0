//! Reading leads back: `/api/leads`, `/api/leads/count`, `/api/stats`, `/api/forms` and
//! `/api/pages`. Every route here is private: its handler takes an [`Auth`].

use serde_json::json;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::auth::authenticated;
use super::error::{respond, AppError};
use super::with;
use crate::auth::{Auth, Gate};
use crate::model::LeadQuery;
use crate::store::Store;

pub fn routes(store: Store, gate: Gate) -> BoxedFilter<(Response,)> {
    list(store.clone(), gate.clone())
        .or(count(store.clone(), gate.clone()))
        .unify()
        .or(stats(store.clone(), gate.clone()))
        .unify()
        .or(forms(store.clone(), gate.clone()))
        .unify()
        .or(pages(store, gate))
        .unify()
        .boxed()
}

/// GET /api/leads?q=&form_id=&page_id=&ad_id=&since=&until=&status=&owner=&sort=&order=&limit=&offset=
fn list(store: Store, gate: Gate) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "leads")
        .and(warp::get())
        .and(with(store))
        .and(warp::query::<LeadQuery>())
        .and(authenticated(gate))
        .then(list_leads)
        .map(respond)
}

async fn list_leads(store: Store, q: LeadQuery, auth: Auth) -> Result<impl Reply, AppError> {
    let (filter, limit, offset) = q
        .parse(auth.principal().name())
        .map_err(AppError::BadRequest)?;
    let (leads, total) = store.list_leads(filter, limit, offset).await?;
    Ok(warp::reply::json(&json!({"leads": leads, "total": total})))
}

/// GET /api/leads/count — `{"count","last_id","last_event_id"}`, the dashboard's 3 s
/// fallback check.
fn count(
    store: Store,
    gate: Gate,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "leads" / "count")
        .and(warp::get())
        .and(with(store))
        .and(authenticated(gate))
        .then(count_leads)
        .map(respond)
}

async fn count_leads(store: Store, _auth: Auth) -> Result<impl Reply, AppError> {
    Ok(warp::reply::json(&store.count().await?))
}

/// GET /api/stats?<filters> — today, 7 days, total, per form, per day (UTC).
fn stats(
    store: Store,
    gate: Gate,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "stats")
        .and(warp::get())
        .and(with(store))
        .and(warp::query::<LeadQuery>())
        .and(authenticated(gate))
        .then(lead_stats)
        .map(respond)
}

async fn lead_stats(store: Store, q: LeadQuery, auth: Auth) -> Result<impl Reply, AppError> {
    let (filter, _, _) = q
        .parse(auth.principal().name())
        .map_err(AppError::BadRequest)?;
    Ok(warp::reply::json(&store.stats(filter, 30).await?))
}

/// GET /api/forms — every known form with its lead count, for the filter.
fn forms(
    store: Store,
    gate: Gate,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "forms")
        .and(warp::get())
        .and(with(store))
        .and(authenticated(gate))
        .then(list_forms)
        .map(respond)
}

async fn list_forms(store: Store, _auth: Auth) -> Result<impl Reply, AppError> {
    Ok(warp::reply::json(
        &json!({ "forms": store.forms_summary().await? }),
    ))
}

/// GET /api/pages — pages with leads, for the filter.
fn pages(
    store: Store,
    gate: Gate,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "pages")
        .and(warp::get())
        .and(with(store))
        .and(authenticated(gate))
        .then(list_pages)
        .map(respond)
}

async fn list_pages(store: Store, _auth: Auth) -> Result<impl Reply, AppError> {
    Ok(warp::reply::json(
        &json!({ "pages": store.pages_summary().await? }),
    ))
}
