//! The hub: one broadcast channel that carries every committed lead (with its frame, made
//! once), the keep-alive beat of one clock shared by every stream, word that sessions have
//! ended, and the closing signal at shutdown.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::broadcast;
use tokio::time::{Instant, MissedTickBehavior};

use super::frames::{chunk, erased_frames, lead_frame};
use crate::auth::EndedSink;
use crate::model::Lead;
use crate::shutdown::Shutdown;
use crate::store::LeadSink;

/// A saved lead and its ready-made SSE frame, bare and as an HTTP/1.1 chunk.
#[derive(Debug)]
pub struct LeadEvent {
    pub id: i64,
    pub lead: Lead,
    pub frame: Bytes,
    /// `frame` as one chunk, for the chunked streams the fan-out writes.
    pub chunk: Bytes,
}

/// Leads that were erased, as frames ready to write.
#[derive(Debug)]
pub struct ErasedEvent {
    pub ids: Vec<i64>,
    pub frame: Bytes,
    /// `frame` as one chunk, for the chunked streams the fan-out writes.
    pub chunk: Bytes,
}

/// What the channel carries to every stream.
#[derive(Clone, Debug)]
pub enum Signal {
    Lead(Arc<LeadEvent>),
    /// Leads erased: open pages drop them.
    Erased(Arc<ErasedEvent>),
    /// Time for a keep-alive comment.
    Beat,
    /// One or more sessions have ended: a stream opened with one ends (`live::LeadStream`).
    SessionsEnded,
    /// The server is shutting down: streams end.
    Close,
}

impl Signal {
    pub fn lead(&self) -> Option<&LeadEvent> {
        match self {
            Signal::Lead(ev) => Some(ev),
            _ => None,
        }
    }
}

/// The sending side of the fan-out.
#[derive(Clone, Debug)]
pub struct Hub {
    tx: broadcast::Sender<Signal>,
    /// The clock that sends `Beat` and `Close`; started by the first stream.
    clock: Arc<OnceLock<()>>,
    /// The id of the newest lead published, set before it is sent.
    last_published: Arc<AtomicI64>,
    /// Streams open now (the channel also has the fan-out's receiver).
    pub(super) open_streams: Arc<AtomicUsize>,
}

impl Hub {
    pub fn new(capacity: usize) -> Hub {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Hub {
            tx,
            clock: Arc::new(OnceLock::new()),
            last_published: Arc::new(AtomicI64::new(0)),
            open_streams: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Called by the database writer only (through [`LeadSink`]), after the lead's commit.
    pub fn publish(&self, lead: Lead) {
        log::info!(
            "lead {} saved as #{} (form {}, via {})",
            lead.leadgen_id,
            lead.id,
            lead.form_id.as_deref().unwrap_or("?"),
            lead.source
        );
        let frame = lead_frame(&lead);
        let chunk = chunk(&frame);
        self.last_published.fetch_max(lead.id, Ordering::AcqRel);
        // From the save's own clock reading (taken just before its commit) to now.
        if let Ok(saved) = chrono::DateTime::parse_from_rfc3339(&lead.received_at) {
            let since = chrono::Utc::now().signed_duration_since(saved);
            crate::metrics::published(since.to_std().unwrap_or_default());
        }
        // No receivers is fine: nobody has a dashboard open.
        let _ = self.tx.send(Signal::Lead(Arc::new(LeadEvent {
            id: lead.id,
            lead,
            frame,
            chunk,
        })));
    }

    /// Tells every open stream that the leads `ids` were erased (after the erasure's commit).
    pub fn erased(&self, ids: Vec<i64>) {
        if ids.is_empty() {
            return;
        }
        let frame = erased_frames(&ids);
        let chunk = chunk(&frame);
        let _ = self
            .tx
            .send(Signal::Erased(Arc::new(ErasedEvent { ids, frame, chunk })));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Signal> {
        self.tx.subscribe()
    }

    /// The newest lead id published so far (0 before the first).
    pub fn last_published(&self) -> i64 {
        self.last_published.load(Ordering::Acquire)
    }

    /// Open streams.
    pub fn subscribers(&self) -> usize {
        self.open_streams.load(Ordering::Relaxed)
    }

    /// Starts the hub's clock once: a `Beat` every `every`, and `Close` when shutdown
    /// begins. The first caller's settings win, which is fine because every stream of an app
    /// has the same period and the same shutdown.
    ///
    /// One task for all streams costs less than a timer and a shutdown waiter per connection.
    /// It holds only a weak handle on the channel, so it ends with the hub.
    pub(super) fn start_clock(&self, every: Duration, shutdown: Shutdown) {
        self.clock.get_or_init(|| {
            let tx = self.tx.downgrade();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval_at(Instant::now() + every, every);
                tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
                loop {
                    let signal = tokio::select! {
                        _ = tick.tick() => Signal::Beat,
                        _ = shutdown.started() => Signal::Close,
                    };
                    let Some(tx) = tx.upgrade() else { break };
                    let _ = tx.send(signal.clone());
                    if matches!(signal, Signal::Close) {
                        break;
                    }
                }
            });
        });
    }
}

/// The database writer's sink: every committed lead goes out here, once, in id order.
impl LeadSink for Hub {
    fn committed(&self, leads: Vec<Lead>) {
        for lead in leads {
            self.publish(lead);
        }
    }

    fn erased(&self, ids: Vec<i64>) {
        Hub::erased(self, ids);
    }
}

/// Sessions' sink: a stream whose session ended learns it on the channel it waits on anyway.
impl EndedSink for Hub {
    fn sessions_ended(&self) {
        let _ = self.tx.send(Signal::SessionsEnded);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NewLead;
    use crate::store::Store;

    #[tokio::test]
    async fn a_burst_of_concurrent_saves_is_published_once_each_in_id_order() {
        let dir = tempfile::tempdir().unwrap();
        let hub = Hub::new(1024);
        let mut rx = hub.subscribe();
        let store = Store::open(&dir.path().join("t.db"), hub).unwrap();
        let saves =
            (0..300).map(|i| store.save_lead(NewLead::sample(&format!("{}", 1000 + i), "Ada")));
        let saved = futures_util::future::join_all(saves).await;
        assert!(saved.iter().all(|s| matches!(s, Ok(Some(_)))));
        let mut last = 0;
        for _ in 0..300 {
            let signal = rx.recv().await.unwrap();
            let ev = signal
                .lead()
                .expect("only leads: no stream started the clock");
            assert!(
                ev.id > last,
                "published out of order: {} after {last}",
                ev.id
            );
            last = ev.id;
        }
        assert_eq!(store.count().await.unwrap(), (300, last));
    }
}
