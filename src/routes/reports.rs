//! CSV and PDF exports (wired when report.rs lands).
use std::sync::Arc; use warp::Filter; use warp::reply::Response; use crate::App;
pub fn routes(_app: Arc<App>) -> warp::filters::BoxedFilter<(Response,)> { warp::any().and_then(|| async { Err::<Response, _>(warp::reject::not_found()) }).boxed() }
