//! The fan-out: streams that are caught up get their leads from a few writer threads that loop
//! over many sockets, instead of each from its own task.
//!
//! Why: with a task per stream, every lead wakes 10,000 tasks, and each one polls its stream,
//! receives from the channel and registers as a waiter again around its one `write`. Here a
//! non-blocking `send` per socket is all that is left. A member's own task meanwhile only waits
//! for its client to leave or for the fan-out to hand the stream back (`server`).
//!
//! Members sit in blocks of [`BLOCK`]. For each lead (or keep-alive beat) the dispatcher task
//! opens a round, and every writer thread claims blocks from it one at a time until none are
//! left. Why shared blocks, not a fixed share of the members per writer: on loopback one core
//! is regularly slower than the other during an event (interrupts, the clients' own work), and
//! with fixed shares the whole event waited for the slower half, 54 against 70 ms in a 10,000
//! stream event. Claiming blocks, the faster writer simply takes more of them.
//!
//! Why threads, not tasks: a round is 10,000 `send`s, tens of milliseconds of system time.
//! On the runtime's workers it would stall every other request for that long, and a task woken
//! from a worker waits in that worker's own slot, so a second writer would not start until the
//! first finished. Threads are placed on free cores by the kernel and leave the workers alone.
//!
//! A member's socket is the fan-out's while it is a member: the stream's task moves the write
//! half of its connection in on joining, and gets it back with the eviction, so only one of
//! them can write at a time, and nobody else holds it.
//!
//! The fan-out hands a member back (evicts it) when a write would block or was partial (a slow
//! client), when the dispatcher lagged behind the channel, when the member's session ended,
//! and at shutdown. The member's task writes what the fan-out could not, then carries on with
//! its `live::LeadStream`, which catches up from the channel or the database as always (or
//! says `logout`), and joins again once it is caught up.
//!
//! Members are chunked HTTP/1.1 streams: each lead's chunk is made once by the hub, and the
//! keep-alive chunk is a constant.
//!
//! Order and completeness rest on two rules. The dispatcher starts a round only once the
//! previous one is complete, so every member gets the frames in channel order. And a stream
//! may join only if the fan-out has not yet sent a lead the client does not have (`last_sent >=
//! newest`): it gets every lead after that, in id order, and skips those it has.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{broadcast, mpsc, oneshot, Notify};

use super::frames::KEEPALIVE_CHUNK;
use super::hub::{Hub, Signal};
use crate::auth::SessionEnd;
use crate::shutdown::Shutdown;

/// Members per block: small enough that the writers finish within a block's time of each
/// other, large enough that claiming (one atomic add and one uncontended lock) is noise.
pub const BLOCK: usize = 64;

/// The fan-out of one app: a handle to its dispatcher.
pub struct Fanout {
    commands: mpsc::UnboundedSender<Command>,
    next_key: AtomicU64,
}

/// Why and where the fan-out handed a stream back, with its socket.
#[derive(Debug)]
pub struct Eviction {
    /// The stream's socket, to write to again.
    pub write: OwnedWriteHalf,
    /// Bytes of a chunk the fan-out could only partly write; the task writes them first.
    pub rest: Bytes,
    /// The newest lead id the client has been sent (in full, once `rest` is written).
    pub last_sent: i64,
    /// Shutdown: the stream ends.
    pub closed: bool,
}

/// A stream in the fan-out.
pub struct Membership {
    commands: mpsc::UnboundedSender<Command>,
    key: u64,
    block: usize,
    /// Resolves when the fan-out hands the stream back (an error: the fan-out is gone).
    pub evicted: oneshot::Receiver<Eviction>,
}

impl Membership {
    /// The client left: the fan-out forgets the socket.
    pub fn leave(self) {
        let _ = self.commands.send(Command::Leave {
            key: self.key,
            block: self.block,
        });
    }
}

enum Command {
    Join {
        member: Member,
        /// The block the member went into; or, refused, the socket back.
        accepted: oneshot::Sender<Result<usize, OwnedWriteHalf>>,
    },
    Leave {
        key: u64,
        block: usize,
    },
}

