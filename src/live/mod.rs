//! Push: every committed lead to every open dashboard, at once, in id order, once.
//!
//! - [`hub`]: the one broadcast channel, fed by the store's writer (it is the store's
//!   [`LeadSink`](crate::store::LeadSink)), plus a shared keep-alive clock, word of ended
//!   sessions (it is the sessions' [`EndedSink`](crate::auth::EndedSink)) and the close signal
//!   at shutdown;
//! - [`stream`]: one `/api/stream` body, [`LeadStream`]: replay from the database after
//!   `Last-Event-ID` or lag, then live frames, and `logout` when its session ends;
//! - [`writer`]: an HTTP/1.x stream written straight to its socket, chunked or close-delimited;
//! - [`fanout`]: a few threads that write each lead to every caught-up stream's socket;
//! - [`frames`]: the SSE bytes themselves, each lead's made once and shared.
//!
//! [`Streams`] is the wing's front door for the HTTP side, which decides who may open a stream
//! and what its answer's head says; the wing decides what flows after it.

pub mod fanout;
pub mod frames;
pub mod hub;
pub mod stream;
pub mod writer;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;

use crate::auth::SessionEnd;
use crate::shutdown::Shutdown;
use crate::store::Store;
pub use fanout::Fanout;
pub use hub::{Hub, LeadEvent, Signal};
pub use stream::{LeadStream, StreamParams};
pub use writer::Framing;

/// Opens streams and keeps the fan-out they join once caught up.
pub struct Streams {
    hub: Hub,
    store: Store,
    shutdown: Shutdown,
    params: StreamParams,
    fanout: Fanout,
    /// Streams the socket writer serves now, and those of them whose connection carried
    /// another request first (as a browser's does).
    written: Arc<AtomicUsize>,
    written_on_reused: Arc<AtomicUsize>,
}

/// What the HTTP side hands over with a connection that asked for a stream.
pub struct SocketStream {
    /// The answer's status line and headers, written first.
    pub head: Bytes,
    pub framing: Framing,
    /// The client's `Last-Event-ID`; `None` starts live.
    pub resume: Option<i64>,
    /// The session the request came with (`None`: the bearer token).
    pub session: Option<SessionEnd>,
    /// The connection carried another request before this one.
    pub reused: bool,
}

/// How many streams the socket writer serves now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WrittenCounts {
    pub open: usize,
    /// Of those, on a connection that carried another request first.
    pub on_reused_connections: usize,
}

impl Streams {
    /// Starts the fan-out with `writers` threads. Every stream ends when shutdown begins.
    pub fn start(
        hub: Hub,
        store: Store,
        params: StreamParams,
        writers: usize,
        shutdown: Shutdown,
    ) -> Streams {
        let fanout = Fanout::start(&hub, writers, shutdown.clone());
        Streams {
            hub,
            store,
            shutdown,
            params,
            fanout,
            written: Arc::default(),
            written_on_reused: Arc::default(),
        }
    }

    /// Opens one `/api/stream` body for a client that has every lead up to `resume` (its
    /// `Last-Event-ID`; `None` starts live), for an HTTP layer that writes it itself (HTTP/2).
    pub async fn open(&self, resume: Option<i64>, session: Option<SessionEnd>) -> LeadStream {
        LeadStream::open(
            &self.hub,
            self.store.clone(),
            resume,
            self.shutdown.clone(),
            self.params.clone(),
            session,
        )
        .await
    }

    /// Serves one stream on `socket` until it ends, the client leaves, or a write fails or
    /// takes longer than the write timeout. The stream subscribes before its head goes out,
    /// so every lead committed after the client has the head reaches it.
    pub async fn serve(&self, socket: TcpStream, req: SocketStream) {
        let _open = Counted::new(&self.written);
        let _reused = req.reused.then(|| Counted::new(&self.written_on_reused));
        // Boxed: opening reads the database, and its future need not stay in every stream's
        // task for as long as the stream lives.
        let stream = Box::pin(self.open(req.resume, req.session)).await;
        writer::serve(
            &self.fanout,
            stream,
            socket,
            req.head,
            req.framing,
            self.params.write_timeout,
            &self.shutdown,
        )
        .await;
    }

    /// Streams open now, however they are written.
    pub fn open_count(&self) -> usize {
        self.hub.subscribers()
    }

    /// Streams the socket writer serves now.
    pub fn written_counts(&self) -> WrittenCounts {
        WrittenCounts {
            open: self.written.load(Ordering::Relaxed),
            on_reused_connections: self.written_on_reused.load(Ordering::Relaxed),
        }
    }

    /// How long a stream's client may take nothing before it is closed.
    pub fn write_timeout(&self) -> Duration {
        self.params.write_timeout
    }
}

/// Counts something as open for as long as it lives.
pub(crate) struct Counted(Arc<AtomicUsize>);

impl Counted {
    pub(crate) fn new(count: &Arc<AtomicUsize>) -> Counted {
        count.fetch_add(1, Ordering::Relaxed);
        Counted(count.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
