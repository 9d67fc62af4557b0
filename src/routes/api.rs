//! `/api/*` (JSON for the dashboard and scripts) and `/healthz`.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::{authorised, private, with_app};
use crate::auth::Credentials;
use crate::demo::DemoMeta;
use crate::error::AppError;
use crate::meta::graph::ErrorClass;
use crate::meta::sync::SyncError;
use crate::model::LeadQuery;
use crate::App;

pub fn routes(app: Arc<App>) -> warp::filters::BoxedFilter<(Response,)> {
    healthz(app.clone())
        .or(leads(app.clone()))
        .unify()
        .or(count(app.clone()))
        .unify()
        .or(sync(app.clone()))
        .unify()
        .or(status(app.clone()))
        .unify()
        .or(stats(app.clone()))
        .unify()
        .or(forms(app.clone()))
        .unify()
        .or(pages(app.clone()))
        .unify()
        .or(dead_letters(app.clone()))
        .unify()
        .or(retry_dead(app.clone()))
        .unify()
        .or(super::reports::routes(app))
        .unify()
        .boxed()
}

/// GET /healthz — no auth; 200 while the process serves and the database answers.
fn healthz(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("healthz")
        .and(warp::get())
        .and(with_app(app))
        .then(|app: Arc<App>| async move {
            match app.store.count().await {
                Ok(_) => warp::reply::json(&json!({"status": "ok"})).into_response(),
                Err(e) => {
                    log::error!("health check: {e}");
                    warp::reply::with_status(
                        warp::reply::json(&json!({"status": "database unavailable"})),
                        StatusCode::SERVICE_UNAVAILABLE,
                    )
                    .into_response()
                }
            }
        })
}

/// GET /api/leads?q=&form_id=&page_id=&ad_id=&since=&until=&sort=&order=&limit=&offset=
fn leads(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "leads")
        .and(warp::get())
        .and(private(app))
        .and(warp::query::<LeadQuery>())
        .then(
            |app: Arc<App>, creds: Credentials, q: LeadQuery| async move {
                authorised(&app, &creds, async {
                    let (filter, limit, offset) = q.parse().map_err(AppError::BadRequest)?;
                    let (leads, total) = app.store.list_leads(filter, limit, offset).await?;
                    Ok(warp::reply::json(&json!({"leads": leads, "total": total})))
                })
                .await
            },
        )
}

/// GET /api/leads/count — `{"count","last_id"}`, the dashboard's 3 s fallback check.
fn count(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "leads" / "count")
        .and(warp::get())
        .and(private(app))
        .then(|app: Arc<App>, creds: Credentials| async move {
            authorised(&app, &creds, async {
                let (count, last_id) = app.store.count().await?;
                Ok(warp::reply::json(
                    &json!({"count": count, "last_id": last_id}),
                ))
            })
            .await
        })
}

/// POST /api/leads/sync — pull from Meta now; joins a sync already running. Answers
/// `{"forms","fetched","new"}` when it is done, or `{"error", "partial"?}` with 429 (Meta's rate
/// limit; `Retry-After` says when the sync resumes by itself), 502 (Meta refused: the words say
/// what to do) or 503 (no page configured, or shutting down).
fn sync(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "leads" / "sync")
        .and(warp::post())
        .and(private(app))
        .then(|app: Arc<App>, creds: Credentials| async move {
            authorised(&app, &creds, async {
                let e = match app.syncer.sync().await {
                    Ok(report) => return Ok(warp::reply::json(&report).into_response()),
                    Err(e) => e,
                };
                let status = match &e {
                    SyncError::NotConfigured | SyncError::Interrupted => {
                        return Err(AppError::Unavailable(e.words()))
                    }
                    SyncError::Store(cause) => return Err(AppError::Internal(cause.clone())),
                    _ if e.class() == Some(ErrorClass::RateLimited) => {
                        StatusCode::TOO_MANY_REQUESTS
                    }
                    // Meta's refusal is not our failure: 502 with words a person can use.
                    _ => StatusCode::BAD_GATEWAY,
                };
                let mut body = json!({ "error": e.words() });
                if let SyncError::Graph { partial, .. } = &e {
                    body["partial"] = json!(partial);
                }
                let mut res =
                    warp::reply::with_status(warp::reply::json(&body), status).into_response();
                if let Some(wait) = e.retry_in() {
                    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                    res.headers_mut().insert(
                        warp::http::header::RETRY_AFTER,
                        warp::http::HeaderValue::from(secs),
                    );
                }
                Ok(res)
            })
            .await
        })
}

