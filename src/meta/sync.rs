//! Catch-up sync: for each configured page, list its lead forms, read each form's leads created
//! since the last successful sync (minus a margin), follow `paging.next` to the end, and save
//! them through the same save-then-publish path as webhooks. Duplicates are impossible there,
//! so overlapping windows cost a little reading and nothing else.
//!
//! Only one sync runs at a time: a caller arriving while one runs waits for it and gets its
//! result instead of starting another.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use super::graph::{ErrorClass, GraphClient, GraphError, GraphForm, GraphLead};
use crate::model::{LeadSource, NewLead};
use crate::status::Status;
use crate::store::{self, Store, Written};

/// Re-read this much before the last successful sync: Meta can make a lead readable a little
/// after its `created_time`, and clocks differ.
pub const SAFETY_MARGIN_SECS: i64 = 30 * 60;

/// `{"forms","fetched","new"}` of `POST /api/leads/sync`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    pub forms: u64,
    pub fetched: u64,
    pub new: u64,
}

/// Why a sync stopped early.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncError {
    NotConfigured,
    Graph {
        // Boxed: Meta's error object is large and this travels through every Result.
        error: Box<GraphError>,
        partial: SyncReport,
    },
    Store(String),
}

impl SyncError {
    pub fn class(&self) -> Option<ErrorClass> {
        match self {
            SyncError::Graph { error, .. } => Some(error.class()),
            _ => None,
        }
    }
}

impl std::fmt::Display for SyncError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncError::NotConfigured => f.write_str("no page to sync: set META_PAGE_ID"),
            SyncError::Graph { error, partial } => write!(
                f,
                "{error} (after {} forms, {} leads fetched, {} new)",
                partial.forms, partial.fetched, partial.new
            ),
            SyncError::Store(e) => write!(f, "{e}"),
        }
    }
}

/// The last sync, as kept in the `state` table and shown on `/api/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastSync {
    pub at: String,
    pub ok: bool,
    #[serde(flatten)]
    pub report: SyncReport,
    pub error: Option<String>,
}

type Outcome = Result<SyncReport, SyncError>;

pub struct Syncer {
    pub graph: GraphClient,
    pub store: Store,
    pub status: Arc<Status>,
    pub page_ids: Vec<String>,
    running: Mutex<Option<broadcast::Sender<Outcome>>>,
}

impl Syncer {
    pub fn new(
        graph: GraphClient,
        store: Store,
        status: Arc<Status>,
        page_ids: Vec<String>,
    ) -> Syncer {
        Syncer {
            graph,
            store,
            status,
            page_ids,
            running: Mutex::new(None),
        }
    }

