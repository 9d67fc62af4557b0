//! Catch-up sync: for each configured page, list its lead forms, read each form's leads created
//! since that form was last read to the end (minus a margin), follow `paging.next` to the end,
//! and save them through the same save-then-publish path as webhooks. Duplicates are impossible
//! there, so overlapping windows cost a little reading and nothing else.
//!
//! Only one sync runs at a time: a caller arriving while one runs waits for it and gets its
//! result instead of starting another. The sync itself runs in its own task, so a caller that
//! goes away (a closed browser tab) neither cancels it nor leaves the callers that joined it
//! without an answer. With several instances on one database the same holds across them: a
//! sync takes the store's sync turn first, and one that finds another instance syncing waits
//! for that sync to end and reports its outcome; and only the elected leader runs the periodic
//! sync.
//!
//! Meta's limits are respected: a rate limit stops the sync and pauses every Graph call (the
//! worker's too, through [`Status`]) with a growing backoff; the periodic loop finishes the sync
//! after the pause. A token or permission error is left to a person (shown on `/api/status`) and
//! retried only on the normal schedule.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{broadcast, Notify};
use tokio::time::Instant;

use super::graph::{ErrorClass, GraphClient, GraphError, GraphForm, GraphLead};
use super::status::Status;
use crate::backoff::backoff;
use crate::config::Tuning;
use crate::logging::escaped;
use crate::model::{LastSync, LeadSource, NewLead, SyncReport};
use crate::shutdown::Shutdown;
use crate::store::{FormInfo, Store, StoreError};

mod error;
pub use error::{Place, SyncError};

/// Re-read this much before a form's last complete read: Meta can make a lead readable a
/// little after its `created_time`, and our clock and Meta's differ.
pub const SAFETY_MARGIN_SECS: i64 = 30 * 60;

/// The periodic interval when none is configured (every 15 minutes, docs/settings.md); also
/// the longest wait before another try after a failure.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(15 * 60);

/// The longest a sync asked for waits for the one another instance is running.
const ELSEWHERE_WAIT: Duration = Duration::from_secs(10 * 60);

type Outcome = Result<SyncReport, SyncError>;

pub struct Syncer {
    pub graph: GraphClient,
    pub store: Store,
    pub status: Arc<Status>,
    pub page_ids: Vec<String>,
    /// First wait after a failure Meta may recover from; doubles up to `retry_cap`.
    retry_base: Duration,
    retry_cap: Duration,
    /// Whether [`run_periodic`] runs: only then does a failed sync try again by itself.
    periodic: bool,
    /// The most pages of one listing a sync reads.
    max_pages: usize,
    /// Syncs in a row that failed in a way Meta may recover from (whoever started them).
    failures: AtomicI64,
    /// When a failed sync wants another try; the periodic loop watches it.
    retry_at: Mutex<Option<Instant>>,
    /// Wakes the periodic loop when `retry_at` changed.
    retry_changed: Notify,
    /// The sync in flight, to join: its result goes out on this channel. A std Mutex: it is
    /// never held across an await.
    running: Mutex<Option<broadcast::Sender<Outcome>>>,
    shutdown: Shutdown,
}

impl Syncer {
    pub fn new(
        graph: GraphClient,
        store: Store,
        status: Arc<Status>,
        page_ids: Vec<String>,
        tuning: &Tuning,
        shutdown: Shutdown,
    ) -> Syncer {
        let retry_cap = tuning.sync_every.unwrap_or(DEFAULT_EVERY);
        Syncer {
            graph,
            store,
            status,
            page_ids,
            // A sync costs many calls; with the default 1 s base this is 30 s, 1 min, 2 min…
            retry_base: (tuning.retry_base * 30).min(retry_cap),
            retry_cap,
            periodic: tuning.sync_every.is_some(),
            max_pages: tuning.sync_max_pages,
            failures: AtomicI64::new(0),
            retry_at: Mutex::new(None),
            retry_changed: Notify::new(),
            running: Mutex::new(None),
            shutdown,
        }
    }

    /// True while a sync runs.
    pub fn is_running(&self) -> bool {
        self.running.lock().expect("sync lock").is_some()
    }

