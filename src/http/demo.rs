//! `GET /demo-graph/v25.0/…`: the simulated Graph of demo mode. Without demo mode the path
//! does not exist (404), whatever follows it.

use std::collections::HashMap;

use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::demo::DemoMeta;

pub fn routes(demo: Option<DemoMeta>) -> BoxedFilter<(Response,)> {
    match demo {
        Some(demo) => graph(demo).boxed(),
        None => warp::any()
            .and(warp::path("demo-graph"))
            .and_then(|| async { Err::<Response, _>(warp::reject::not_found()) })
            .boxed(),
    }
}

/// GET /demo-graph/v25.0/{path}?access_token=…&appsecret_proof=…
fn graph(demo: DemoMeta) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path("demo-graph")
        .and(warp::path("v25.0"))
        .and(warp::path::tail())
        .and(warp::get())
        .and(warp::query::<HashMap<String, String>>())
        .map(move |tail: warp::path::Tail, q: HashMap<String, String>| {
            let (status, body) = demo.graph(tail.as_str(), &q);
            warp::reply::with_status(
                warp::reply::json(&body),
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            )
            .into_response()
        })
}
