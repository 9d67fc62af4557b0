//! Forwarding: every saved lead sent on to where the team works, with the promise ingest
//! makes: durable before anything is tried, retried, never silently dropped.
//!
//! - The store writes one delivery row per event and destination in the transaction that
//!   saves the lead (so `kill -9` loses none); the body is made then and sent byte for byte on
//!   every try.
//! - [`Forwarder`] claims due deliveries destination by destination, at most
//!   [`PER_DESTINATION`] in flight to each, so a slow or dead destination holds up neither
//!   the others nor ingest nor the stream (which never wait for it); a try ends delivered,
//!   retried on the [`backoff`] schedule, or set aside as dead after the retry period.
//! - [`webhook`] signs and sends a `POST`; [`email`] sends a mail through SMTP;
//!   [`destination`] checks what an admin asks for.

pub mod destination;
pub mod email;
pub mod webhook;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{broadcast, mpsc, Notify};

use crate::backoff::backoff;
use crate::config::Tuning;
use crate::live::{Hub, Signal};
use crate::model::forward::{event_body, Destination, DueDelivery, EventType, Outcome, Target};
use crate::model::{format_millis, now_ms, FieldData, Lead};
use crate::shutdown::Shutdown;
use crate::store::{Store, StoreError};
use email::Mailer;
use webhook::WebhookClient;

/// Tries in flight to one destination at most.
pub const PER_DESTINATION: usize = 4;
/// Tries in flight at most, all destinations together.
const IN_FLIGHT: usize = 64;
/// Outcomes are written down in groups, at most this long after the first of a group: one
/// commit (one fsync with SQLite) for many, so forwarding costs the lead saves next to nothing.
/// An outcome lost in a crash only means its delivery is sent again, with the same webhook-id.
const RECORD_EVERY: Duration = Duration::from_millis(500);
/// Most outcomes in one group.
const RECORD_MOST: usize = 256;

/// How one try ended.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub delivered: bool,
    /// The HTTP status or SMTP reply code, when there was an answer.
    pub status: Option<i64>,
    /// Why it failed (empty when delivered).
    pub error: String,
}

impl Attempt {
    pub fn delivered(status: u16) -> Attempt {
        Attempt {
            delivered: true,
            status: Some(status as i64),
            error: String::new(),
        }
    }

    pub fn failed(status: Option<i64>, error: impl Into<String>) -> Attempt {
        Attempt {
            delivered: false,
            status,
            error: error.into(),
        }
    }
}

/// Sends the deliveries. `wake` is shared with the routes that queue tests and retries.
pub struct Forwarder {
    pub store: Store,
    pub webhooks: WebhookClient,
    /// `None` without `SMTP_URL`: e-mail destinations cannot be added then.
    pub mailer: Option<Mailer>,
    pub smtp_configured: bool,
    pub wake: Arc<Notify>,
    pub tuning: Tuning,
    /// Every saved lead passes here; each wakes the forwarder.
    pub hub: Hub,
}

/// What this run holds: delivery id → its destination, and whether it is being sent (false:
/// its outcome is waiting to be written down; never claimed again meanwhile).
type Running = Arc<Mutex<HashMap<i64, (i64, bool)>>>;

/// An outcome to write down: the delivery, its tries so far, how the last ended.
type Recorded = (i64, i64, Outcome);

