//! `GET /metrics`: Prometheus' text format, for a bearer dashboard token or metrics token.

use std::sync::Arc;

use warp::filters::BoxedFilter;
use warp::http::header;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::auth::scraper;
use super::error::{respond, AppError};
use super::with;
use crate::auth::{Gate, Scraper};
use crate::live::Streams;
use crate::metrics::{self, Gauges};
use crate::store::Store;

/// What a scrape reads besides the counters.
pub struct MetricsContext {
    pub store: Store,
    pub streams: Arc<Streams>,
}

type Ctx = Arc<MetricsContext>;

/// GET /metrics
pub fn routes(ctx: Ctx, gate: Gate) -> BoxedFilter<(Response,)> {
    warp::path!("metrics")
        .and(warp::get())
        .and(with(ctx))
        .and(scraper(gate))
        .then(scrape)
        .map(respond)
        .boxed()
}

async fn scrape(ctx: Ctx, _scraper: Scraper) -> Result<Response, AppError> {
    let overview = ctx.store.overview().await?;
    let text = metrics::render(&Gauges {
        jobs_pending: overview.jobs_waiting,
        jobs_dead: overview.dead_letters,
        open_streams: ctx.streams.open_count(),
    })
    .map_err(AppError::Internal)?;
    Ok(warp::reply::with_header(text, header::CONTENT_TYPE, metrics::CONTENT_TYPE).into_response())
}
