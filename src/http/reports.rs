//! `GET /api/leads.csv` and `GET /api/report.pdf`: the same filters as `/api/leads`, the
//! export itself in `report::export`.

use chrono::Utc;
use warp::filters::BoxedFilter;
use warp::http::{header, HeaderValue};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::auth::authenticated;
use super::error::{respond, AppError};
use super::with;
use crate::auth::{Auth, Gate};
use crate::model::LeadQuery;
use crate::report::export;
use crate::store::Store;

pub fn routes(store: Store, gate: Gate) -> BoxedFilter<(Response,)> {
    csv(store.clone(), gate.clone())
        .or(pdf(store, gate))
        .unify()
        .boxed()
}

/// GET /api/leads.csv?<filters>
fn csv(store: Store, gate: Gate) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "leads.csv")
        .and(warp::get())
        .and(with(store))
        .and(warp::query::<LeadQuery>())
        .and(authenticated(gate))
        .then(csv_export)
        .map(respond)
}

async fn csv_export(store: Store, q: LeadQuery, auth: Auth) -> Result<Response, AppError> {
    let (filter, _, _) = q
        .parse(auth.principal().name())
        .map_err(AppError::BadRequest)?;
    let body = export::csv(store, filter)
        .await
        .map_err(|e| AppError::Internal(format!("CSV export failed: {e}")))?;
    let mut res = warp::reply::stream(sync_wrapper::SyncStream::new(body)).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(header::CONTENT_DISPOSITION, attachment("csv"));
    Ok(res)
}

/// GET /api/report.pdf?<filters>
fn pdf(store: Store, gate: Gate) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "report.pdf")
        .and(warp::get())
        .and(with(store))
        .and(warp::query::<LeadQuery>())
        .and(authenticated(gate))
        .then(pdf_report)
        .map(respond)
}

async fn pdf_report(store: Store, q: LeadQuery, auth: Auth) -> Result<Response, AppError> {
    let (filter, _, _) = q
        .parse(auth.principal().name())
        .map_err(AppError::BadRequest)?;
    let started = std::time::Instant::now();
    let (pdf, total) = export::pdf(&store, filter)
        .await
        .map_err(AppError::Internal)?;
    log::info!(
        "PDF report of {total} leads, {} KiB, in {} ms",
        pdf.len() / 1024,
        started.elapsed().as_millis()
    );
    let mut res = Response::new(pdf.into());
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pdf"),
    );
    h.insert(header::CONTENT_DISPOSITION, attachment("pdf"));
    Ok(res)
}

fn attachment(ext: &str) -> HeaderValue {
    let name = format!(
        "attachment; filename=\"leads-{}.{ext}\"",
        Utc::now().format("%Y-%m-%d")
    );
    HeaderValue::from_str(&name).unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}