    /// Runs a sync, or joins the one already running, and waits for its result.
    pub async fn sync(self: &Arc<Self>) -> Outcome {
        if self.page_ids.is_empty() {
            return Err(SyncError::NotConfigured);
        }
        let mut result = {
            let mut running = self.running.lock().expect("sync lock");
            match running.as_ref() {
                Some(tx) => {
                    log::info!("sync requested while one runs: joining it");
                    tx.subscribe()
                }
                None => {
                    // Meta asked us to slow down: a click must not undo that.
                    let paused = self.status.graph_paused_for();
                    if !paused.is_zero() {
                        return Err(SyncError::Paused(paused));
                    }
                    let (tx, rx) = broadcast::channel(1);
                    *running = Some(tx);
                    tokio::spawn(self.clone().run_and_announce());
                    rx
                }
            }
        };
        result
            .recv()
            .await
            .unwrap_or_else(|_| Err(SyncError::Store("the sync stopped unexpectedly".into())))
    }

    /// Runs one sync in its own task and tells everyone who asked for it.
    async fn run_and_announce(self: Arc<Self>) {
        // If the task ends without announcing (a panic), dropping the sender wakes the callers
        // with an error, and the next call starts afresh.
        struct Clear<'a>(&'a Mutex<Option<broadcast::Sender<Outcome>>>);
        impl Drop for Clear<'_> {
            fn drop(&mut self) {
                // Never panic here: this may run while unwinding.
                self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
            }
        }
        let _clear = Clear(&self.running);
        let outcome = tokio::select! {
            outcome = self.run_once() => outcome,
            // Progress is saved as it goes; the next start picks up from the watermarks.
            _ = self.shutdown.started() => Err(SyncError::Interrupted),
        };
        let tx = self.running.lock().expect("sync lock").take();
        if let Some(tx) = tx {
            let _ = tx.send(outcome);
        }
    }

    /// Runs a sync when no other instance runs one; otherwise waits for that one's outcome.
    async fn run_once(&self) -> Outcome {
        let store_error = |e: StoreError| SyncError::Store(e.to_string());
        let Some(turn) = self.store.try_sync_turn().await.map_err(store_error)? else {
            log::info!("sync requested while another instance runs one: waiting for its result");
            self.store
                .wait_for_sync_turn(ELSEWHERE_WAIT)
                .await
                .map_err(store_error)?;
            let last = self.store.overview().await.map_err(store_error)?.last_sync;
            return match last {
                Some(last) if last.ok => Ok(last.report),
                Some(last) => Err(SyncError::Elsewhere(last.error.unwrap_or_default())),
                None => Err(SyncError::Elsewhere(
                    "the sync on another instance ended without a result".into(),
                )),
            };
        };
        let outcome = self.run_here().await;
        drop(turn);
        outcome
    }

    async fn run_here(&self) -> Outcome {
        let started = Utc::now().timestamp();
        let marks = self
            .watermarks()
            .await
            .map_err(|e| SyncError::Store(e.to_string()))?;
        let mut report = SyncReport::default();
        let mut result = self.walk(started, &marks, &mut report).await;

        // Decide on the next try before recording, so the words shown say when it will be.
        let mut retry_at = None;
        match &mut result {
            Err(SyncError::Graph {
                error, retry_in, ..
            }) if error.class().is_retried() => {
                let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                let wait = backoff(n, self.retry_base, self.retry_cap);
                if error.class() == ErrorClass::RateLimited {
                    // Shared with the worker: Meta's budget is per app and page, not per caller.
                    self.status.pause_graph(wait);
                }
                if self.periodic {
                    *retry_in = Some(wait);
                    retry_at = Some(Instant::now() + wait);
                }
            }
            // Meta answered: the next retryable failure starts the backoff afresh.
            Ok(()) => {
                self.failures.store(0, Ordering::Relaxed);
                self.status.graph_ok();
            }
            Err(_) => self.failures.store(0, Ordering::Relaxed),
        }
        *self.retry_at.lock().expect("retry lock") = retry_at;
        self.retry_changed.notify_one();

        let last = LastSync {
            at: crate::model::format_seconds(Utc::now()),
            ok: result.is_ok(),
            report,
            error: result.as_ref().err().map(SyncError::words),
        };
        let saved = self.store.record_sync(last).await;
        if let Err(e) = saved {
            log::error!("could not record the sync result: {e}");
        }
        match result {
            Ok(()) => {
                log::info!(
                    "sync done: {} forms, {} leads fetched, {} new",
                    report.forms,
                    report.fetched,
                    report.new
                );
                Ok(report)
            }
            Err(e) => {
                log::warn!("sync stopped: {}", escaped(&e));
                Err(e)
            }
        }
    }

    /// Reads every page. A form Graph will not read (deleted, say) is skipped, and a page whose
    /// leads the token may not read is skipped: the others still come in, and the sync reports
    /// the first such error at the end. A rate limit, a token error or an outage stops it.
    async fn walk(
        &self,
        started: i64,
        marks: &HashMap<String, i64>,
        report: &mut SyncReport,
    ) -> Result<(), SyncError> {
        let mut skipped: Option<SyncError> = None;
        for page_id in &self.page_ids {
            let forms = match self.all_forms(page_id).await {
                Ok(forms) => forms,
                Err(e) => {
                    let err = self.failed(e, Place::Page(page_id.clone()), report);
                    if !matches!(
                        err.class(),
                        Some(ErrorClass::Permanent | ErrorClass::Permission)
                    ) {
                        return Err(err);
                    }
                    skipped.get_or_insert(err);
                    continue;
                }
            };
            self.remember_forms(page_id, &forms).await?;
            for form in forms {
                // No watermark: a form not read to the end before gets everything.
                let since = marks.get(&form.id).map(|t| t - SAFETY_MARGIN_SECS);
                match self.read_form(page_id, &form, since, report).await {
                    Ok(()) => {
                        report.forms += 1;
                        self.set_watermark(&form.id, started).await?;
                    }
                    Err(err) => match err.class() {
                        Some(ErrorClass::Permanent) => {
                            skipped.get_or_insert(err);
                        }
                        // The other forms of this page would be refused the same way.
                        Some(ErrorClass::Permission) => {
                            skipped.get_or_insert(err);
                            break;
                        }
                        _ => return Err(err),
                    },
                }
            }
        }
        match skipped {
            None => Ok(()),
            Some(mut err) => {
                // Report everything this sync did, not only what it had done when it skipped.
                if let SyncError::Graph { partial, .. } = &mut err {
                    *partial = *report;
                }
                Err(err)
            }
        }
    }

    /// Reads one form's leads, `since` on, page after page, saving each page as it comes.
    async fn read_form(
        &self,
        page_id: &str,
        form: &GraphForm,
        since: Option<i64>,
        report: &mut SyncReport,
    ) -> Result<(), SyncError> {
        let place = || Place::Form {
            id: form.id.clone(),
            name: form.name.clone(),
        };
        let mut listing = self
            .graph
            .form_leads(&form.id, since)
            .await
            .map_err(|e| self.failed(e, place(), report))?;
        let mut pages = Pages::new(self.max_pages);
        loop {
            let n = listing.items.len() as u64;
            let new = self.save(page_id, &form.id, listing.items).await?;
            report.fetched += n;
            report.new += new;
            // An empty page can still have a `next`: keep going until it is absent.
            let Some(next) = listing.next else {
                return Ok(());
            };
            pages
                .follow(&next)
                .map_err(|e| self.failed(e, place(), report))?;
            listing = self
                .graph
                .next_leads(&next)
                .await
                .map_err(|e| self.failed(e, place(), report))?;
        }
    }

    fn failed(&self, error: GraphError, place: Place, report: &SyncReport) -> SyncError {
        self.status.graph_failed(&error);
        SyncError::Graph {
            error: Box::new(error),
            place,
            partial: *report,
            retry_in: None,
        }
    }

    async fn all_forms(&self, page_id: &str) -> Result<Vec<GraphForm>, GraphError> {
        let mut listing = self.graph.forms(page_id).await?;
        let mut forms = Vec::new();
        let mut pages = Pages::new(self.max_pages);
        loop {
            forms.append(&mut listing.items);
            let Some(next) = listing.next else { break };
            pages.follow(&next)?;
            listing = self.graph.next_forms(&next).await?;
        }
        Ok(forms)
    }

    /// Records the forms' names, so leads show "Spring offer" rather than an id.
    async fn remember_forms(&self, page_id: &str, forms: &[GraphForm]) -> Result<(), SyncError> {
        let forms = forms
            .iter()
            .map(|f| FormInfo {
                form_id: f.id.clone(),
                name: f.name.clone(),
                status: f.status.clone(),
            })
            .collect();
        self.store
            .remember_forms(Some(page_id.to_string()), forms)
            .await
            .map_err(|e| SyncError::Store(e.to_string()))
    }

    /// Form id → the start (unix seconds) of the last sync that read the form to the end. Per
    /// form rather than one for the whole sync, so a page added to META_PAGE_ID later (or a
    /// new form) is read from the beginning, and the forms a rate-limited sync did finish are
    /// not read again from the old point.
    async fn watermarks(&self) -> Result<HashMap<String, i64>, StoreError> {
        self.store.sync_watermarks().await
    }

    /// Notes that `form_id` was read to the end by the sync that started at `started`.
    async fn set_watermark(&self, form_id: &str, started: i64) -> Result<(), SyncError> {
        self.store
            .set_sync_watermark(form_id.to_string(), started)
            .await
            .map_err(|e| SyncError::Store(e.to_string()))
    }

    /// Saves one page of leads in one transaction; returns how many were new.
    async fn save(
        &self,
        page_id: &str,
        form_id: &str,
        leads: Vec<GraphLead>,
    ) -> Result<u64, SyncError> {
        let leads = leads
            .into_iter()
            .map(|g| NewLead {
                leadgen_id: g.id,
                page_id: Some(page_id.to_string()),
                form_id: g.form_id.or_else(|| Some(form_id.to_string())),
                ad_id: g.ad_id,
                adgroup_id: g.adgroup_id,
                campaign_id: g.campaign_id,
                created_time: g.created_time,
                field_data: g.field_data,
                source: LeadSource::Sync,
            })
            .collect();
        self.store
            .save_leads(leads)
            .await
            .map_err(|e| SyncError::Store(e.to_string()))
    }

    /// When a failed sync wants another try, if one does.
    fn retry_at(&self) -> Option<Instant> {
        *self.retry_at.lock().expect("retry lock")
    }
}