impl Fanout {
    /// Starts the dispatcher, subscribed to `hub` before this returns, and `writers` writer
    /// threads. Every stream is handed back as closed, and all of it ends, when shutdown
    /// begins.
    pub fn start(hub: &Hub, writers: usize, shutdown: Shutdown) -> Fanout {
        let signals = hub.subscribe();
        // Read after subscribing: a lead published before is at most this id, one published
        // after is on `signals` (see the join rule).
        let newest = hub.last_published();
        let writers = (0..writers.max(1))
            .map(|i| {
                let (tx, rounds) = std::sync::mpsc::channel::<Arc<Round>>();
                std::thread::Builder::new()
                    .name(format!("fanout-{i}"))
                    .spawn(move || {
                        // Ends when the dispatcher drops its sender.
                        while let Ok(round) = rounds.recv() {
                            round.work();
                        }
                    })
                    .expect("cannot start a fan-out thread");
                tx
            })
            .collect();
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let dispatcher = Dispatcher {
            blocks: Arc::new(Vec::new()),
            room_from: 0,
            writers,
            newest,
        };
        tokio::spawn(dispatcher.run(signals, commands_rx, hub.clone(), shutdown));
        Fanout {
            commands,
            next_key: AtomicU64::new(0),
        }
    }

    /// Offers a caught-up chunked stream (its client has every lead up to `last_sent`) and
    /// its socket. Refused, the socket comes back: the fan-out has already sent a newer lead
    /// (catch up and try again), its session has ended, or the fan-out has ended.
    /// `Err(None)`: the fan-out ended while the offer was pending, and the socket with it.
    pub async fn join(
        &self,
        write: OwnedWriteHalf,
        last_sent: i64,
        session: Option<SessionEnd>,
    ) -> Result<Membership, Option<OwnedWriteHalf>> {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let (evict_tx, evicted) = oneshot::channel();
        let (accepted_tx, accepted) = oneshot::channel();
        let member = Member {
            key,
            fd: write.as_ref().as_raw_fd(),
            write: Some(write),
            last_sent,
            session,
            evicted: Some(evict_tx),
        };
        let join = Command::Join {
            member,
            accepted: accepted_tx,
        };
        if let Err(mpsc::error::SendError(Command::Join { member, .. })) = self.commands.send(join)
        {
            return Err(member.write);
        }
        let block = accepted.await.map_err(|_| None)?.map_err(Some)?;
        Ok(Membership {
            commands: self.commands.clone(),
            key,
            block,
            evicted,
        })
    }
}

struct Member {
    key: u64,
    /// The stream's socket, the fan-out's while it is a member; sent back with the eviction
    /// (`None` only in the moment between the eviction and the block dropping the member).
    write: Option<OwnedWriteHalf>,
    /// `write`'s descriptor, kept beside it to skip a pointer chase per send (`send_now`).
    fd: RawFd,
    last_sent: i64,
    session: Option<SessionEnd>,
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

    /// Hands the stream back with its socket; the member is then an empty shell, which its
    /// block drops.
    fn evict(&mut self, rest: Bytes, closed: bool) {
        if let (Some(tx), Some(write)) = (self.evicted.take(), self.write.take()) {
            let _ = tx.send(Eviction {
                write,
                rest,
                last_sent: self.last_sent,
                closed,
            });
        }
    }

    fn session_ended(&self) -> bool {
        self.session.as_ref().is_some_and(SessionEnd::is_ended)
    }
}

/// Never wait; and where the flag exists, no SIGPIPE from a client that went away (Rust's
/// runtime ignores SIGPIPE anyway, so elsewhere the send just fails with EPIPE).
#[cfg(any(target_os = "linux", target_os = "android"))]
const SEND_FLAGS: libc::c_int = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const SEND_FLAGS: libc::c_int = libc::MSG_DONTWAIT;

