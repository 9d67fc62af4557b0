//! Push: every committed lead to every open dashboard, at once, in id order, once.
//!
//! - [`hub`]: the one broadcast channel, fed by the store's writer (it is the store's
//!   [`LeadSink`](crate::store::LeadSink)), plus a shared keep-alive clock and the close
//!   signal at shutdown;
//! - [`stream`]: one `/api/stream` body, [`LeadStream`]: replay from the database after
//!   `Last-Event-ID` or lag, then live frames;
//! - [`fanout`]: a few threads that write each lead to every caught-up stream's socket;
//! - [`frames`]: the SSE bytes themselves, each lead's made once and shared.
//!
//! [`Streams`] is the wing's front door for the HTTP side.

pub mod fanout;
pub mod frames;
pub mod hub;
pub mod stream;

use crate::shutdown::Shutdown;
use crate::store::Store;
pub use fanout::Fanout;
pub use hub::{Hub, LeadEvent, Signal};
pub use stream::{LeadStream, StreamParams};

/// Opens streams and keeps the fan-out they join once caught up.
pub struct Streams {
    hub: Hub,
    store: Store,
    shutdown: Shutdown,
    params: StreamParams,
    fanout: Fanout,
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
        }
    }

    /// Opens one `/api/stream` for a client that has every lead up to `resume` (its
    /// `Last-Event-ID`; `None` starts live).
    pub async fn open(&self, resume: Option<i64>) -> LeadStream {
        LeadStream::open(
            &self.hub,
            self.store.clone(),
            resume,
            self.shutdown.clone(),
            self.params.clone(),
        )
        .await
    }

    /// Where caught-up streams are written from.
    pub fn fanout(&self) -> &Fanout {
        &self.fanout
    }

    /// Streams open now.
    pub fn open_count(&self) -> usize {
        self.hub.subscribers()
    }
}
