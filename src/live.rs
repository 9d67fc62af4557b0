//! The live stream: a broadcast channel fed by the database writer (the one publish point),
//! and one SSE body per open `/api/stream`.
//!
//! Each lead's SSE frame is serialised once, when it is published, and shared by every
//! subscriber as the same `Bytes` (a reference count, not a copy).
//!
//! Ordering and completeness: a client subscribes *first* and then reads the database for
//! anything after the id it already has, skipping ids it has sent; a client that lags behind
//! the channel is caught up from the database by id. So a client sees every lead, in id order,
//! once, whether it connected before, during or after a burst.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::{broadcast, watch};
use tokio::time::{Instant, MissedTickBehavior};

use crate::model::Lead;
use crate::store::{self, Store};

/// A saved lead and its ready-made SSE frame.
#[derive(Debug)]
pub struct LeadEvent {
    pub id: i64,
    pub lead: Lead,
    pub frame: Bytes,
}

/// The sending side of the fan-out.
#[derive(Clone, Debug)]
pub struct Hub {
    tx: broadcast::Sender<Arc<LeadEvent>>,
}

impl Hub {
    pub fn new(capacity: usize) -> Hub {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Hub { tx }
    }

    /// Called by the database writer only, after the lead's commit.
    pub fn publish(&self, lead: Lead) {
        log::info!(
            "lead {} saved as #{} (form {}, via {})",
            lead.leadgen_id,
            lead.id,
            lead.form_id.as_deref().unwrap_or("?"),
            lead.source
        );
        let frame = lead_frame(&lead);
        // No receivers is fine: nobody has a dashboard open.
        let _ = self.tx.send(Arc::new(LeadEvent {
            id: lead.id,
            lead,
            frame,
        }));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LeadEvent>> {
        self.tx.subscribe()
    }

    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}

/// `id: 42\nevent: lead\ndata: {…}\n\n`. JSON has no raw newlines, so one `data:` line.
pub fn lead_frame(lead: &Lead) -> Bytes {
    let json = serde_json::to_string(lead).expect("a lead serialises");
    Bytes::from(format!("id: {}\nevent: lead\ndata: {json}\n\n", lead.id))
}

/// Told to a client that is too far behind to replay: reload the list instead.
fn refresh_frame(last_id: i64) -> Bytes {
    Bytes::from(format!(
        "id: {last_id}\nevent: refresh\ndata: {{\"last_id\":{last_id}}}\n\n"
    ))
}

/// Ask EventSource to reconnect after 2 s, and say hello so proxies flush headers at once.
const HELLO: &[u8] = b"retry: 2000\n: leadstream\n\n";
const KEEPALIVE: &[u8] = b": keep-alive\n\n";
/// Leads read from the database per replay query.
const REPLAY_BATCH: usize = 500;

/// Settings of one stream.
#[derive(Clone)]
pub struct StreamParams {
    pub keepalive: Duration,
    /// Farther behind than this, a client gets `refresh` instead of a replay.
    pub max_replay: i64,
}

enum Phase {
    Hello,
    /// Reading the database for ids above `last_sent`.
    Replay,
    Live,
    Done,
}

struct State {
    rx: broadcast::Receiver<Arc<LeadEvent>>,
    store: Store,
    shutdown: watch::Receiver<bool>,
    params: StreamParams,
    last_sent: i64,
    phase: Phase,
    keepalive: tokio::time::Interval,
}

/// The body of one `/api/stream` response.
///
/// `resume_from`: the client's `Last-Event-ID`; `None` starts live (from the newest lead).
pub async fn lead_stream(
    hub: &Hub,
    store: Store,
    resume_from: Option<i64>,
    shutdown: watch::Receiver<bool>,
    params: StreamParams,
) -> Result<impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static, store::StoreError> {
    // Without Last-Event-ID: read the newest id *before* subscribing, then replay from it, so
    // a lead committed in between is replayed instead of lost. With it: subscribe, then replay.
    let last_sent = match resume_from {
        Some(id) => id.max(0),
        None => store.read(store::max_lead_id).await?,
    };
    let rx = hub.subscribe();
    let mut keepalive =
        tokio::time::interval_at(Instant::now() + params.keepalive, params.keepalive);
    keepalive.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let state = State {
        rx,
        store,
        shutdown,
        params,
        last_sent,
        phase: Phase::Hello,
        keepalive,
    };
    Ok(futures_util::stream::unfold(state, |mut s| async move {
        let frame = next_frame(&mut s).await?;
        Some((Ok(frame), s))
    }))
}

async fn next_frame(s: &mut State) -> Option<Bytes> {
    loop {
        match s.phase {
            Phase::Done => return None,
            Phase::Hello => {
                s.phase = Phase::Replay;
                return Some(Bytes::from_static(HELLO));
            }
            Phase::Replay => {
                if *s.shutdown.borrow() {
                    s.phase = Phase::Done;
                    continue;
                }
                let after = s.last_sent;
                let batch = match s
                    .store
                    .read(move |c| store::leads_after(c, after, REPLAY_BATCH))
                    .await
                {
                    Ok(b) => b,
                    Err(e) => {
                        // Ending the body makes EventSource reconnect with Last-Event-ID;
                        // better than a silent gap.
                        log::warn!("stream replay failed: {e}");
                        s.phase = Phase::Done;
                        continue;
                    }
                };
                if batch.is_empty() {
                    s.phase = Phase::Live;
                    continue;
                }
                let mut buf = Vec::new();
                for lead in &batch {
                    buf.extend_from_slice(&lead_frame(lead));
                }
                s.last_sent = batch.last().map(|l| l.id).unwrap_or(after);
                return Some(Bytes::from(buf));
            }
            Phase::Live => {
                tokio::select! {
                    biased;
                    _ = s.shutdown.changed() => {
                        s.phase = Phase::Done;
                    }
                    msg = s.rx.recv() => match msg {
                        Ok(ev) => {
                            if ev.id > s.last_sent {
                                s.last_sent = ev.id;
                                s.keepalive.reset();
                                return Some(ev.frame.clone());
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            let behind = s.store.read(store::max_lead_id).await.unwrap_or(0) - s.last_sent;
                            log::debug!("stream client lagged by {missed}; {behind} leads behind");
                            if behind > s.params.max_replay {
                                // Hopelessly behind: tell the page to reload its list and
                                // carry on live from the newest lead.
                                s.last_sent += behind;
                                return Some(refresh_frame(s.last_sent));
                            }
                            s.phase = Phase::Replay;
                        }
                        Err(broadcast::error::RecvError::Closed) => s.phase = Phase::Done,
                    },
                    _ = s.keepalive.tick() => return Some(Bytes::from_static(KEEPALIVE)),
                }
            }
        }
    }
}