/// The `paging.next` links one listing has followed: at most `max` pages, and never the same
/// link twice (a `next` that points at its own page, or back at an earlier one, would
/// otherwise loop for ever, with the sync button waiting on it).
struct Pages {
    seen: HashSet<String>,
    max: usize,
}

impl Pages {
    fn new(max: usize) -> Pages {
        Pages {
            seen: HashSet::new(),
            max,
        }
    }

    /// `Ok` when `next` may be read; the first page was read before any `next`.
    fn follow(&mut self, next: &str) -> Result<(), GraphError> {
        let read = self.seen.len() + 1;
        if read >= self.max {
            return Err(GraphError::TooManyPages { pages: read });
        }
        if !self.seen.insert(page_key(next)) {
            return Err(GraphError::PagingLoop { pages: read });
        }
        Ok(())
    }
}

/// What tells one page of a listing from another: the URL without our credentials, its query
/// in a fixed order (the same page linked twice may list its parameters differently).
fn page_key(next: &str) -> String {
    let Ok(mut url) = url::Url::parse(next) else {
        return next.to_string();
    };
    let mut pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "access_token" && k != "appsecret_proof")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.sort();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    url.to_string()
}

/// Syncs at start-up (when asked) and every `every`. After a failure Meta may recover from
/// (rate limit, outage) the next try comes sooner, on the backoff the failed sync chose, whoever
/// started it; after a token or permission error it waits for the normal schedule, so a dead
/// token never turns into a tight loop. While Graph is paused it does not call at all.
pub async fn run_periodic(
    syncer: Arc<Syncer>,
    at_start: bool,
    every: Duration,
    shutdown: Shutdown,
) {
    if syncer.page_ids.is_empty() {
        log::warn!("sync with Meta is off: set META_PAGE_ID to catch up on leads webhooks miss");
        return;
    }
    let leadership = syncer.store.sync_leadership();
    let mut next = Instant::now() + if at_start { Duration::ZERO } else { every };
    loop {
        let due = syncer.retry_at().map_or(next, |r| r.min(next));
        tokio::select! {
            _ = shutdown.started() => return,
            _ = syncer.retry_changed.notified() => continue,
            _ = tokio::time::sleep_until(due) => {}
        }
        if shutdown.is_started() {
            return;
        }
        // Acted on: a sync that fails again sets a new one. (Left in place, a retry that is
        // refused because Graph is still paused would make this loop spin.)
        syncer.retry_at.lock().expect("retry lock").take();
        // Another instance leads: it syncs for everyone. Ask again next period, in case it
        // has gone.
        if !leadership.lead().await {
            next = Instant::now() + every;
            continue;
        }
        next = Instant::now()
            + match syncer.sync().await {
                Ok(_) => every,
                Err(SyncError::Paused(left)) => left,
                Err(SyncError::Interrupted) => return,
                // A retry, if any, is in `retry_at`; otherwise the normal schedule.
                Err(_) => every,
            };
    }
}