impl Forwarder {
    /// Runs until shutdown begins; deliveries in flight then stay pending in the database and
    /// are sent after the next start.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        match self.store.resume_deliveries().await {
            Ok(n) if n > 0 => log::info!("forwarding: {n} deliveries pending"),
            Ok(_) => {}
            Err(e) => log::error!("forwarding: could not read pending deliveries: {e}"),
        }
        tokio::spawn(wake_on_leads(
            self.hub.subscribe(),
            self.wake.clone(),
            shutdown.clone(),
        ));
        let running: Running = Arc::default();
        let (record, outcomes) = mpsc::unbounded_channel();
        tokio::spawn(self.clone().write_down(outcomes, running.clone()));
        // With several instances, deliveries are also made by the others: look every second.
        let idle = if self.store.is_shared() {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(60)
        };
        while !shutdown.is_started() {
            let wait = match self.claim_and_start(&running, &record).await {
                Ok(Some(next_due_ms)) => {
                    Duration::from_millis((next_due_ms - now_ms()).clamp(5, 60_000) as u64)
                        .min(idle)
                }
                Ok(None) => idle,
                Err(e) => {
                    log::error!("forwarding could not read its deliveries: {e}");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                _ = shutdown.started() => {}
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Starts what is due; returns when the next of the others is due.
    async fn claim_and_start(
        self: &Arc<Self>,
        running: &Running,
        record: &mpsc::UnboundedSender<Recorded>,
    ) -> Result<Option<i64>, StoreError> {
        let (busy, skip, free) = {
            let r = running.lock().expect("lock");
            let mut per: HashMap<i64, usize> = HashMap::new();
            for (d, _) in r.values().filter(|(_, sending)| *sending) {
                *per.entry(*d).or_default() += 1;
            }
            let sending: usize = per.values().sum();
            (
                per.into_iter().collect::<Vec<_>>(),
                r.keys().copied().collect::<Vec<_>>(),
                IN_FLIGHT.saturating_sub(sending),
            )
        };
        if free == 0 {
            return Ok(None); // a finishing try wakes us
        }
        let due = self
            .store
            .claim_deliveries(PER_DESTINATION, busy, skip, free)
            .await?;
        for d in due.deliveries {
            if running
                .lock()
                .expect("lock")
                .insert(d.id, (d.destination_id, true))
                .is_some()
            {
                continue;
            }
            let me = self.clone();
            let running = running.clone();
            let record = record.clone();
            tokio::spawn(async move {
                let attempt = me.attempt(&d).await;
                let outcome = me.outcome(&d, &attempt);
                if !attempt.delivered {
                    let target = d.target.describe();
                    log::warn!(
                        "forwarding: {target} failed (delivery {}, try {}): {}",
                        d.id,
                        d.attempts + 1,
                        attempt
                            .status
                            .map_or_else(|| "no answer".to_string(), |s| format!("status {s}"))
                    );
                }
                if let Some(r) = running.lock().expect("lock").get_mut(&d.id) {
                    r.1 = false;
                }
                let _ = record.send((d.id, d.attempts + 1, outcome));
                me.wake.notify_one();
            });
        }
        Ok(due.next_due_ms)
    }

    /// Writes outcomes down in groups (see [`RECORD_EVERY`]); a written delivery leaves
    /// `running`.
    async fn write_down(
        self: Arc<Self>,
        mut rx: mpsc::UnboundedReceiver<Recorded>,
        running: Running,
    ) {
        while let Some(first) = rx.recv().await {
            let mut group = vec![first];
            let until = tokio::time::Instant::now() + RECORD_EVERY;
            while group.len() < RECORD_MOST {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => break,
                    next = rx.recv() => match next {
                        Some(o) => group.push(o),
                        None => break,
                    },
                }
            }
            let ids: Vec<i64> = group.iter().map(|o| o.0).collect();
            if let Err(e) = self.store.record_deliveries(group).await {
                // Still pending in the database: sent again later, with the same webhook-id.
                log::error!(
                    "forwarding: could not write down {} outcomes: {e}",
                    ids.len()
                );
            }
            let mut r = running.lock().expect("lock");
            for id in ids {
                r.remove(&id);
            }
            drop(r);
            self.wake.notify_one();
        }
    }

    /// One try of `d`.
    async fn attempt(&self, d: &DueDelivery) -> Attempt {
        match &d.target {
            Target::Webhook { url } => match &d.secret {
                Some(secret) => {
                    self.webhooks
                        .send(url, secret.expose(), &d.webhook_id, &d.payload)
                        .await
                }
                None => Attempt::failed(None, "the webhook has no signing secret"),
            },
            Target::Email { to } => {
                let Some(mailer) = &self.mailer else {
                    return Attempt::failed(
                        None,
                        "SMTP_URL is not set: set it (and MAIL_FROM) and restart leadstream",
                    );
                };
                #[derive(Deserialize)]
                struct Body {
                    data: Lead,
                }
                match serde_json::from_str::<Body>(&d.payload) {
                    Ok(b) => mailer.send(to, &b.data, d.is_test()).await,
                    Err(_) => Attempt::failed(None, "the stored event is unreadable"),
                }
            }
        }
    }

    /// What to write down after `attempt`: delivered; retried on the schedule; or set aside
    /// when the retry period would be over (a test is tried once).
    fn outcome(&self, d: &DueDelivery, attempt: &Attempt) -> Outcome {
        let status = attempt.status;
        if attempt.delivered {
            return Outcome::Delivered { status };
        }
        let error = attempt.error.clone();
        let tries = d.attempts + 1;
        let t = &self.tuning;
        let next = now_ms() + backoff(tries, t.retry_base, t.retry_cap).as_millis() as i64;
        if d.is_test() || next > d.created_ms + t.retry_for.as_millis() as i64 {
            Outcome::SetAside { status, error }
        } else {
            Outcome::RetryLater {
                next_attempt_ms: next,
                status,
                error,
            }
        }
    }
}

/// Wakes the forwarder for every saved lead (its deliveries were committed with it).
async fn wake_on_leads(mut rx: broadcast::Receiver<Signal>, wake: Arc<Notify>, shutdown: Shutdown) {
    loop {
        let signal = tokio::select! {
            _ = shutdown.started() => return,
            s = rx.recv() => s,
        };
        match signal {
            Ok(Signal::Lead(_)) | Err(broadcast::error::RecvError::Lagged(_)) => wake.notify_one(),
            Ok(Signal::Close) | Err(broadcast::error::RecvError::Closed) => return,
            Ok(_) => {}
        }
    }
}

/// The body of a test: a made-up lead, so a receiver can be checked before a real one comes.
pub fn test_body() -> String {
    let field_data = vec![
        FieldData {
            name: "full_name".into(),
            values: vec!["Test Lead".into()],
        },
        FieldData {
            name: "email".into(),
            values: vec!["test.lead@example.com".into()],
        },
        FieldData {
            name: "phone_number".into(),
            values: vec!["+1 555 0100".into()],
        },
    ];
    let now = format_millis(chrono::Utc::now());
    let lead = Lead {
        id: 0,
        leadgen_id: "0".into(),
        page_id: None,
        form_id: None,
        form_name: Some("leadstream test".into()),
        ad_id: None,
        adgroup_id: None,
        campaign_id: None,
        created_time: now.clone(),
        received_at: now.clone(),
        fields: crate::model::flatten_fields(&field_data),
        field_data,
        source: "test".into(),
        status: crate::model::LeadStatus::New,
        owner: None,
        first_contact_at: None,
        updated_at: now.clone(),
        version: 1,
        notes_count: 0,
    };
    event_body(EventType::Test, &now, &lead)
}

/// A failing destination in words, for `/api/status` and the dashboard: "Webhook to
/// `https://crm.example.com` has failed 12 times since 14:02 UTC: HTTP 500".
pub fn failing_words(d: &Destination) -> Option<String> {
    let f = d.failing.as_ref()?;
    let since = chrono::DateTime::from_timestamp_millis(f.since_ms)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default();
    let times = if f.failures == 1 {
        "once".to_string()
    } else {
        format!("{} times", f.failures)
    };
    let why: String = f.last_error.chars().take(160).collect();
    Some(format!(
        "{} has failed {times} since {since}: {why}",
        d.target.describe()
    ))
}
