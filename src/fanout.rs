//! Fan-out lanes: streams that are caught up are written by a few lane tasks, one per runtime
//! worker, instead of each by its own task.
//!
//! Why: with a task per stream, every lead wakes 10,000 tasks, and each one polls its stream,
//! receives from the channel and registers as a waiter again around its one `write`. A lane
//! loops over its members and calls `try_write` on each socket: the same syscall without the
//! rest. A member's own task meanwhile only waits for its client to leave or for the lane to
//! hand the stream back (`server`).
//!
//! A lane hands a member back (evicts it) when a write would block or was partial (a slow
//! client), when the lane itself lagged behind the channel, and at shutdown. The member's task
//! writes what the lane could not, then carries on with its `live::LeadStream`, which catches
//! up from the channel or the database as always, and joins again once it is caught up.
//!
//! Order and completeness rest on the join rule: a stream may join only if the lane has not
//! yet sent a lead the client does not have (`last_sent >= lane's newest id`). The lane gets
//! every lead after that from the channel, in id order, and skips those the client has.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::live::{Hub, Signal, KEEPALIVE};

/// The lanes of one app.
pub struct Lanes {
    lanes: Vec<mpsc::UnboundedSender<Command>>,
    next_lane: AtomicUsize,
    next_key: AtomicU64,
}

/// Why and where a lane handed a stream back.
#[derive(Debug)]
pub struct Eviction {
    /// Bytes of a frame the lane could only partly write; the task writes them first.
    pub rest: Bytes,
    /// The newest lead id the client has been sent (in full, once `rest` is written).
    pub last_sent: i64,
    /// Shutdown: the stream ends.
    pub closed: bool,
}

/// A stream in a lane.
pub struct Membership {
    lane: mpsc::UnboundedSender<Command>,
    key: u64,
    /// Resolves when the lane hands the stream back (an error: the lane is gone).
    pub evicted: oneshot::Receiver<Eviction>,
}

impl Membership {
    /// The client left: the lane forgets the socket.
    pub fn leave(self) {
        let _ = self.lane.send(Command::Leave { key: self.key });
    }
}

enum Command {
    Join {
        key: u64,
        member: Member,
        accepted: oneshot::Sender<bool>,
    },
    Leave {
        key: u64,
    },
}

impl Lanes {
    /// Starts `count` lanes, each subscribed to `hub` before this returns. They hand every
    /// stream back as closed, and end, when `shutdown` turns true.
    pub fn start(hub: &Hub, count: usize, shutdown: watch::Receiver<bool>) -> Lanes {
        let lanes = (0..count.max(1))
            .map(|_| {
                let (tx, commands) = mpsc::unbounded_channel();
                let signals = hub.subscribe();
                // Read after subscribing: a lead published before is at most this id, one
                // published after is on `signals` (see the join rule).
                let newest = hub.last_published();
                tokio::spawn(run_lane(
                    signals,
                    commands,
                    newest,
                    hub.clone(),
                    shutdown.clone(),
                ));
                tx
            })
            .collect();
        Lanes {
            lanes,
            next_lane: AtomicUsize::new(0),
            next_key: AtomicU64::new(0),
        }
    }

    /// Offers a caught-up stream (its client has every lead up to `last_sent`) to a lane.
    /// `None`: the lane has already sent a newer lead (catch up and try again), or it is gone.
    pub async fn join(&self, socket: Arc<TcpStream>, last_sent: i64) -> Option<Membership> {
        let lane = &self.lanes[self.next_lane.fetch_add(1, Ordering::Relaxed) % self.lanes.len()];
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let (evict_tx, evicted) = oneshot::channel();
        let (accepted_tx, accepted) = oneshot::channel();
        let member = Member {
            fd: socket.as_raw_fd(),
            _socket: socket,
            last_sent,
            evicted: Some(evict_tx),
        };
        lane.send(Command::Join {
            key,
            member,
            accepted: accepted_tx,
        })
        .ok()?;
        accepted.await.ok()?.then(|| Membership {
            lane: lane.clone(),
            key,
            evicted,
        })
    }
}

struct Member {
    /// Never read: holding it keeps `fd` open for as long as the lane writes to it.
    _socket: Arc<TcpStream>,
    fd: RawFd,
    last_sent: i64,
    evicted: Option<oneshot::Sender<Eviction>>,
}