/// One `send` that never waits, straight on the socket's descriptor.
///
/// Why not `TcpStream::try_write`: that first reads the stream's readiness from tokio's
/// registration, a separate allocation per socket; across 10,000 sockets that is a cache miss
/// per write, and `perf` showed it as the fan-out's largest user-space cost. Skipping it is
/// safe: a would-block here hands the stream back, and its task's own write then learns the
/// socket is full and waits for readiness as usual.
fn send_now(fd: RawFd, frame: &[u8]) -> io::Result<usize> {
    // SAFETY: `frame` is valid for `frame.len()` bytes; `fd` is open as long as the member
    // holds its write half, which it does for every call (`offer` runs only on members that
    // have not been evicted).
    let n = unsafe { libc::send(fd, frame.as_ptr().cast(), frame.len(), SEND_FLAGS) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

type Block = Mutex<Vec<Member>>;

/// A panic in a writer mid-block must not take the members with it: the rest stay usable.
fn lock(block: &Block) -> MutexGuard<'_, Vec<Member>> {
    block.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One frame to every member, shared out block by block.
struct Round {
    frame: Bytes,
    id: Option<i64>,
    blocks: Arc<Vec<Arc<Block>>>,
    /// The next block to claim.
    next: AtomicUsize,
    /// Blocks not yet done.
    left: AtomicUsize,
    done: Notify,
}

impl Round {
    /// Claims and writes blocks until none are left to claim.
    fn work(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(block) = self.blocks.get(i) else {
                return;
            };
            // Counted when dropped, so that a panic in the middle of a block still completes
            // the round (the dispatcher would otherwise wait for it for ever).
            let _done = BlockDone(self);
            lock(block).retain_mut(|m| m.offer(&self.frame, self.id));
        }
    }
}

/// Marks one claimed block of a round as done when dropped.
struct BlockDone<'a>(&'a Round);

impl Drop for BlockDone<'_> {
    fn drop(&mut self) {
        if self.0.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.done.notify_one();
        }
    }
}

struct Dispatcher {
    /// Shared with the rounds; replaced (copy on write) when a block is added.
    blocks: Arc<Vec<Arc<Block>>>,
    /// No block before this one has room (blocks freed by a writer's eviction are found again
    /// after the next leave or mass eviction).
    room_from: usize,
    writers: Vec<std::sync::mpsc::Sender<Arc<Round>>>,
    /// The newest lead id sent (or published before the fan-out started).
    newest: i64,
}