    /// Runs a sync, or joins the one already running.
    pub async fn sync(&self) -> Outcome {
        let joined = {
            let mut running = self.running.lock().expect("sync lock");
            match running.as_ref() {
                Some(tx) => Some(tx.subscribe()),
                None => {
                    *running = Some(broadcast::channel(1).0);
                    None
                }
            }
        };
        if let Some(mut rx) = joined {
            log::info!("sync requested while one runs: joining it");
            return rx.recv().await.unwrap_or_else(|_| {
                Err(SyncError::Store("the running sync was cancelled".into()))
            });
        }
        // If this future is dropped mid-way, the guard still clears `running`.
        struct Clear<'a>(&'a Mutex<Option<broadcast::Sender<Outcome>>>);
        impl Drop for Clear<'_> {
            fn drop(&mut self) {
                self.0.lock().expect("sync lock").take();
            }
        }
        let guard = Clear(&self.running);
        let outcome = self.run_once().await;
        let tx = self.running.lock().expect("sync lock").take();
        drop(guard);
        if let Some(tx) = tx {
            let _ = tx.send(outcome.clone());
        }
        outcome
    }

    async fn run_once(&self) -> Outcome {
        if self.page_ids.is_empty() {
            return Err(SyncError::NotConfigured);
        }
        let started = Utc::now().timestamp();
        let since = self
            .store
            .get_state("last_sync_ok_ts")
            .await
            .map_err(|e| SyncError::Store(e.to_string()))?
            .and_then(|s| s.parse::<i64>().ok())
            .map(|t| t - SAFETY_MARGIN_SECS);
        let mut report = SyncReport::default();
        let result = self.walk(since, &mut report).await;
        let last = LastSync {
            at: crate::model::format_seconds(Utc::now()),
            ok: result.is_ok(),
            report,
            error: result.as_ref().err().map(|e| e.to_string()),
        };
        let ok_ts = result.is_ok().then_some(started);
        let saved = self
            .store
            .write(move |c| {
                store::set_state(
                    c,
                    "last_sync",
                    &serde_json::to_string(&last).expect("serialises"),
                )?;
                if let Some(t) = ok_ts {
                    store::set_state(c, "last_sync_ok_ts", &t.to_string())?;
                }
                Ok(Written::value(()))
            })
            .await;
        if let Err(e) = saved {
            log::error!("could not record the sync result: {e}");
        }
        match &result {
            Ok(()) => {
                self.status.graph_ok();
                log::info!(
                    "sync done: {} forms, {} leads fetched, {} new (since {})",
                    report.forms,
                    report.fetched,
                    report.new,
                    since.map_or("the beginning".to_string(), |s| s.to_string())
                );
                Ok(report)
            }
            Err(e) => {
                log::warn!("sync stopped: {e}");
                Err(e.clone())
            }
        }
    }

    async fn walk(&self, since: Option<i64>, report: &mut SyncReport) -> Result<(), SyncError> {
        for page_id in &self.page_ids {
            let forms = self
                .all_forms(page_id)
                .await
                .map_err(|e| self.failed(e, report))?;
            let page = page_id.clone();
            let rows = forms.clone();
            self.store
                .write(move |c| {
                    for f in &rows {
                        store::upsert_form(
                            c,
                            &f.id,
                            Some(&page),
                            f.name.as_deref(),
                            f.status.as_deref(),
                        )?;
                    }
                    Ok(Written::value(()))
                })
                .await
                .map_err(|e| SyncError::Store(e.to_string()))?;
            for form in forms {
                report.forms += 1;
                let mut listing = self
                    .graph
                    .form_leads(&form.id, since)
                    .await
                    .map_err(|e| self.failed(e, report))?;
                loop {
                    let n = listing.items.len() as u64;
                    let new = self.save(page_id, &form.id, listing.items).await?;
                    report.fetched += n;
                    report.new += new;
                    // An empty page can still have a `next`: keep going until it is absent.
                    let Some(next) = listing.next else { break };
                    listing = self
                        .graph
                        .next_leads(&next)
                        .await
                        .map_err(|e| self.failed(e, report))?;
                }
            }
        }
        Ok(())
    }

    fn failed(&self, error: GraphError, report: &SyncReport) -> SyncError {
        self.status.graph_failed(&error);
        SyncError::Graph {
            error: Box::new(error),
            partial: *report,
        }
    }

    async fn all_forms(&self, page_id: &str) -> Result<Vec<GraphForm>, GraphError> {
        let mut listing = self.graph.forms(page_id).await?;
        let mut forms = Vec::new();
        loop {
            forms.append(&mut listing.items);
            let Some(next) = listing.next else { break };
            listing = self.graph.next_forms(&next).await?;
        }
        Ok(forms)
    }

    /// Saves one page of leads in one transaction; returns how many were new.
    async fn save(
        &self,
        page_id: &str,
        form_id: &str,
        leads: Vec<GraphLead>,
    ) -> Result<u64, SyncError> {
        if leads.is_empty() {
            return Ok(0);
        }
        let page_id = page_id.to_string();
        let form_id = form_id.to_string();
        self.store
            .write(move |c| {
                let now = store::now_ms();
                let mut inserted = Vec::new();
                for g in leads {
                    let lead = NewLead {
                        leadgen_id: g.id,
                        page_id: Some(page_id.clone()),
                        form_id: g.form_id.or_else(|| Some(form_id.clone())),
                        ad_id: g.ad_id,
                        adgroup_id: g.adgroup_id,
                        campaign_id: g.campaign_id,
                        created_time: g.created_time,
                        field_data: g.field_data,
                        source: LeadSource::Sync,
                    };
                    inserted.extend(store::insert_lead(c, &lead, now)?);
                }
                Ok(Written {
                    value: inserted.len() as u64,
                    inserted,
                })
            })
            .await
            .map_err(|e| SyncError::Store(e.to_string()))
    }
}

/// Syncs at start-up and every `every`; after a failure Meta may recover from (rate limit,
/// outage) it tries again sooner, backing off; after a token or permission error it waits for
/// the normal schedule, so a dead token never turns into a tight loop.
pub async fn run_periodic(
    syncer: Arc<Syncer>,
    at_start: bool,
    every: Duration,
    retry_base: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut failures = 0i64;
    let mut wait = if at_start { Duration::ZERO } else { every };
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        if *shutdown.borrow() {
            return;
        }
        let paused = syncer.status.graph_paused_for();
        if !paused.is_zero() {
            wait = paused;
            continue;
        }
        wait = match syncer.sync().await {
            Ok(_) => {
                failures = 0;
                every
            }
            Err(e) if e.class().is_some_and(ErrorClass::is_retried) => {
                failures += 1;
                let w = crate::inbox::backoff(failures, retry_base * 30, every);
                if e.class() == Some(ErrorClass::RateLimited) {
                    syncer.status.pause_graph(w);
                }
                log::info!("next sync try in {:.0} s", w.as_secs_f64());
                w
            }
            Err(_) => every,
        };
    }
}
