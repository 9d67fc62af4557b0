//! SQLite, for one process: every write goes to one writer thread that commits in groups
//! (`writer`), reads go to a small pool of read-only connections on the blocking pool
//! (`readers`); `schema` holds the pragmas, our SQL functions and the migrations, and there
//! is one file per family of tables.
//!
//! rusqlite is blocking, so it never runs on the async runtime.

mod forms;
mod jobs;
mod leads;
mod readers;
mod schema;
mod search;
mod sessions;
mod state;
mod writer;

use std::path::Path;
use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::{LeadSink, StoreError};
use readers::ReaderPool;
use writer::{Op, Queue, Written};

pub(super) use schema::open_reader;

/// Cheap to clone: a handle on the writer queue and the reader pool.
#[derive(Clone)]
pub(super) struct Sqlite {
    writer: Queue,
    readers: Arc<ReaderPool>,
}

impl Sqlite {
    /// Opens (creating and migrating as needed) the database at `path` and starts the writer.
    /// The leads each write inserts go to `sink` after their commit.
    pub fn open(path: &Path, sink: impl LeadSink) -> Result<Sqlite, String> {
        let conn = schema::open_writer(path)
            .map_err(|e| format!("cannot open database {}: {e}", path.display()))?;
        Ok(Sqlite {
            writer: writer::start(conn, sink)?,
            readers: Arc::new(ReaderPool::new(path.to_path_buf())),
        })
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(()))).await
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
