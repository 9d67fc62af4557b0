//! What the process knows about Meta's health: problems a person must fix (expired token,
//! missing permission), and the rate-limit pause.
//!
//! With one process (SQLite) this lives in memory only. With several instances (PostgreSQL)
//! Meta's budget and its verdict on the token are the same for all of them, so every change
//! is also written to the database, and each instance reads the database's view back once a
//! second: a rate limit met by one instance pauses them all. Reads stay in memory either way
//! (the worker asks before every claim).
//!
//! The words here are shown on `/api/status` and the dashboard as they are, so they say what
//! to do, not just what went wrong.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::logging::escaped;
use crate::meta::graph::{ErrorClass, GraphError};
use crate::model::now_ms;
use crate::store::Store;

/// How often an instance reads the shared view back.
const SHARED_REFRESH: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Status {
    inner: Mutex<Inner>,
    /// Where the instances share it (PostgreSQL); `None` for one process.
    shared: Option<Store>,
}

#[derive(Default)]
struct Inner {
    /// No Graph calls before this instant (Meta said we were rate limited).
    graph_paused_until: Option<Instant>,
    /// A problem with the token or permissions, in words a user can act on.
    meta_problem: Option<String>,
}

impl Status {
    /// Meta's health shared through `store` with every instance on the same database, read
    /// back every second for as long as the returned value lives.
    pub fn shared(store: Store) -> Arc<Status> {
        let status = Arc::new(Status {
            inner: Mutex::default(),
            shared: Some(store),
        });
        tokio::spawn(refresh(Arc::downgrade(&status)));
        status
    }

    /// Writes a change for the other instances, in the background: the caller (the worker,
    /// the sync) never waits for it, and a failed write is healed by the next change.
    fn share(&self, write: impl FnOnce(Store) -> futures_util::future::BoxFuture<'static, ()>) {
        if let Some(store) = &self.shared {
            tokio::spawn(write(store.clone()));
        }
    }

    /// Takes the database's view: a longer pause, and the problem as it stands there.
    fn merge(&self, health: crate::store::SharedHealth) {
        let mut inner = self.inner.lock().expect("status lock");
        let left = health.graph_paused_until_ms - now_ms();
        if left > 0 {
            let until = Instant::now() + Duration::from_millis(left as u64);
            if inner.graph_paused_until.is_none_or(|t| t < until) {
                inner.graph_paused_until = Some(until);
            }
        }
        inner.meta_problem = health.meta_problem;
    }

    /// How long Graph calls must still wait; zero when they may go ahead.
    pub fn graph_paused_for(&self) -> Duration {
        let inner = self.inner.lock().expect("status lock");
        inner
            .graph_paused_until
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or_default()
    }

    pub fn pause_graph(&self, d: Duration) {
        {
            let mut inner = self.inner.lock().expect("status lock");
            let until = Instant::now() + d;
            if inner.graph_paused_until.is_none_or(|t| t < until) {
                inner.graph_paused_until = Some(until);
            }
        }
        let until_ms = now_ms() + d.as_millis() as i64;
        self.share(|store| {
            Box::pin(async move {
                if let Err(e) = store.pause_graph_until(until_ms).await {
                    log::warn!("could not share the Graph pause with the other instances: {e}");
                }
            })
        });
    }

    /// A Graph call succeeded: token and permissions are fine again.
    pub fn graph_ok(&self) {
        let had = self.inner.lock().expect("status lock").meta_problem.take();
        if had.is_some() {
            self.share(|store| {
                Box::pin(async move {
                    let _ = store.set_meta_problem(None).await;
                })
            });
        }
    }

    /// Remembers token and permission problems, which no retry will fix.
    pub fn graph_failed(&self, err: &GraphError) {
        if let Some(words) = problem_words(err) {
            let mut inner = self.inner.lock().expect("status lock");
            if inner.meta_problem.as_deref() == Some(words.as_str()) {
                return;
            }
            log::error!("Meta problem: {}", escaped(&words));
            inner.meta_problem = Some(words.clone());
            drop(inner);
            self.share(|store| {
                Box::pin(async move {
                    let _ = store.set_meta_problem(Some(words)).await;
                })
            });
        }
    }

    /// What a person should know about Meta right now, worst first.
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .inner
            .lock()
            .expect("status lock")
            .meta_problem
            .iter()
            .cloned()
            .collect();
        let paused = self.graph_paused_for();
        if !paused.is_zero() {
            // Not a fault to fix, but it explains why leads wait: say that it heals itself.
            out.push(format!(
                "Meta's rate limit was reached: leadstream makes no calls to Meta for another {} s; \
                 waiting leads and the sync continue by themselves after that",
                paused.as_secs_f64().ceil() as u64
            ));
        }
        out
    }
}

/// Reads the shared view into `status` every [`SHARED_REFRESH`] until it is dropped.
async fn refresh(status: Weak<Status>) {
    loop {
        tokio::time::sleep(SHARED_REFRESH).await;
        let Some(status) = status.upgrade() else {
            return;
        };
        let Some(store) = &status.shared else { return };
        match store.shared_health().await {
            Ok(health) => status.merge(health),
            // The database is away: what this instance knows stands until it is back.
            Err(e) => log::debug!("could not read Meta's health from the database: {e}"),
        }
    }
}

/// The sentence a person sees for errors that need a person.
pub fn problem_words(err: &GraphError) -> Option<String> {
    let GraphError::Api { error, .. } = err else {
        return None;
    };
    match err.class() {
        ErrorClass::Token => Some(match error.error_subcode {
            Some(463) | Some(467) | None => "the page token has expired or is invalid: create a long-lived page token \
                 and set META_PAGE_ACCESS_TOKEN, then restart leadstream"
                .to_string(),
            Some(460) => "the page token stopped working because the password of its user changed: create a new \
                 long-lived page token and set META_PAGE_ACCESS_TOKEN"
                .to_string(),
            Some(458) => "the app was removed from the user or page: reinstall it, create a new page token and set \
                 META_PAGE_ACCESS_TOKEN"
                .to_string(),
            Some(sub) => format!(
                "Meta refused the page token (code 190, subcode {sub}: {}): create a long-lived page token and set \
                 META_PAGE_ACCESS_TOKEN",
                error.message
            ),
        }),
        // Meta's words for a proof made with another app's secret (code 100, see docs/meta.md).
        ErrorClass::Permanent
            if error.code == Some(100) && error.message.contains("appsecret_proof") =>
        {
            Some(
                "Meta rejected the appsecret_proof: META_APP_SECRET is not the secret of the app \
                 the page token was made with (webhook signatures from that app fail too). Copy \
                 the secret from the app's Settings > Basic into META_APP_SECRET, or make the \
                 token with this app, then restart leadstream"
                    .to_string(),
            )
        }
        ErrorClass::Permission => Some(format!(
            "the page token lacks a permission (code {}: {}): grant leads_retrieval, pages_show_list, \
             pages_read_engagement, pages_manage_metadata and ads_management, then create a new page token",
            error.code.unwrap_or_default(),
            error.message
        )),
        _ => None,
    }
}
