//! One open `/api/stream`: the hello, then replayed and live frames, in id order, once each,
//! and `logout` when the session it was opened with ends.
//!
//! Ordering and completeness rest on one fact: the writer publishes a lead only after its
//! COMMIT. A stream therefore subscribes *first* and reads the database *second*: whatever that
//! read does not see is committed later, hence published later, hence waiting on the receiver.
//! From there the stream replays from the database by id, then forwards the channel, skipping
//! ids it has already sent. A stream that lags behind the channel goes back to the database
//! the same way. So a client sees every lead, in id order, once, whether it connected before,
//! during or after a burst, and however slowly it reads.
//!
//! An idle stream waits on one thing only, its receiver: the channel carries the leads, the
//! keep-alive beat of one clock shared by every stream, and the closing signal at shutdown. So
//! a lead wakes each stream once and costs it one receive, with no timer or other waiter to
//! cancel and re-register. A caught-up stream that the socket writer serves is not even woken: a
//! fan-out writer writes the frame for it ([`LeadStream::caught_up`] says when it may join).

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::broadcast;

use super::frames::{lead_frame, refresh_frame, HELLO, KEEPALIVE, LOGOUT};
use super::hub::{Hub, Signal};
use super::Counted;
use crate::auth::SessionEnd;
use crate::shutdown::Shutdown;
use crate::store::Store;

/// Leads read from the database per replay query, and sent as one chunk. It bounds what a
/// catching-up client holds in memory at once (the rows and their frames), and a query by
/// primary key is cheap enough to repeat.
const REPLAY_BATCH: usize = 100;

/// Settings of one stream.
#[derive(Clone)]
pub struct StreamParams {
    /// Time between comment lines (at most 15 s; docs/stream.md).
    pub keepalive: Duration,
    /// A lagging client farther behind than this gets `refresh` instead of a replay.
    pub max_replay: i64,
    /// A stream's client that takes no bytes for this long is closed (socket writer only).
    pub write_timeout: Duration,
}

enum Phase {
    /// Sends `refresh` (the client is ahead of this database), then goes live.
    Refresh,
    /// Reading the database for ids above `last_sent`.
    Replay,
    Live,
    Done,
}

/// Everything one open stream holds between two frames.
struct State {
    _counted: Counted,
    rx: broadcast::Receiver<Signal>,
    store: Store,
    /// Read, never waited on: `Close` on the channel is the wake-up.
    shutdown: Shutdown,
    max_replay: i64,
    /// The newest id this client has (sent by us, or its `Last-Event-ID`).
    last_sent: i64,
    phase: Phase,
    /// The session the stream was opened with (`None`: the bearer token). Read before every
    /// frame; `Signal::SessionsEnded` is the wake-up.
    session: Option<SessionEnd>,
}

/// One open stream: the hello, then replayed and live frames.
pub struct LeadStream {
    hello_sent: bool,
    state: State,
}

impl LeadStream {
    /// `resume_from`: the client's `Last-Event-ID`; `None` starts live. The starting point is
    /// fixed before this returns, so every lead committed after the response headers went out
    /// reaches the client. Never fails: if the database cannot be read, the body is just the
    /// hello (with its `retry:`), and the client reconnects; a non-200 would make EventSource
    /// give up.
    pub async fn open(
        hub: &Hub,
        store: Store,
        resume_from: Option<i64>,
        shutdown: Shutdown,
        params: StreamParams,
        session: Option<SessionEnd>,
    ) -> LeadStream {
        let mut state = State::open(hub, store, resume_from, shutdown, params).await;
        state.session = session;
        LeadStream {
            hello_sent: false,
            state,
        }
    }

    /// The next bytes for the client; `None` once the stream is over.
    pub async fn next(&mut self) -> Option<Bytes> {
        if !self.hello_sent {
            self.hello_sent = true;
            return Some(Bytes::from_static(HELLO));
        }
        next_frame(&mut self.state).await
    }

    /// The newest lead id the client has, if nothing is waiting to be sent to it: the stream
    /// is live and its receiver is empty. From there, someone else may send it the leads
    /// above that id (`fanout`), as long as they report back with [`Self::sent_elsewhere`].
    pub fn caught_up(&self) -> Option<i64> {
        let s = &self.state;
        (self.hello_sent && matches!(s.phase, Phase::Live) && s.rx.is_empty() && !s.ended())
            .then_some(s.last_sent)
    }

