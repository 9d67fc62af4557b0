//! `GET /api/leads.csv` and `GET /api/report.pdf`: the same filters as `/api/leads`, the
//! export itself in `report::export`.

use std::sync::Arc;

use chrono::Utc;
use warp::http::{header, HeaderValue};
use warp::reply::Response;
use warp::{Filter, Reply};

use super::{authorised, private};
use crate::auth::Credentials;
use crate::error::AppError;
use crate::model::{LeadFilter, LeadQuery};
use crate::report::export;
use crate::store::Store;
use crate::App;

pub fn routes(app: Arc<App>) -> warp::filters::BoxedFilter<(Response,)> {
    csv(app.clone()).or(pdf(app)).unify().boxed()
}

/// GET /api/leads.csv?<filters>
fn csv(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "leads.csv")
        .and(warp::get())
        .and(private(app))
        .and(warp::query::<LeadQuery>())
        .then(
            |app: Arc<App>, creds: Credentials, q: LeadQuery| async move {
                authorised(&app, &creds, async {
                    let (filter, _, _) = q.parse().map_err(AppError::BadRequest)?;
                    Ok(csv_response(app.store.clone(), filter))
                })
                .await
            },
        )
}

/// GET /api/report.pdf?<filters>
fn pdf(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "report.pdf")
        .and(warp::get())
        .and(private(app))
        .and(warp::query::<LeadQuery>())
        .then(
            |app: Arc<App>, creds: Credentials, q: LeadQuery| async move {
                authorised(&app, &creds, async {
                    let (filter, _, _) = q.parse().map_err(AppError::BadRequest)?;
                    let started = std::time::Instant::now();
                    let (pdf, total) = export::pdf(&app.store, filter)
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
                })
                .await
            },
        )
}

fn attachment(ext: &str) -> HeaderValue {
    let name = format!(
        "attachment; filename=\"leads-{}.{ext}\"",
        Utc::now().format("%Y-%m-%d")
    );
    HeaderValue::from_str(&name).unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

fn csv_response(store: Store, filter: LeadFilter) -> Response {
    let body = export::csv(store, filter);
    let mut res = warp::reply::stream(sync_wrapper::SyncStream::new(body)).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(header::CONTENT_DISPOSITION, attachment("csv"));
    res
}
