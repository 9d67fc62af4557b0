//! The worker: turns each pending job into a lead by asking Graph, on the retry schedule
//! (about 1 s, 2 s, 4 s … capped, for the retry period), or sets it aside as a dead letter.
//!
//! A job is a row in `jobs`, so it survives a crash: the worker reads due rows, and on start
//! every pending job is made due at once. The worker never holds a job in memory only.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore};

use crate::backoff::backoff;
use crate::config::Tuning;
use crate::logging::escaped;
use crate::meta::graph::{ErrorClass, GraphClient, GraphError};
use crate::meta::status::Status;
use crate::model::{now_ms, LeadSource, NewLead};
use crate::shutdown::Shutdown;
use crate::store::{FormInfo, Job, Store, StoreError};

/// Everything the worker needs. `wake` is shared with the inbox and the routes that wake it.
pub struct Worker {
    pub store: Store,
    pub graph: GraphClient,
    pub status: Arc<Status>,
    pub wake: Arc<Notify>,
    pub tuning: Tuning,
    pub source: LeadSource,
}

/// What one run of the worker keeps in memory, shared with the job tasks it starts. Losing it
/// (a crash) loses nothing: the jobs themselves are rows.
#[derive(Default)]
struct Running {
    /// Jobs being worked on, or held back after their outcome could not be written, so a
    /// claim never starts one twice.
    in_flight: Mutex<HashSet<String>>,
    /// Form id → when its name was last asked of Graph (see [`Worker::learn_form_name`]).
    forms_asked: Mutex<HashMap<String, Instant>>,
    /// Rate-limit answers in a row, whichever jobs got them: the pause grows with the streak,
    /// so a Meta that keeps saying "slow down" is asked less and less often.
    rate_limit_streak: AtomicI64,
}

/// A failed try, reduced to what the schedule and the dead-letter row need.
struct Failure {
    class: ErrorClass,
    message: String,
    code: Option<i64>,
}

impl From<&GraphError> for Failure {
    fn from(e: &GraphError) -> Self {
        Failure {
            class: e.class(),
            message: e.to_string(),
            code: e.code(),
        }
    }
}

/// A form whose name could not be learnt is asked again after this long, not for every lead.
const FORM_ASK_AGAIN: Duration = Duration::from_secs(3600);

impl Worker {
    /// Runs until shutdown begins. Jobs in flight at that moment stay pending in the
    /// database and are resumed by the next start.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        // Resume at once after a restart: whatever was waiting for a retry is due now. The
        // wait was only a courtesy to Graph; after a restart the person wants their leads.
        let resumed = self.store.resume_jobs().await;
        match resumed {
            Ok(n) if n > 0 => log::info!("resuming {n} pending lead jobs"),
            Ok(_) => {}
            Err(e) => log::error!("could not resume pending jobs: {e}"),
        }
        let slots = Arc::new(Semaphore::new(self.tuning.worker_concurrency.max(1)));
        let running = Arc::new(Running::default());
        loop {
            if shutdown.is_started() {
                break;
            }
            // Nothing fetched could be saved: leave Graph alone until a restart.
            let wait = if self.store.file_gone() {
                Duration::from_secs(60)
            } else {
                match self.claim_and_start(&slots, &running).await {
                    Ok(wait) => wait,
                    Err(e) => {
                        log::error!("worker could not read jobs: {e}");
                        Duration::from_secs(1)
                    }
                }
            };
            // Woken early by a delivery, a finished job or a shutdown; a wake while Graph is
            // paused only re-reads the pause and sleeps again, it never calls Graph.
            tokio::select! {
                _ = shutdown.started() => {}
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        log::debug!("worker stopped");
    }

    /// Starts due jobs in free slots; returns how long to sleep before looking again.
    async fn claim_and_start(
        self: &Arc<Self>,
        slots: &Arc<Semaphore>,
        running: &Arc<Running>,
    ) -> Result<Duration, StoreError> {
        // With several instances, jobs also arrive through the others (and are left behind by
        // one that dies): look again every second. One process wakes on its own deliveries.
        let idle = if self.store.is_shared() {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(60)
        };
        let paused = self.status.graph_paused_for();
        if !paused.is_zero() {
            return Ok(paused);
        }
        let free = slots.available_permits();
        if free == 0 {
            // A finishing job wakes us.
            return Ok(idle);
        }
        let skip: Vec<String> = running
            .in_flight
            .lock()
            .expect("lock")
            .iter()
            .cloned()
            .collect();
        let due = self.store.claim_jobs(free, skip).await?;
        for job in due.jobs {
            // The slot first: a job marked in flight without a task would never run again
            // (until a restart).
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                break;
            };
            if !running
                .in_flight
                .lock()
                .expect("lock")
                .insert(job.leadgen_id.clone())
            {
                continue;
            }
            let me = self.clone();
            let running = running.clone();
            tokio::spawn(async move {
                let id = job.leadgen_id.clone();
                let hold = me.process(job, &running).await;
                drop(permit);
                if let Some(hold) = hold {
                    // The outcome is not in the database, so the row still says "due now":
                    // keep it claimed for a while instead of asking Graph again at once.
                    tokio::time::sleep(hold).await;
                }
                running.in_flight.lock().expect("lock").remove(&id);
                me.wake.notify_one();
            });
        }
        Ok(match due.next_due_ms {
            Some(at) => Duration::from_millis((at - now_ms()).clamp(0, 60_000) as u64),
            None => idle,
        })
    }