    /// The end flag of the session the stream was opened with, if any.
    pub fn session(&self) -> Option<&SessionEnd> {
        self.state.session.as_ref()
    }

    /// The whole stream as a response body (for hyper).
    pub fn into_body(self) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
        futures_util::stream::unfold(self, |mut s| async move {
            let frame = s.next().await?;
            Some((Ok(frame), s))
        })
    }

    /// The client got every lead up to `id` by another way; they are skipped here.
    pub fn sent_elsewhere(&mut self, id: i64) {
        self.state.last_sent = self.state.last_sent.max(id);
    }
}

impl State {
    async fn open(
        hub: &Hub,
        store: Store,
        resume_from: Option<i64>,
        shutdown: Shutdown,
        params: StreamParams,
    ) -> State {
        // Subscribe before reading: see the module comment.
        let rx = hub.subscribe();
        hub.start_clock(params.keepalive, shutdown.clone());
        let (last_sent, phase) = match store.max_lead_id().await {
            Err(e) => {
                log::warn!("cannot open a stream: {e}");
                (0, Phase::Done)
            }
            Ok(newest) => match resume_from {
                None => (newest, Phase::Live),
                // Ids are never reused, so a client ahead of us knows another database (restored
                // from a backup, or replaced): its list is not ours, and waiting for ids above its
                // own would hide every new lead until then.
                Some(after) if after > newest => (newest, Phase::Refresh),
                Some(after) if after == newest => (after, Phase::Live),
                Some(after) => (after, Phase::Replay),
            },
        };
        State {
            _counted: Counted::new(&hub.open_streams),
            rx,
            store,
            shutdown,
            max_replay: params.max_replay,
            last_sent,
            phase,
            session: None,
        }
    }

    fn ended(&self) -> bool {
        self.session.as_ref().is_some_and(SessionEnd::is_ended)
    }
}

