//! The writer thread: every write, queued, committed in groups.
//!
//! Why one writer thread: SQLite allows one writer at a time anyway, and a single thread that
//! drains its queue into one transaction lets one fsync (`synchronous=FULL`) cover many
//! deliveries (group commit) without ever answering a caller before its data is durable.
//! Each operation runs inside its own SAVEPOINT, so one failing operation does not take the
//! others of its batch down with it.
//!
//! The writer is also the one place that hands out committed leads: an operation returns the
//! leads it inserted, and they go to the [`LeadSink`] right after the COMMIT succeeded, in id
//! order. A lead is therefore never published before it is durable, and never twice.

use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::{LeadSink, StoreError};
use crate::model::Lead;

/// Most operations one group commit takes from the queue.
const MAX_BATCH: usize = 1024;

/// What a write operation gives back: its result, and the leads it inserted (to publish).
pub(super) struct Written<T> {
    pub value: T,
    pub inserted: Vec<Lead>,
}

impl<T> Written<T> {
    pub fn value(value: T) -> Self {
        Written {
            value,
            inserted: Vec::new(),
        }
    }
}

/// The sending end of the writer's queue.
pub(super) type Queue = mpsc::Sender<Box<dyn QueuedWrite>>;

/// A type-erased queued write: `run` inside the batch transaction, `complete` after COMMIT.
pub(super) trait QueuedWrite: Send {
    /// Runs inside a SAVEPOINT; returns the leads to publish if the batch commits, or `None`
    /// when the operation failed (its savepoint is then rolled back).
    fn run(&mut self, conn: &Connection) -> Option<Vec<Lead>>;
    /// Tells the caller; `committed` is false when the COMMIT itself failed.
    fn complete(self: Box<Self>, committed: Result<(), String>);
}

/// One queued write and the caller waiting for it.
pub(super) struct Op<T, F> {
    f: Option<F>,
    result: Option<rusqlite::Result<T>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Op<T, F> {
    pub fn new(f: F, reply: oneshot::Sender<Result<T, StoreError>>) -> Self {
        Op {
            f: Some(f),
            result: None,
            reply,
        }
    }
}

impl<T, F> QueuedWrite for Op<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> rusqlite::Result<Written<T>> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> Option<Vec<Lead>> {
        let f = self.f.take().expect("run once");
        match f(conn) {
            Ok(w) => {
                self.result = Some(Ok(w.value));
                Some(w.inserted)
            }
            Err(e) => {
                self.result = Some(Err(e));
                None
            }
        }
    }

    fn complete(self: Box<Self>, committed: Result<(), String>) {
        let out = match (committed, self.result) {
            (Ok(()), Some(Ok(v))) => Ok(v),
            (Ok(()), Some(Err(e))) => Err(StoreError::Sqlite(e)),
            (Err(msg), _) => Err(StoreError::Commit(msg)),
            (Ok(()), None) => Err(StoreError::Commit("operation did not run".into())),
        };
        // The caller may have gone away (request cancelled); the data is committed regardless.
        let _ = self.reply.send(out);
    }
}

/// Starts the writer thread on `conn`; it runs until every [`Queue`] handle is dropped.
pub(super) fn start(conn: Connection, sink: impl LeadSink) -> Result<Queue, String> {
    let (tx, rx) = mpsc::channel::<Box<dyn QueuedWrite>>();
    std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || writer_loop(conn, rx, sink))
        .map_err(|e| format!("cannot start the database writer: {e}"))?;
    Ok(tx)
}

fn writer_loop(conn: Connection, rx: mpsc::Receiver<Box<dyn QueuedWrite>>, sink: impl LeadSink) {
    let mut batch: Vec<Box<dyn QueuedWrite>> = Vec::with_capacity(MAX_BATCH);
    let mut inserted: Vec<Lead> = Vec::new();
    // recv() fails once every Store handle is dropped: the process is shutting down and every
    // queued write has been committed.
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let committed = run_batch(&conn, &mut batch, &mut inserted);
        if committed.is_ok() && !inserted.is_empty() {
            // Ids were assigned in this order by one writer, so the sink gets them in id order.
            sink.committed(std::mem::take(&mut inserted));
        } else {
            inserted.clear();
        }
        for op in batch.drain(..) {
            op.complete(committed.clone());
        }
    }
    log::debug!("database writer stopped");
}

fn run_batch(
    conn: &Connection,
    batch: &mut [Box<dyn QueuedWrite>],
    inserted: &mut Vec<Lead>,
) -> Result<(), String> {
    exec(conn, "BEGIN IMMEDIATE").map_err(|e| e.to_string())?;
    for op in batch.iter_mut() {
        if let Err(e) = exec(conn, "SAVEPOINT op") {
            let _ = exec(conn, "ROLLBACK");
            return Err(e.to_string());
        }
        // `run` keeps its own result; an operation that failed is rolled back to its
        // savepoint and reports its error, the rest of the batch goes on.
        let outcome = op.run(conn);
        let ended = match outcome {
            Some(_) => exec(conn, "RELEASE op"),
            None => exec(conn, "ROLLBACK TO op").and_then(|()| exec(conn, "RELEASE op")),
        };
        if let Err(e) = ended {
            let _ = exec(conn, "ROLLBACK");
            return Err(e.to_string());
        }
        inserted.extend(outcome.unwrap_or_default());
    }
    if let Err(e) = exec(conn, "COMMIT") {
        log::error!("database commit failed: {e}");
        let _ = exec(conn, "ROLLBACK");
        return Err(e.to_string());
    }
    Ok(())
}

/// Runs one statement without parameters through the statement cache. The writer runs
/// BEGIN, SAVEPOINT, RELEASE and COMMIT for every batch and every operation: parsing them anew
/// each time (`execute_batch`) was a tenth of the writer's time in the ingest profile.
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}
