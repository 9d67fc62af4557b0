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

use std::sync::{mpsc, Arc};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::health::{storage_trouble, FileWatch, Health, FILE_GONE};
use super::{LeadSink, StoreError};
use crate::model::Lead;

/// Most operations one group commit takes from the queue.
const MAX_BATCH: usize = 1024;

/// How often an idle writer looks whether its database file is still there.
const WATCH_EVERY: Duration = Duration::from_secs(1);

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

/// How a batch ended, for each of its operations.
#[derive(Debug, Clone)]
pub(super) enum BatchEnd {
    Committed,
    /// The COMMIT (or the transaction around the operations) failed.
    Failed(String),
    /// Not run at all: the database cannot be written (its file is gone).
    Refused(String),
}

/// A type-erased queued write: `run` inside the batch transaction, `complete` after COMMIT.
pub(super) trait QueuedWrite: Send {
    /// Runs inside a SAVEPOINT; returns the leads to publish if the batch commits, or `None`
    /// when the operation failed (its savepoint is then rolled back).
    fn run(&mut self, conn: &Connection) -> Option<Vec<Lead>>;
    /// Words for the failure of `run`, when the storage failed it (a full disk, say) rather
    /// than the operation itself.
    fn storage_trouble(&self) -> Option<String>;
    /// Tells the caller how the batch ended.
    fn complete(self: Box<Self>, end: BatchEnd);
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

    fn storage_trouble(&self) -> Option<String> {
        match &self.result {
            Some(Err(e)) => storage_trouble(e),
            _ => None,
        }
    }

    fn complete(self: Box<Self>, end: BatchEnd) {
        let out = match (end, self.result) {
            (BatchEnd::Committed, Some(Ok(v))) => Ok(v),
            (BatchEnd::Committed, Some(Err(e))) => Err(StoreError::Sqlite(e)),
            (BatchEnd::Failed(msg), _) => Err(StoreError::Commit(msg)),
            (BatchEnd::Refused(words), _) => Err(StoreError::Unavailable(words)),
            (BatchEnd::Committed, None) => Err(StoreError::Commit("operation did not run".into())),
        };
        // The caller may have gone away (request cancelled); the data is committed regardless.
        let _ = self.reply.send(out);
    }
}

/// What the writer thread is given besides its connection.
pub(super) struct Writer<S> {
    pub conn: Connection,
    pub sink: S,
    /// The database file as opened, to notice it being removed or replaced.
    pub watch: FileWatch,
    pub health: Arc<Health>,
}

/// Starts the writer thread; it runs until every [`Queue`] handle is dropped.
pub(super) fn start<S: LeadSink>(writer: Writer<S>) -> Result<Queue, String> {
    let (tx, rx) = mpsc::channel::<Box<dyn QueuedWrite>>();
    std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || writer_loop(writer, rx))
        .map_err(|e| format!("cannot start the database writer: {e}"))?;
    Ok(tx)
}

fn writer_loop<S: LeadSink>(w: Writer<S>, rx: mpsc::Receiver<Box<dyn QueuedWrite>>) {
    let mut batch: Vec<Box<dyn QueuedWrite>> = Vec::with_capacity(MAX_BATCH);
    let mut inserted: Vec<Lead> = Vec::new();
    loop {
        // Disconnected once every Store handle is dropped: the process is shutting down and
        // every queued write has been committed. A quiet writer still looks at its file.
        let first = match rx.recv_timeout(WATCH_EVERY) {
            Ok(op) => op,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                watch(&w);
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        // A write to a file that is no longer the database would "succeed" and be lost.
        if !watch(&w) {
            for op in batch.drain(..) {
                op.complete(BatchEnd::Refused(FILE_GONE.into()));
            }
            continue;
        }
        let end = match run_batch(&w.conn, &mut batch, &mut inserted) {
            Ok(()) => {
                let trouble = batch.iter().find_map(|op| op.storage_trouble());
                w.health.wrote(trouble.map_or(Ok(()), Err));
                BatchEnd::Committed
            }
            Err(e) => {
                w.health
                    .wrote(Err(storage_trouble(&e).unwrap_or_else(|| e.to_string())));
                BatchEnd::Failed(e.to_string())
            }
        };
        if matches!(end, BatchEnd::Committed) && !inserted.is_empty() {
            // Ids were assigned in this order by one writer, so the sink gets them in id order.
            w.sink.committed(std::mem::take(&mut inserted));
        } else {
            inserted.clear();
        }
        for op in batch.drain(..) {
            op.complete(end.clone());
        }
    }
    log::debug!("database writer stopped");
}

/// `true` while the database file is the one the writer opened; the first time it is not,
/// says so in the log and in the health.
fn watch<S>(w: &Writer<S>) -> bool {
    if w.health.is_gone() {
        return false;
    }
    let Some(missing) = w.watch.missing() else {
        return true;
    };
    log::error!(
        "the database file {} was removed or replaced while leadstream ran; nothing more is \
         written until a restart, and webhooks are answered 503 so Meta delivers them again",
        crate::logging::escaped(missing.display())
    );
    w.health.file_gone();
    false
}

fn run_batch(
    conn: &Connection,
    batch: &mut [Box<dyn QueuedWrite>],
    inserted: &mut Vec<Lead>,
) -> rusqlite::Result<()> {
    exec(conn, "BEGIN IMMEDIATE")?;
    for op in batch.iter_mut() {
        if let Err(e) = exec(conn, "SAVEPOINT op") {
            let _ = exec(conn, "ROLLBACK");
            return Err(e);
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
            return Err(e);
        }
        inserted.extend(outcome.unwrap_or_default());
    }
    if let Err(e) = exec(conn, "COMMIT") {
        log::error!("database commit failed: {e}");
        let _ = exec(conn, "ROLLBACK");
        return Err(e);
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