async fn next_frame(s: &mut State) -> Option<Bytes> {
    loop {
        // Whatever was due, a stream whose session has ended says so and ends.
        if s.ended() && !matches!(s.phase, Phase::Done) {
            s.phase = Phase::Done;
            return Some(Bytes::from_static(LOGOUT));
        }
        match s.phase {
            Phase::Done => return None,
            Phase::Refresh => {
                s.phase = Phase::Live;
                return Some(refresh_frame(s.last_sent));
            }
            Phase::Replay => {
                if s.shutdown.is_started() {
                    s.phase = Phase::Done;
                    continue;
                }
                let after = s.last_sent;
                // Boxed: only a replaying stream pays for this future, not every idle one.
                let read = Box::pin(s.store.leads_after(after, REPLAY_BATCH));
                let batch = match read.await {
                    Ok(b) => b,
                    Err(e) => {
                        // Ending the body makes EventSource reconnect with Last-Event-ID;
                        // better than a silent gap.
                        log::warn!("stream replay failed: {e}");
                        s.phase = Phase::Done;
                        continue;
                    }
                };
                // A short batch is the end of the table as of this read; anything committed
                // later is published later, so it is waiting on `rx` (or makes it lag again).
                if batch.len() < REPLAY_BATCH {
                    s.phase = Phase::Live;
                }
                let Some(last) = batch.last() else { continue };
                s.last_sent = last.id;
                let mut buf = Vec::new();
                for lead in &batch {
                    buf.extend_from_slice(&lead_frame(lead));
                }
                return Some(Bytes::from(buf));
            }
            Phase::Live => {
                // A stream subscribed after the clock sent `Close` sees the flag instead.
                if s.shutdown.is_started() {
                    s.phase = Phase::Done;
                    continue;
                }
                match s.rx.recv().await {
                    // Lower ids were replayed already (or predate a stream without
                    // Last-Event-ID).
                    Ok(Signal::Lead(ev)) if ev.id <= s.last_sent => {}
                    Ok(Signal::Lead(ev)) => {
                        s.last_sent = ev.id;
                        return Some(ev.frame.clone());
                    }
                    // Whether or not this stream sent those leads: the page may hold them from
                    // its list.
                    Ok(Signal::Erased(ev)) => return Some(ev.frame.clone()),
                    // Only when nothing else is queued: a stream handed back by the fan-out
                    // may find a channel's worth of old beats in its receiver.
                    Ok(Signal::Beat) if s.rx.is_empty() => {
                        return Some(Bytes::from_static(KEEPALIVE))
                    }
                    // Looked at before the next receive, at the top of the loop.
                    Ok(Signal::Beat) | Ok(Signal::SessionsEnded) => {}
                    Ok(Signal::Close) | Err(broadcast::error::RecvError::Closed) => {
                        s.phase = Phase::Done
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        // The channel dropped `missed` signals for this client; the database
                        // has every lead. `rx` now points at the oldest signal it still holds.
                        let newest = match Box::pin(s.store.max_lead_id()).await {
                            Ok(n) => n,
                            Err(e) => {
                                log::warn!("stream catch-up failed: {e}");
                                s.phase = Phase::Done;
                                continue;
                            }
                        };
                        let behind = newest - s.last_sent;
                        log::debug!("stream client lagged by {missed}; {behind} leads behind");
                        if behind > s.max_replay {
                            // Hopelessly behind: the page reloads its list, which holds
                            // every lead up to `newest`; later ones come live as usual.
                            s.last_sent = newest;
                            return Some(refresh_frame(newest));
                        }
                        s.phase = Phase::Replay;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;

    use futures_util::StreamExt;

    use super::*;
    use crate::model::NewLead;
    use crate::shutdown::ShutdownSwitch;

    /// What a client can tell apart in a stream.
    #[derive(Debug, PartialEq)]
    enum Seen {
        Hello,
        KeepAlive,
        Lead(i64),
        Refresh(i64),
        Logout,
    }

    type Body = Pin<Box<dyn Stream<Item = Result<Bytes, Infallible>> + Send>>;

    struct Fixture {
        _dir: tempfile::TempDir,
        hub: Hub,
        store: Store,
        stop: ShutdownSwitch,
        shutdown: Shutdown,
    }

    impl Fixture {
        fn new(capacity: usize) -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let hub = Hub::new(capacity);
            let store = Store::open(&dir.path().join("t.db"), hub.clone()).unwrap();
            let (stop, shutdown) = Shutdown::new();
            Fixture {
                _dir: dir,
                hub,
                store,
                stop,
                shutdown,
            }
        }

        async fn open(&self, resume: Option<i64>, max_replay: i64, keepalive_ms: u64) -> Body {
            self.open_for(resume, max_replay, keepalive_ms, None).await
        }

        async fn open_for(
            &self,
            resume: Option<i64>,
            max_replay: i64,
            keepalive_ms: u64,
            session: Option<SessionEnd>,
        ) -> Body {
            let params = StreamParams {
                keepalive: Duration::from_millis(keepalive_ms),
                max_replay,
                write_timeout: Duration::from_secs(30),
            };
            Box::pin(
                LeadStream::open(
                    &self.hub,
                    self.store.clone(),
                    resume,
                    self.shutdown.clone(),
                    params,
                    session,
                )
                .await
                .into_body(),
            )
        }

        /// Saves leads `first..first + n` concurrently, so the writer commits them in groups
        /// and publishes them in bursts, as a busy server does.
        async fn save(&self, first: usize, n: usize) {
            let saves = (first..first + n).map(|i| {
                self.store.save_lead(NewLead::sample(
                    &format!("{}", 1_000_000 + i),
                    &format!("Person {i}"),
                ))
            });
            for saved in futures_util::future::join_all(saves).await {
                assert!(saved.unwrap().is_some());
            }
        }
    }

    fn parse(frame: &[u8]) -> Vec<Seen> {
        // The hello and the keep-alive are lines of their own, with no blank line after them:
        // a blank line would make some clients dispatch an empty event.
        if frame == HELLO {
            return vec![Seen::Hello];
        }
        if frame == KEEPALIVE {
            return vec![Seen::KeepAlive];
        }
        let text = std::str::from_utf8(frame).unwrap();
        assert!(text.ends_with("\n\n"), "a frame is whole events: {text:?}");
        text.split_terminator("\n\n")
            .map(|block| {
                let id = || {
                    let line = block.lines().next().unwrap();
                    line.strip_prefix("id: ").unwrap().parse().unwrap()
                };
                if block.contains("\nevent: lead\n") {
                    let id = id();
                    let data = block
                        .lines()
                        .nth(2)
                        .unwrap()
                        .strip_prefix("data: ")
                        .unwrap();
                    let lead: serde_json::Value = serde_json::from_str(data).unwrap();
                    assert_eq!(lead["id"], id, "the event id is the lead's row id");
                    Seen::Lead(id)
                } else if block.contains("\nevent: refresh\n") {
                    Seen::Refresh(id())
                } else if block == "event: logout\ndata: {}" {
                    Seen::Logout
                } else {
                    panic!("unexpected block {block:?}")
                }
            })
            .collect()
    }

    /// Reads until `n` events other than keep-alives arrived; panics if they take over 5 s.
    async fn read(body: &mut Body, n: usize) -> Vec<Seen> {
        let mut out = Vec::new();
        while out.len() < n {
            let frame = tokio::time::timeout(Duration::from_secs(5), body.next())
                .await
                .unwrap_or_else(|_| panic!("got {out:?}, wanted {n} events"))
                .unwrap_or_else(|| panic!("stream ended after {out:?}"))
                .unwrap();
            out.extend(parse(&frame).into_iter().filter(|s| *s != Seen::KeepAlive));
        }
        assert_eq!(out.len(), n, "more events than expected: {out:?}");
        out
    }

    /// True when nothing but keep-alives arrives for a moment.
    async fn quiet(body: &mut Body) -> bool {
        let window = tokio::time::sleep(Duration::from_millis(150));
        tokio::pin!(window);
        loop {
            tokio::select! {
                _ = &mut window => return true,
                frame = body.next() => match frame {
                    Some(Ok(f)) if parse(&f).iter().all(|s| *s == Seen::KeepAlive) => {}
                    _ => return false,
                },
            }
        }
    }

    fn leads(ids: std::ops::RangeInclusive<i64>) -> Vec<Seen> {
        ids.map(Seen::Lead).collect()
    }

    #[tokio::test]
    async fn a_stream_that_falls_behind_the_channel_is_caught_up_from_the_database_in_order() {
        let f = Fixture::new(2);
        let mut body = f.open(None, 10_000, 60_000).await;
        assert_eq!(read(&mut body, 1).await, [Seen::Hello]);
        // Not polled while 1,100 leads go out through a channel of two: it must lag, and the
        // catch-up has to cross many replay batches, the last of them full.
        f.save(0, 1_100).await;
        assert_eq!(read(&mut body, 1_100).await, leads(1..=1_100));
        f.save(1_100, 1).await;
        assert_eq!(read(&mut body, 1).await, [Seen::Lead(1_101)]);
        assert!(quiet(&mut body).await);
    }

    #[tokio::test]
    async fn a_hopelessly_behind_stream_is_told_to_refresh_and_then_continues_live() {
        let f = Fixture::new(2);
        let mut body = f.open(None, 5, 60_000).await;
        assert_eq!(read(&mut body, 1).await, [Seen::Hello]);
        f.save(0, 20).await;
        assert_eq!(read(&mut body, 1).await, [Seen::Refresh(20)]);
        f.save(20, 1).await;
        assert_eq!(read(&mut body, 1).await, [Seen::Lead(21)]);
        assert!(quiet(&mut body).await);
    }

    #[tokio::test]
    async fn resuming_replays_exactly_the_later_leads_then_goes_live() {
        let f = Fixture::new(64);
        f.save(0, 10).await;
        let mut body = f.open(Some(3), 10_000, 60_000).await;
        assert_eq!(read(&mut body, 1).await, [Seen::Hello]);
        // Published while the stream is open but before it read its replay: it is both in the
        // database and on the channel, and must come once.
        f.save(10, 1).await;
        assert_eq!(read(&mut body, 8).await, leads(4..=11));
        f.save(11, 2).await;
        assert_eq!(read(&mut body, 2).await, leads(12..=13));
        assert!(quiet(&mut body).await);
    }

    #[tokio::test]
    async fn a_stream_without_last_event_id_starts_with_the_next_lead() {
        let f = Fixture::new(64);
        f.save(0, 5).await;
        let mut body = f.open(None, 10_000, 60_000).await;
        f.save(5, 1).await;
        assert_eq!(read(&mut body, 2).await, [Seen::Hello, Seen::Lead(6)]);
        assert!(quiet(&mut body).await);
    }

    #[tokio::test]
    async fn a_client_ahead_of_the_database_is_told_to_refresh_and_then_gets_new_leads() {
        let f = Fixture::new(64);
        f.save(0, 3).await;
        // Its Last-Event-ID came from another database: waiting for ids above 99 would hide
        // the next 96 leads.
        let mut body = f.open(Some(99), 10_000, 60_000).await;
        assert_eq!(read(&mut body, 2).await, [Seen::Hello, Seen::Refresh(3)]);
        f.save(3, 1).await;
        assert_eq!(read(&mut body, 1).await, [Seen::Lead(4)]);
    }

    #[tokio::test]
    async fn streams_end_at_shutdown_even_when_opened_after_it_began() {
        let f = Fixture::new(64);
        let mut before = f.open(None, 10_000, 60_000).await;
        assert_eq!(read(&mut before, 1).await, [Seen::Hello]);
        f.stop.start();
        let ended = tokio::time::timeout(Duration::from_secs(2), before.next()).await;
        assert!(
            matches!(ended, Ok(None)),
            "open stream did not end: {ended:?}"
        );

        // `changed()` would never fire for this one: the value was already true.
        let mut after = f.open(Some(0), 10_000, 60_000).await;
        assert_eq!(read(&mut after, 1).await, [Seen::Hello]);
        let ended = tokio::time::timeout(Duration::from_secs(2), after.next()).await;
        assert!(
            matches!(ended, Ok(None)),
            "late stream did not end: {ended:?}"
        );
    }

    #[tokio::test]
    async fn a_stream_whose_session_ends_says_logout_and_ends_while_others_go_on() {
        let f = Fixture::new(64);
        let session = SessionEnd::default();
        let mut mine = f
            .open_for(None, 10_000, 60_000, Some(session.clone()))
            .await;
        let mut bearer = f.open(None, 10_000, 60_000).await;
        assert_eq!(read(&mut mine, 1).await, [Seen::Hello]);
        assert_eq!(read(&mut bearer, 1).await, [Seen::Hello]);
        session.raise();
        crate::auth::EndedSink::sessions_ended(&f.hub);
        assert_eq!(read(&mut mine, 1).await, [Seen::Logout]);
        let ended = tokio::time::timeout(Duration::from_secs(2), mine.next()).await;
        assert!(matches!(ended, Ok(None)), "the stream ended: {ended:?}");
        f.save(0, 1).await;
        assert_eq!(read(&mut bearer, 1).await, [Seen::Lead(1)]);

        // One opened with a session that has already ended says so at once.
        let mut late = f.open_for(None, 10_000, 60_000, Some(session)).await;
        assert_eq!(read(&mut late, 2).await, [Seen::Hello, Seen::Logout]);
    }

    #[tokio::test]
    async fn beats_that_queued_up_while_a_stream_was_not_read_give_one_comment() {
        let f = Fixture::new(64);
        let mut body = f.open(None, 10_000, 30).await;
        assert_eq!(read(&mut body, 1).await, [Seen::Hello]);
        // About 20 beats go by unread (as while the fan-out wrote for this stream).
        tokio::time::sleep(Duration::from_millis(600)).await;
        let mut comments = 0;
        let window = tokio::time::sleep(Duration::from_millis(60));
        tokio::pin!(window);
        loop {
            tokio::select! {
                _ = &mut window => break,
                frame = body.next() => {
                    assert_eq!(parse(&frame.unwrap().unwrap()), [Seen::KeepAlive]);
                    comments += 1;
                }
            }
        }
        // One for the backlog, then at most one per 30 ms.
        assert!((1..=4).contains(&comments), "{comments} comments");
    }

    #[tokio::test]
    async fn idle_streams_get_a_comment_every_keepalive_period() {
        let f = Fixture::new(64);
        let mut a = f.open(None, 10_000, 40).await;
        let mut b = f.open(None, 10_000, 40).await;
        for body in [&mut a, &mut b] {
            let mut seen = Vec::new();
            while seen.len() < 3 {
                let frame = tokio::time::timeout(Duration::from_secs(2), body.next())
                    .await
                    .expect("a keep-alive within 2 s")
                    .unwrap()
                    .unwrap();
                seen.extend(parse(&frame));
            }
            assert_eq!(seen, [Seen::Hello, Seen::KeepAlive, Seen::KeepAlive]);
        }
    }
}