impl Dispatcher {
    async fn run(
        mut self,
        mut signals: broadcast::Receiver<Signal>,
        mut commands: mpsc::UnboundedReceiver<Command>,
        hub: Hub,
        shutdown: Shutdown,
    ) {
        let keepalive = Bytes::from_static(KEEPALIVE_CHUNK);
        loop {
            tokio::select! {
                // Shutdown, then signals: a join waits until the lead in hand is out. Shutdown
                // is watched here too, not only as `Close` on the channel: a dispatcher that
                // lagged past `Close` would otherwise run on, with nobody told to end.
                biased;
                _ = shutdown.started() => break,
                signal = signals.recv() => match signal {
                    Ok(Signal::Lead(ev)) => {
                        self.newest = self.newest.max(ev.id);
                        self.round(ev.chunk.clone(), Some(ev.id)).await;
                        self.take_queued(&mut commands);
                    }
                    Ok(Signal::Erased(ev)) => {
                        self.round(ev.chunk.clone(), None).await;
                        self.take_queued(&mut commands);
                    }
                    Ok(Signal::Beat) => {
                        self.round(keepalive.clone(), None).await;
                        self.take_queued(&mut commands);
                    }
                    // Rare (a logout, a session expiring): a look at every member is fine.
                    Ok(Signal::SessionsEnded) => self.evict_ended(),
                    Ok(Signal::Close) | Err(broadcast::error::RecvError::Closed) => break,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        // Leads went by unsent: every member catches up by itself, and joins
                        // again only once it has at least the newest lead published so far.
                        // A `SessionsEnded` may be among them: each stream looks at its own
                        // session before its next frame.
                        log::debug!("the fan-out lagged by {missed}; handing back every stream");
                        self.newest = self.newest.max(hub.last_published());
                        self.evict_all(false);
                    }
                },
                command = commands.recv() => match command {
                    Some(command) => self.handle(command),
                    None => break,
                },
            }
        }
        // Dropping `self` then closes the writers' channels, and they end.
        self.evict_all(true);
    }

    /// Joins and leaves that queued up during a round. Without this, leads arriving faster
    /// than rounds finish would keep them waiting, since the select prefers signals.
    fn take_queued(&mut self, commands: &mut mpsc::UnboundedReceiver<Command>) {
        while let Ok(command) = commands.try_recv() {
            self.handle(command);
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Join {
                mut member,
                accepted,
            } => {
                if member.last_sent < self.newest || member.session_ended() {
                    let _ = accepted.send(Err(member.write.take().expect("not evicted")));
                    return;
                }
                let key = member.key;
                let block = self.insert(member);
                // The task stopped waiting (its future was dropped): nobody would be handed
                // the stream back, so it must not stay.
                if accepted.send(Ok(block)).is_err() {
                    self.remove(key, block);
                }
            }
            Command::Leave { key, block } => self.remove(key, block),
        }
    }

    /// Writes `frame` to every member and returns once all of it is done, so that the next
    /// round cannot overtake this one on any socket.
    async fn round(&self, frame: Bytes, id: Option<i64>) {
        // A lock per block, but no thread woken when every dashboard has gone.
        if self.blocks.iter().all(|block| lock(block).is_empty()) {
            return;
        }
        let round = Arc::new(Round {
            frame,
            id,
            blocks: self.blocks.clone(),
            next: AtomicUsize::new(0),
            left: AtomicUsize::new(self.blocks.len()),
            done: Notify::new(),
        });
        // More writers than blocks would only be woken to find nothing left.
        let mut started = 0;
        for writer in self.writers.iter().take(self.blocks.len()) {
            if writer.send(round.clone()).is_ok() {
                started += 1;
            }
        }
        if started == 0 {
            // Every writer thread is gone (a panic): write off the runtime's workers rather
            // than not at all.
            log::error!("the fan-out's writer threads are gone; writing from the blocking pool");
            let round = round.clone();
            tokio::task::spawn_blocking(move || round.work());
        }
        // `notify_one` keeps its permit if it came first.
        round.done.notified().await;
    }

    /// Puts `member` in the first block with room, or a new one; returns the block's index.
    fn insert(&mut self, member: Member) -> usize {
        for (i, block) in self.blocks.iter().enumerate().skip(self.room_from) {
            let mut members = lock(block);
            if members.len() < BLOCK {
                members.push(member);
                self.room_from = i;
                return i;
            }
        }
        Arc::make_mut(&mut self.blocks).push(Arc::new(Mutex::new(vec![member])));
        self.room_from = self.blocks.len() - 1;
        self.room_from
    }

    fn remove(&mut self, key: u64, block: usize) {
        if let Some(members) = self.blocks.get(block) {
            lock(members).retain(|m| m.key != key);
            self.room_from = self.room_from.min(block);
        }
    }

    /// Hands back the members whose session has ended; their tasks say `logout`.
    fn evict_ended(&mut self) {
        for (i, block) in self.blocks.iter().enumerate() {
            let mut members = lock(block);
            let before = members.len();
            members.retain_mut(|m| {
                if m.session_ended() {
                    m.evict(Bytes::new(), false);
                    return false;
                }
                true
            });
            if members.len() < before {
                self.room_from = self.room_from.min(i);
            }
        }
    }

    fn evict_all(&mut self, closed: bool) {
        self.room_from = 0;
        for block in self.blocks.iter() {
            for mut m in lock(block).drain(..) {
                m.evict(Bytes::new(), closed);
            }
        }
    }
}

#[cfg(test)]
mod tests;
