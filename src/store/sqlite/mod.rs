//! SQLite, for one process: every write goes to one writer thread that commits in groups
//! (`writer`), reads go to a small pool of read-only connections on the blocking pool
//! (`readers`); `schema` holds the pragmas, our SQL functions and the migrations, and there
//! is one file per family of tables (`forwards`: forwarding's destinations and deliveries).
//!
//! rusqlite is blocking, so it never runs on the async runtime.

mod backup;
mod erase;
mod events;
mod forms;
mod forwards;
mod health;
mod jobs;
mod leads;
mod readers;
mod schema;
mod search;
mod sessions;
mod state;
mod team;
mod users;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::{broadcast, oneshot};

use super::{LeadSink, StoreError};
pub use backup::{backup_file, BackupReport};
use health::{FileWatch, Health, Verdicts};
use readers::ReaderPool;
use writer::{Op, Queue, Writer, Written};

pub(super) use schema::{open_reader, VERSION as SCHEMA_VERSION};

/// Cheap to clone: a handle on the writer queue and the reader pool.
#[derive(Clone)]
pub(super) struct Sqlite {
    writer: Queue,
    readers: Arc<ReaderPool>,
    path: PathBuf,
    /// What the writer knows of its writes and its file.
    health: Arc<Health>,
    verdicts: Arc<Verdicts>,
    /// [`crate::store::ALL_SESSIONS`] when another process wrote to the database.
    external: broadcast::Sender<String>,
}

impl Sqlite {
    /// Opens (creating and migrating as needed) the database at `path` and starts the writer.
    /// The leads each write inserts go to `sink` after their commit.
    pub fn open(path: &Path, sink: impl LeadSink) -> Result<Sqlite, String> {
        let cannot =
            |e: &dyn std::fmt::Display| format!("cannot open database {}: {e}", path.display());
        let conn = schema::open_writer(path).map_err(|e| cannot(&e))?;
        let watch = FileWatch::new(path).map_err(|e| cannot(&e))?;
        let health = Arc::new(Health::default());
        let (external, _) = broadcast::channel(16);
        let writer = Writer {
            conn,
            sink,
            watch,
            health: health.clone(),
            external: external.clone(),
        };
        Ok(Sqlite {
            writer: writer::start(writer)?,
            readers: Arc::new(ReaderPool::new(path.to_path_buf())),
            path: path.to_path_buf(),
            health,
            verdicts: Arc::default(),
            external,
        })
    }

    /// See [`crate::store::Store::session_ends`].
    pub fn session_ends(&self) -> broadcast::Receiver<String> {
        self.external.subscribe()
    }

    /// Queues `f` for the writer; resolves once the batch holding it is committed.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<Written<T>> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        self.writer
            .send(Box::new(Op::new(f, reply)))
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` on a pooled read connection on the blocking pool.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.on_reader(move |c| f(c).map_err(StoreError::from))
            .await?
    }

    /// Runs `f` on a pooled read connection on the blocking pool, whatever it returns.
    async fn on_reader<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> T + Send + 'static,
    {
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.get()?;
            let out = f(&conn);
            pool.put(conn);
            Ok(out)
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }
}

#[cfg(test)]
mod tests;
