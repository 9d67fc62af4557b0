//! The fake Graph API, in the load generator's process: fast, and checking nothing (the
//! tests' fake Graph checks tokens and proofs; here only speed matters).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::json;
use warp::Filter;

use crate::{ADSET_ID, AD_ID, CAMPAIGN_ID, CREATED, FORM_ID, GRAPH_VERSION};

/// Answers `GET /v25.0/{id}` like Graph: the form for [`FORM_ID`], else a lead with that id
/// (strings for ids, `+0000` times). Access tokens and proofs are not checked: the tests'
/// fake Graph does that; here only speed matters.
pub(crate) async fn start_fake_graph() -> Result<(String, Arc<AtomicU64>), String> {
    let calls = Arc::new(AtomicU64::new(0));
    let counter = calls.clone();
    let created = chrono::DateTime::from_timestamp(CREATED, 0)
        .expect("fixed time")
        .format("%Y-%m-%dT%H:%M:%S+0000")
        .to_string();
    let route = warp::path(GRAPH_VERSION)
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and(warp::get())
        .map(move |id: String| {
            counter.fetch_add(1, Ordering::Relaxed);
            if id == FORM_ID {
                return warp::reply::json(
                    &json!({"id": FORM_ID, "name": "Spring offer", "status": "ACTIVE"}),
                );
            }
            let n = id.len().min(4);
            let suffix = &id[id.len() - n..];
            warp::reply::json(&json!({
                "id": id,
                "created_time": created,
                "ad_id": AD_ID,
                "adset_id": ADSET_ID,
                "campaign_id": CAMPAIGN_ID,
                "form_id": FORM_ID,
                "field_data": [
                    {"name": "full_name", "values": [format!("Person {suffix}")]},
                    {"name": "email", "values": [format!("person{suffix}@example.com")]},
                    {"name": "phone_number", "values": ["+44 20 7946 0000"]},
                ],
                "is_organic": false,
                "platform": "fb",
            }))
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("fake Graph cannot listen: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(warp::serve(route).incoming(listener).run());
    Ok((format!("http://{addr}/{GRAPH_VERSION}"), calls))
}