impl Member {
    /// Writes `frame` (lead `id`, or a comment) if the socket takes it at once; false when the
    /// member has been handed back to its task.
    fn offer(&mut self, frame: &Bytes, id: Option<i64>) -> bool {
        if id.is_some_and(|id| id <= self.last_sent) {
            return true;
        }
        match send_now(self.fd, frame) {
            Ok(n) => {
                if let Some(id) = id {
                    self.last_sent = id;
                }
                if n == frame.len() {
                    return true;
                }
                self.evict(frame.slice(n..), false);
                false
            }
            // Would block (a slow client), or broken (its task finds out when it writes).
            Err(e) => {
                if e.kind() != io::ErrorKind::WouldBlock {
                    log::debug!("stream write failed: {e}");
                }
                self.evict(Bytes::new(), false);
                false
            }
        }
    }

    fn evict(&mut self, rest: Bytes, closed: bool) {
        if let Some(tx) = self.evicted.take() {
            let _ = tx.send(Eviction {
                rest,
                last_sent: self.last_sent,
                closed,
            });
        }
    }
}

/// One `send` that never waits, straight on the socket's descriptor.
///
/// Why not `TcpStream::try_write`: that first reads the stream's readiness from tokio's
/// registration, a separate allocation per socket; across 10,000 sockets that is a cache miss
/// per write, and `perf` showed it as the lane's largest user-space cost. Skipping it is safe:
/// a would-block here hands the stream back, and its task's own write then learns the socket
/// is full and waits for readiness as usual.
fn send_now(fd: RawFd, frame: &[u8]) -> io::Result<usize> {
    // SAFETY: `frame` is valid for `frame.len()` bytes; `fd` is open as long as the member
    // holds its `Arc<TcpStream>`, which outlives every call.
    let n = unsafe {
        libc::send(
            fd,
            frame.as_ptr().cast(),
            frame.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

async fn run_lane(
    mut signals: broadcast::Receiver<Signal>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    mut newest: i64,
    hub: Hub,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut members: HashMap<u64, Member> = HashMap::new();
    let keepalive = Bytes::from_static(KEEPALIVE);
    loop {
        tokio::select! {
            // Shutdown, then signals: a join waits until the lead in hand is out. Shutdown is
            // watched here too, not only as `Close` on the channel: a lane that lagged past
            // `Close` would otherwise run on, with nobody told to end.
            biased;
            _ = shutdown.wait_for(|stop| *stop) => {
                for (_, mut m) in members.drain() {
                    m.evict(Bytes::new(), true);
                }
                return;
            }
            signal = signals.recv() => match signal {
                Ok(Signal::Lead(ev)) => {
                    newest = newest.max(ev.id);
                    members.retain(|_, m| m.offer(&ev.frame, Some(ev.id)));
                }
                Ok(Signal::Beat) => members.retain(|_, m| m.offer(&keepalive, None)),
                Ok(Signal::Close) | Err(broadcast::error::RecvError::Closed) => {
                    for (_, mut m) in members.drain() {
                        m.evict(Bytes::new(), true);
                    }
                    return;
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    // Leads went by unsent: every member catches up by itself, and joins again
                    // only once it has at least the newest lead published so far.
                    log::debug!("fan-out lane lagged by {missed}; handing back {} streams", members.len());
                    newest = newest.max(hub.last_published());
                    for (_, mut m) in members.drain() {
                        m.evict(Bytes::new(), false);
                    }
                }
            },
            command = commands.recv() => match command {
                Some(Command::Join { key, member, accepted }) => {
                    let ok = member.last_sent >= newest;
                    if ok {
                        members.insert(key, member);
                    }
                    let _ = accepted.send(ok);
                }
                Some(Command::Leave { key }) => {
                    members.remove(&key);
                }
                None => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::net::TcpListener;

    use super::*;
    use crate::model::Lead;

    fn lead(id: i64) -> Lead {
        Lead {
            id,
            leadgen_id: format!("{}", 1_000_000 + id),
            page_id: None,
            form_id: None,
            form_name: None,
            ad_id: None,
            adgroup_id: None,
            campaign_id: None,
            created_time: "2026-11-28T12:00:00Z".into(),
            received_at: "2026-11-28T12:00:00.000Z".into(),
            fields: Default::default(),
            field_data: Vec::new(),
            source: "webhook".into(),
        }
    }

    /// One lane; it runs until the returned sender turns true or is dropped.
    fn start(hub: &Hub) -> (watch::Sender<bool>, Lanes) {
        let (stop, shutdown) = watch::channel(false);
        (stop, Lanes::start(hub, 1, shutdown))
    }

    /// The eviction of `member`; panics unless the lane sends one within 2 s.
    async fn handed_back(member: Membership) -> Eviction {
        tokio::time::timeout(Duration::from_secs(2), member.evicted)
            .await
            .expect("handed back")
            .expect("by the lane")
    }

    /// A connected pair: the server's end (for the lane) and the client's.
    async fn pair() -> (Arc<TcpStream>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Arc::new(server), client)
    }

    /// The lead ids in everything the client can read within a moment.
    async fn ids_received(client: &mut TcpStream) -> Vec<i64> {
        use tokio::io::AsyncReadExt;
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(200), client.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(got)
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("id: "))
            .map(|id| id.parse().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn members_get_each_lead_once_and_skip_the_ones_they_have() {
        let hub = Hub::new(16);
        let (_stop, lanes) = start(&hub);
        let (a, mut client_a) = pair().await;
        let (b, mut client_b) = pair().await;
        let _a = lanes.join(a, 0).await.expect("a joins");
        // B already has lead 2 (say, from its replay).
        let _b = lanes.join(b, 2).await.expect("b joins");
        for id in 1..=3 {
            hub.publish(lead(id));
        }
        assert_eq!(ids_received(&mut client_a).await, [1, 2, 3]);
        assert_eq!(ids_received(&mut client_b).await, [3]);
    }

    #[tokio::test]
    async fn a_stream_behind_the_lane_may_not_join() {
        let hub = Hub::new(16);
        let (_stop, lanes) = start(&hub);
        hub.publish(lead(1));
        let (socket, mut client) = pair().await;
        // The lane has sent lead 1 (to nobody); joining with only lead 0 would skip it.
        assert!(lanes.join(socket.clone(), 0).await.is_none());
        let _member = lanes.join(socket, 1).await.expect("caught up: joins");
        hub.publish(lead(2));
        assert_eq!(ids_received(&mut client).await, [2]);
    }

    #[tokio::test]
    async fn a_full_socket_is_handed_back_without_the_lead() {
        let hub = Hub::new(16);
        let (_stop, lanes) = start(&hub);
        let (socket, _client) = pair().await;
        // The client reads nothing: fill its socket until the kernel takes no more.
        let chunk = vec![b':'; 65536];
        while socket.try_write(&chunk).is_ok() {}
        let member = lanes.join(socket, 0).await.expect("joins");
        hub.publish(lead(1));
        let eviction = handed_back(member).await;
        assert_eq!(eviction.last_sent, 0, "lead 1 was not sent");
        assert!(eviction.rest.is_empty());
        assert!(!eviction.closed);
    }

    #[tokio::test]
    async fn shutdown_hands_every_member_back_as_closed_and_ends_the_lane() {
        let hub = Hub::new(16);
        let (stop, lanes) = start(&hub);
        let (socket, _client) = pair().await;
        let member = lanes.join(socket.clone(), 0).await.expect("joins");
        stop.send_replace(true);
        let eviction = handed_back(member).await;
        assert!(eviction.closed);
        assert!(lanes.join(socket, 0).await.is_none(), "the lane has ended");
    }

    #[tokio::test]
    async fn a_lane_that_lags_hands_every_member_back_and_admits_only_the_caught_up() {
        let hub = Hub::new(2);
        let (_stop, lanes) = start(&hub);
        let (socket, _client) = pair().await;
        let member = lanes.join(socket.clone(), 0).await.expect("joins");
        // Published without yielding: the lane cannot keep up with a channel of two.
        for id in 1..=5 {
            hub.publish(lead(id));
        }
        let eviction = handed_back(member).await;
        assert!(eviction.last_sent < 5);
        assert!(lanes.join(socket.clone(), 4).await.is_none());
        assert!(lanes.join(socket, 5).await.is_some());
    }
}