    /// One try of one job. Returns how long to keep the job claimed when its outcome could
    /// not be written (the database is failing); `None` when the row says what happens next.
    async fn process(&self, job: Job, running: &Running) -> Option<Duration> {
        let Job {
            leadgen_id,
            page_id,
            form_id,
            ad_id,
            adgroup_id,
            attempts,
            first_seen_ms,
        } = job;
        let failure = match self.graph.lead(&leadgen_id).await {
            Ok(g) => {
                self.status.graph_ok();
                running.rate_limit_streak.store(0, Ordering::Relaxed);
                let form_id = g.form_id.or(form_id);
                if let Some(form_id) = &form_id {
                    self.learn_form_name(form_id, page_id.as_deref(), running)
                        .await;
                }
                let lead = NewLead {
                    leadgen_id: leadgen_id.clone(),
                    page_id,
                    form_id,
                    ad_id: g.ad_id.or(ad_id),
                    adgroup_id: g.adgroup_id.or(adgroup_id),
                    campaign_id: g.campaign_id,
                    created_time: g.created_time,
                    field_data: g.field_data,
                    source: self.source,
                };
                // The saved lead is logged once, where it is published (live::Hub::publish).
                match self.store.save_lead(lead).await {
                    Ok(Some(_)) => return None,
                    Ok(None) => {
                        log::info!("lead {leadgen_id} was already saved");
                        return None;
                    }
                    // The job row is still pending: it is fetched and saved again later.
                    Err(e) => Failure {
                        class: ErrorClass::Transient,
                        message: format!("fetched from Graph but not saved: {e}"),
                        code: None,
                    },
                }
            }
            Err(err) => {
                self.status.graph_failed(&err);
                // Refusals of calls that were already in flight when the pause began belong to
                // the same episode: they must not stretch the pause again.
                if err.class() == ErrorClass::RateLimited
                    && self.status.graph_paused_for().is_zero()
                {
                    let streak = running.rate_limit_streak.fetch_add(1, Ordering::Relaxed) + 1;
                    let pause = backoff(streak, self.tuning.retry_base, self.tuning.retry_cap);
                    log::warn!(
                        "Graph rate limit: no Graph calls for {:.1} s",
                        pause.as_secs_f64()
                    );
                    self.status.pause_graph(pause);
                }
                Failure::from(&err)
            }
        };
        match self
            .reschedule(&leadgen_id, attempts, first_seen_ms, failure)
            .await
        {
            Ok(()) => None,
            Err(e) => {
                log::error!("could not record the failed try of lead {leadgen_id}: {e}");
                Some(backoff(
                    attempts + 1,
                    self.tuning.retry_base,
                    self.tuning.retry_cap,
                ))
            }
        }
    }

    /// Records a failed try: another try later, or a dead letter.
    async fn reschedule(
        &self,
        leadgen_id: &str,
        attempts_before: i64,
        first_seen_ms: i64,
        failure: Failure,
    ) -> Result<(), StoreError> {
        let attempts = attempts_before + 1;
        let now = now_ms();
        let expired = now - first_seen_ms > self.tuning.retry_for.as_millis() as i64;
        let Failure {
            class,
            message,
            code,
        } = failure;
        let id = leadgen_id.to_string();
        if class.is_retried() && !expired {
            let wait = backoff(attempts, self.tuning.retry_base, self.tuning.retry_cap);
            log::warn!(
                "lead {id}: try {attempts} failed ({}); next try in {:.1} s",
                escaped(&message),
                wait.as_secs_f64()
            );
            let next = now + wait.as_millis() as i64;
            self.store
                .retry_job_later(id, attempts, next, message, code)
                .await
        } else {
            let why = if class.is_retried() {
                "gave up after retrying for the whole retry period"
            } else {
                "not retried"
            };
            log::warn!(
                "lead {id}: dead letter after {attempts} tries ({why}): {}",
                escaped(&message)
            );
            self.store.set_job_aside(id, attempts, message, code).await
        }
    }

    /// Looks up a form's name, so the dashboard can say "Spring form". Best effort: a failure
    /// never holds up the lead, and a form is asked about at most once an hour (per process),
    /// not once per lead: 1000 leads of a form whose name Graph will not give cost one call.
    async fn learn_form_name(&self, form_id: &str, page_id: Option<&str>, running: &Running) {
        {
            let mut asked = running.forms_asked.lock().expect("lock");
            if asked
                .get(form_id)
                .is_some_and(|at| at.elapsed() < FORM_ASK_AGAIN)
            {
                return;
            }
            // Marked before the call, so concurrent leads of a new form ask once between them.
            asked.insert(form_id.to_string(), Instant::now());
        }
        let known = matches!(self.store.form_name(form_id.to_string()).await, Ok(Some(_)));
        if known {
            return;
        }
        match self.graph.form(form_id).await {
            Ok(form) => {
                let info = FormInfo {
                    form_id: form.id,
                    name: form.name,
                    status: form.status,
                };
                let _ = self
                    .store
                    .remember_forms(page_id.map(str::to_string), vec![info])
                    .await;
            }
            Err(e) => log::debug!("form {form_id}: name lookup failed: {}", escaped(e)),
        }
    }
}
