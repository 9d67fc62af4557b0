//! The inbox: a webhook delivery, as received, becomes a stored delivery and one pending job
//! per lead id, or is refused.
//!
//! The order is fixed, and each step is cheap before the next costs more: verify the HMAC on
//! the raw bytes → parse → persist in one transaction → wake the worker. Graph is never called
//! here; the answer to Meta waits only for the commit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Notify;

use super::payload::{self, Delivery, DeliveryKind};
use super::signature::{self, SignatureError};
use crate::config::Secret;
use crate::logging::escaped;
use crate::store::{Store, StoreError, Stored};

/// Why a delivery was not taken.
#[derive(Debug)]
pub enum Refusal {
    /// Missing, malformed or wrong `X-Hub-Signature-256`: nothing was stored.
    Signature(SignatureError),
    /// The delivery could not be committed; Meta will send it again.
    Store(StoreError),
}

pub struct Inbox {
    store: Store,
    /// Webhook HMAC key (from settings, or made up by the demo).
    app_secret: Secret,
    /// Wakes the worker when a delivery added jobs.
    wake: Arc<Notify>,
}

impl Inbox {
    pub fn new(store: Store, app_secret: Secret, wake: Arc<Notify>) -> Inbox {
        Inbox {
            store,
            app_secret,
            wake,
        }
    }

    /// Takes one delivery: `raw` is the body exactly as received, `signature` the
    /// `X-Hub-Signature-256` header (`None` when absent). A signed body that holds no usable
    /// lead is still stored raw and taken: Meta cannot fix it by sending it again.
    pub async fn receive(&self, raw: Bytes, signature: Option<&str>) -> Result<Stored, Refusal> {
        if let Err(e) = signature::verify(self.app_secret.expose().as_bytes(), &raw, signature) {
            log_bad_signature(e.describe(), raw.len());
            return Err(Refusal::Signature(e));
        }
        let len = raw.len();
        let Delivery {
            kind,
            leads,
            messaging_events,
            notes,
        } = payload::parse(&raw);
        let lead_count = leads.len();
        let note = (!notes.is_empty()).then(|| notes.join("; "));
        let stored = self
            .store
            .store_delivery(raw, kind.as_str(), note.clone(), leads)
            .await
            .map_err(Refusal::Store)?;
        if stored.new_jobs > 0 {
            self.wake.notify_one();
        }
        match kind {
            DeliveryKind::Unusable => log::warn!(
                "webhook #{}: {len} bytes kept raw, not usable: {}",
                stored.delivery_id,
                escaped(note.unwrap_or_default())
            ),
            _ => log::info!(
                "webhook #{}: {len} bytes, {} ({lead_count} leads, {} new, {messaging_events} messaging events)",
                stored.delivery_id,
                kind.as_str(),
                stored.new_jobs
            ),
        }
        Ok(stored)
    }
}

/// Bad signatures are logged at most once a second (with a count of the rest), so a flood
/// of forged requests cannot flood the log.
fn log_bad_signature(why: &str, len: usize) {
    static LAST_SECOND: AtomicU64 = AtomicU64::new(0);
    static SUPPRESSED: AtomicU64 = AtomicU64::new(0);
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    // Seconds on the monotonic clock (1-based, so the very first refusal is logged), and
    // fetch_max rather than swap: a thread that read the clock just before a second turned
    // must not set it back and earn another line for the same second.
    let now = START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs()
        + 1;
    if LAST_SECOND.fetch_max(now, Ordering::Relaxed) < now {
        let more = SUPPRESSED.swap(0, Ordering::Relaxed);
        if more > 0 {
            log::warn!(
                "webhook refused: {why} ({len} bytes); {more} more refused since the last line"
            );
        } else {
            log::warn!("webhook refused: {why} ({len} bytes)");
        }
    } else {
        SUPPRESSED.fetch_add(1, Ordering::Relaxed);
    }
}
