//! CSV and PDF exports (wired when report.rs lands).
use crate::App;
use std::sync::Arc;
use warp::reply::Response;
use warp::Filter;
pub fn routes(_app: Arc<App>) -> warp::filters::BoxedFilter<(Response,)> {
    warp::any()
        .and_then(|| async { Err::<Response, _>(warp::reject::not_found()) })
        .boxed()
}
