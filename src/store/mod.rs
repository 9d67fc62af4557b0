//! The database: one [`Store`] whose public methods are domain operations ("save this lead",
//! "which jobs are due", "the leads after id 42"), and every line of SQL in the crate.
//!
//! Today the engine is SQLite:
//!
//! - `writer`: one writer thread that commits queued writes in groups, each in its own
//!   savepoint, and hands the leads a batch inserted to a [`LeadSink`] after the COMMIT;
//! - `readers`: a small pool of read-only connections on the blocking pool;
//! - `schema`: the pragmas, our SQL functions, the schema and its migrations;
//! - one file per family of tables: `leads` (saving, reading back, replay, exports), `search`
//!   (the filters, listing order and statistics), `jobs` (deliveries, jobs and dead letters:
//!   the inbox), `sessions`, `forms` and `state`;
//! - `health`: whether the database can be written (its file still there, the disk not full
//!   or read-only), for `/healthz`;
//! - `backup`: a consistent copy of a live database ([`backup_file`]).
//!
//! rusqlite is blocking, so it never runs on the async runtime: writes go to the writer
//! thread, reads to `spawn_blocking` with a pooled connection.
//!
//! Nothing outside this folder sees a connection, a row or a statement, and the store knows
//! nothing of who listens for leads (it is given a sink). That is the boundary a second
//! engine (PostgreSQL, for several instances) implements: the same methods, with a job claim
//! that takes a lease and a feed, not the writer, as the sink's caller.

mod backup;
mod forms;
mod health;
mod jobs;
mod leads;
mod readers;
mod schema;
mod search;
mod sessions;
mod state;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::model::Lead;
pub use backup::{backup_file, BackupReport};
pub use forms::FormInfo;
pub use jobs::{DeadLetter, DueJobs, Job, Stored};
pub use leads::WalkError;
pub use search::{DayCount, FormCount, PageCount, Stats};
pub use sessions::StoredSession;
pub use state::Overview;

use health::{FileWatch, Health, Verdicts};
use readers::ReaderPool;
use writer::{Op, Queue, Writer, Written};

#[derive(Debug)]
pub enum StoreError {
    Sqlite(rusqlite::Error),
    /// The batch this operation was part of could not be committed.
    Commit(String),
    /// The writer thread is gone (shutdown, or it panicked).
    Closed,
    /// The database cannot be written at all (its file was removed or replaced): the words
    /// say what to do.
    Unavailable(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Sqlite(e) => write!(f, "database error: {e}"),
            StoreError::Commit(e) => write!(f, "database commit failed: {e}"),
            StoreError::Closed => f.write_str("database writer stopped"),
            StoreError::Unavailable(words) => f.write_str(words),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e)
    }
}

/// Where committed leads go. The store calls it once per committed batch that inserted
/// leads, right after the COMMIT, with those leads in id order, from one thread at a time;
/// never with a lead whose batch failed. It is the only way leads leave the store as they
/// are saved (`live::Hub` implements it to publish them).
pub trait LeadSink: Send + 'static {
    fn committed(&self, leads: Vec<Lead>);
}

/// Any function of the committed leads is a sink (tools and tests that need no hub).
impl<F: Fn(Vec<Lead>) + Send + 'static> LeadSink for F {
    fn committed(&self, leads: Vec<Lead>) {
        self(leads)
    }
}

/// Cheap to clone: a handle on the writer queue and the reader pool.
#[derive(Clone)]
pub struct Store {
    writer: Queue,
    readers: Arc<ReaderPool>,
    path: PathBuf,
    /// What the writer knows of its writes and its file.
    health: Arc<Health>,
    verdicts: Arc<Verdicts>,
}

impl Store {
    /// Opens (creating and migrating as needed) the database at `path` and starts the writer.
    /// The leads each write inserts go to `sink` after their commit.
    pub fn open(path: &Path, sink: impl LeadSink) -> Result<Store, String> {
        let cannot =
            |e: &dyn std::fmt::Display| format!("cannot open database {}: {e}", path.display());
        let conn = schema::open_writer(path).map_err(|e| cannot(&e))?;
        let watch = FileWatch::new(path).map_err(|e| cannot(&e))?;
        let health = Arc::new(Health::default());
        let writer = Writer {
            conn,
            sink,
            watch,
            health: health.clone(),
        };
        Ok(Store {
            writer: writer::start(writer)?,
            readers: Arc::new(ReaderPool::new(path.to_path_buf())),
            path: path.to_path_buf(),
            health,
            verdicts: Arc::default(),
        })
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