/// GET /api/status — health for humans.
fn status(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "status")
        .and(warp::get())
        .and(private(app))
        .then(|app: Arc<App>, creds: Credentials| async move {
            authorised(&app, &creds, async {
                    let overview = app.store.overview().await?;
                    let last_webhook_at = overview
                        .last_webhook_ms
                        .and_then(chrono::DateTime::from_timestamp_millis)
                        .map(crate::model::format_seconds);
                    let mut problems = app.status.problems();
                    if app.syncer.page_ids.is_empty() {
                        problems.push(
                            "sync with Meta is off, so leads that webhooks miss are never caught up: \
                             set META_PAGE_ID to your page id(s), comma-separated, and restart leadstream"
                                .into(),
                        );
                    }
                    let paused = app.status.graph_paused_for();
                    Ok(warp::reply::json(&json!({
                        "last_webhook_at": last_webhook_at,
                        "last_sync": overview.last_sync,
                        "jobs_waiting": overview.jobs_waiting,
                        "dead_letters": overview.dead_letters,
                        "leads": overview.leads,
                        "problems": problems,
                        "graph_paused_seconds": paused.as_secs_f64().ceil() as u64,
                        "sync_running": app.syncer.is_running(),
                        "stream_clients": app.streams.open_count(),
                        "demo": app.settings.demo,
                        "version": env!("CARGO_PKG_VERSION"),
                    })))
                }).await
        })
}

/// GET /api/stats?<filters> — today, 7 days, total, per form, per day (UTC).
fn stats(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "stats")
        .and(warp::get())
        .and(private(app))
        .and(warp::query::<LeadQuery>())
        .then(
            |app: Arc<App>, creds: Credentials, q: LeadQuery| async move {
                authorised(&app, &creds, async {
                    let (filter, _, _) = q.parse().map_err(AppError::BadRequest)?;
                    let stats = app.store.stats(filter, 30).await?;
                    Ok(warp::reply::json(&stats))
                })
                .await
            },
        )
}

/// GET /api/forms — every known form with its lead count, for the filter.
fn forms(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    private_read(warp::path!("api" / "forms"), app, |store| async move {
        Ok(json!({ "forms": store.forms_summary().await? }))
    })
}

/// GET /api/pages — pages with leads, for the filter.
fn pages(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    private_read(warp::path!("api" / "pages"), app, |store| async move {
        Ok(json!({ "pages": store.pages_summary().await? }))
    })
}

/// GET /api/dead-letters — jobs set aside, newest first, with Meta's message.
fn dead_letters(
    app: Arc<App>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    private_read(
        warp::path!("api" / "dead-letters"),
        app,
        |store| async move { Ok(json!({ "dead_letters": store.dead_letters(500).await? })) },
    )
}

/// A private `GET` whose answer is one database read, as JSON.
fn private_read<P, F, Fut>(
    path: P,
    app: Arc<App>,
    read: F,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone
where
    P: Filter<Extract = (), Error = warp::Rejection> + Clone + Send + Sync + 'static,
    F: Fn(crate::store::Store) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<serde_json::Value, crate::store::StoreError>> + Send,
{
    path.and(warp::get())
        .and(private(app))
        .then(move |app: Arc<App>, creds: Credentials| {
            let read = read.clone();
            async move {
                authorised(&app, &creds, async {
                    let body = read(app.store.clone()).await?;
                    Ok(warp::reply::json(&body))
                })
                .await
            }
        })
}

/// POST /api/dead-letters/retry — puts every dead letter back in the queue.
fn retry_dead(
    app: Arc<App>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "dead-letters" / "retry")
        .and(warp::post())
        .and(private(app))
        .then(|app: Arc<App>, creds: Credentials| async move {
            authorised(&app, &creds, async {
                let n = app.store.retry_dead_letters().await?;
                log::info!("{n} dead letters put back in the queue by hand");
                app.wake_worker.notify_one();
                Ok(warp::reply::json(&json!({ "retried": n })))
            })
            .await
        })
}

/// GET /demo-graph/v25.0/… — the simulated Graph of demo mode (never mounted otherwise).
pub fn demo_graph(
    demo: DemoMeta,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
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
