//! The feed: the only publish point in PostgreSQL mode.
//!
//! Why not the writer, as with SQLite: instance A could publish its event #12 before B's #11
//! is visible, and every stream on A would then skip #11 for good. So each instance reads the
//! committed events (new leads, changes and erasures) back, in id order, from a cursor:
//! `id > cursor ORDER BY id LIMIT 500`, and hands them to its sink. The ordering lock every
//! event-writing transaction takes makes committed ids grow in commit order, so nothing the
//! cursor passed can appear later.
//!
//! It reads when woken: by a NOTIFY from any instance's event-writing transaction (on its own
//! connection, which LISTENs), by a nudge from this instance's writer, and once a second as a
//! safety net. The cursor is the truth, never a notification: when the listening connection
//! drops, the feed connects again (with a growing pause), LISTENs, and reads from the cursor.
//!
//! The same connection hears sessions end on any instance and passes them on.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use futures_util::StreamExt;
use tokio::sync::{broadcast, mpsc, watch, Notify};
use tokio_postgres::{AsyncMessage, NoTls};

use super::events::{event_from_row, events_after_sql};
use super::{pool_error, CHANNEL_LEADS, CHANNEL_SESSIONS};
use crate::backoff::backoff;
use crate::store::{LeadSink, StoreError, ALL_SESSIONS};

/// Events read per query.
const PAGE: i64 = 500;
/// The safety net: a read this often even without a notification.
const TICK: Duration = Duration::from_secs(1);

pub(super) struct Feed<S> {
    direct: tokio_postgres::Config,
    sink: S,
    /// The newest event id handed to the sink.
    cursor: i64,
    nudge: Arc<Notify>,
    session_ends: broadcast::Sender<String>,
    stop: watch::Receiver<()>,
}

impl<S: LeadSink> Feed<S> {
    /// A feed that starts after the newest event committed now: older ones are the streams'
    /// replay, read from the database.
    pub async fn start(
        pool: &Pool,
        direct: tokio_postgres::Config,
        sink: S,
        nudge: Arc<Notify>,
        session_ends: broadcast::Sender<String>,
        stop: watch::Receiver<()>,
    ) -> Result<Feed<S>, StoreError> {
        let client = pool.get().await.map_err(pool_error)?;
        let cursor: i64 = client
            .query_one("SELECT coalesce(max(id), 0) FROM events", &[])
            .await?
            .get(0);
        Ok(Feed {
            direct,
            sink,
            cursor,
            nudge,
            session_ends,
            stop,
        })
    }

    /// Runs until the store is dropped.
    pub async fn run(mut self) {
        let mut stop = self.stop.clone();
        let mut failures = 0;
        loop {
            let ended = tokio::select! {
                ended = self.listen(&mut failures) => ended,
                _ = stop.changed() => return,
            };
            if let Err(e) = ended {
                failures += 1;
                let wait = backoff(failures, Duration::from_millis(100), Duration::from_secs(2));
                if failures == 1 {
                    log::warn!("lead feed: {e}; connecting again");
                } else {
                    log::debug!("lead feed: {e}; again in {wait:?}");
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }

    /// One connection's life: LISTEN, read from the cursor, then read on every wake-up until
    /// the connection fails.
    async fn listen(&mut self, failures: &mut i64) -> Result<(), StoreError> {
        let (client, mut connection) = self
            .direct
            .connect(NoTls)
            .await
            .map_err(super::unreachable)?;
        // The connection's messages: notifications go to `notes`; its end closes `notes`.
        let (tx, mut notes) = mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => {
                        if tx
                            .send((n.channel().to_string(), n.payload().to_string()))
                            .is_err()
                        {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        log::debug!("lead feed connection: {e}");
                        break;
                    }
                }
            }
        });
        let _abort = AbortOnDrop(driver);
        client
            .batch_execute(&format!(
                // The read below is planned for every cursor (see `CUSTOM_PLAN`).
                "SET plan_cache_mode = force_custom_plan; \
                 LISTEN {CHANNEL_LEADS}; LISTEN {CHANNEL_SESSIONS}"
            ))
            .await?;
        if *failures > 0 {
            log::info!("lead feed: connected again");
            // Session ends may have gone by unheard while there was no connection.
            let _ = self.session_ends.send(ALL_SESSIONS.to_string());
        }
        *failures = 0;
        let read = client.prepare(&events_after_sql(&PAGE.to_string())).await?;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.catch_up(&client, &read).await?;
            tokio::select! {
                note = notes.recv() => match note {
                    Some((channel, payload)) if channel == CHANNEL_SESSIONS => {
                        let _ = self.session_ends.send(payload);
                    }
                    Some(_) => {}
                    None => return Err(super::unreachable("the listening connection closed")),
                },
                _ = self.nudge.notified() => {}
                _ = tick.tick() => {}
            }
        }
    }

    /// Hands every event above the cursor to the sink, page by page.
    async fn catch_up(
        &mut self,
        client: &tokio_postgres::Client,
        read: &tokio_postgres::Statement,
    ) -> Result<(), StoreError> {
        loop {
            let rows = client.query(read, &[&self.cursor]).await?;
            let full = rows.len() as i64 == PAGE;
            let events = rows
                .iter()
                .map(event_from_row)
                .collect::<Result<Vec<_>, _>>()?;
            let Some(last) = events.last() else {
                return Ok(());
            };
            self.cursor = last.id;
            self.sink.committed(events);
            if !full {
                return Ok(());
            }
        }
    }
}

/// Stops the connection's driver with the feed's loop.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
