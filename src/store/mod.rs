//! The database: one [`Store`] whose public methods are domain operations ("save this lead",
//! "which jobs are due", "the leads after id 42"), and every line of SQL in the crate.
//!
//! Two engines stand behind it, chosen at start-up:
//!
//! - `sqlite` (the default, one process): a writer thread that commits queued writes in
//!   groups and hands the leads each batch inserted to the [`LeadSink`] after the COMMIT, and
//!   a small pool of read-only connections on the blocking pool;
//! - `postgres` (any number of instances on one database): a pool, lead saves batched under
//!   one ordering lock, and a feed that reads committed leads back by id and is the sink's
//!   only caller; jobs are claimed with a lease, and sessions, the Graph pause and Meta's
//!   problems are shared through the database.
//!
//! Shared by both: the values the methods take and give (`values`), the filter as SQL
//! (`filter`), what a lead's row holds (`rows`) and what forwarding's rows hold
//! (`forwards`). `migrate` copies a SQLite database into
//! PostgreSQL.
//!
//! Nothing outside this folder sees a connection, a row or a statement, and the store knows
//! nothing of who listens for leads (it is given a sink).

mod changes;
mod filter;
mod forwards;
mod migrate;
mod postgres;
mod rows;
mod sqlite;
mod values;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::broadcast;

use crate::model::forward::{DeliveryRecord, Destination, NewDestination, Outcome};
use crate::model::{Event, LastSync, Lead, LeadFilter, LeadgenChange, NewLead};
pub use forwards::MAX_LISTED_DELIVERIES;
pub use migrate::migrate_to_postgres;
pub use postgres::{PostgresSettings, SyncLeadership, SyncTurn};
pub use sqlite::{backup_file, BackupReport};
pub use team::password_kind;
pub use values::{
    Counts, DayCount, DeadLetter, DueDeliveries, DueJobs, FormCount, FormInfo, Job, Overview,
    PageCount, SharedHealth, Stats, Stored, StoredSession, UserLogin, WalkError,
};

/// The `state` key of the random salt credential fingerprints are made with.
const CREDENTIAL_SALT: &str = "credential_salt";

#[derive(Debug)]
pub enum StoreError {
    Sqlite(rusqlite::Error),
    Postgres(tokio_postgres::Error),
    /// The database cannot be written at all (SQLite: its file was removed or replaced;
    /// PostgreSQL: no connection could be had): the words say what is wrong.
    Unavailable(String),
    /// The batch this operation was part of could not be committed.
    Commit(String),
    /// The writer is gone (shutdown, or it panicked).
    Closed,
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Sqlite(e) => write!(f, "database error: {e}"),
            StoreError::Postgres(e) => match e.as_db_error() {
                // The server's own words ("relation … does not exist"), not just "db error".
                Some(db) => write!(f, "database error: {}", db.message()),
                None if e.is_closed() => f.write_str("database connection lost"),
                None => write!(f, "database error: {e}"),
            },
            StoreError::Unavailable(words) => f.write_str(words),
            StoreError::Commit(e) => write!(f, "database commit failed: {e}"),
            StoreError::Closed => f.write_str("database writer stopped"),
        }
    }
}

impl std::error::Error for StoreError {}

impl StoreError {
    /// True when the database could not be reached (rather than refusing what was asked):
    /// the same request may well work in a moment.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Unavailable(_) | StoreError::Closed => true,
            StoreError::Postgres(e) => {
                e.is_closed()
                    || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
            }
            StoreError::Commit(_) | StoreError::Sqlite(_) => false,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e)
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Postgres(e)
    }
}

/// Where committed events go: new leads and changes to leads, each with the lead as it is
/// after it, and erasures (the lead's id only). The store calls it with committed events only, each once, in event id order,
/// from one task at a time (SQLite: its writer thread after each COMMIT; PostgreSQL: the
/// feed, which reads them back by id). It is the only way events leave the store as they are
/// committed (`live::Hub` implements it to publish them).
pub trait LeadSink: Send + 'static {
    fn committed(&self, events: Vec<Event>);
}

/// Any function of the committed events is a sink (tools and tests that need no hub).
impl<F: Fn(Vec<Event>) + Send + 'static> LeadSink for F {
    fn committed(&self, events: Vec<Event>) {
        self(events)
    }
}

/// Which database, from the settings.
#[derive(Debug, Clone)]
pub enum Database {
    /// One SQLite file, one process.
    Sqlite(std::path::PathBuf),
    /// PostgreSQL, shared by any number of instances.
    Postgres(PostgresSettings),
}

/// Cheap to clone: a handle on the engine's writer, readers and pool.
#[derive(Clone)]
pub struct Store {
    engine: Engine,
}

#[derive(Clone)]
enum Engine {
    Sqlite(sqlite::Sqlite),
    Postgres(postgres::Postgres),
}

/// Calls the same method on whichever engine this store is.
macro_rules! on_engine {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match &$self.engine {
            Engine::Sqlite(db) => db.$method($($arg),*).await,
            Engine::Postgres(db) => db.$method($($arg),*).await,
        }
    };
}

impl Store {
    /// Opens (creating and migrating as needed) the SQLite database at `path` and starts its
    /// writer. The leads each write inserts go to `sink` after their commit.
    pub fn open(path: &Path, sink: impl LeadSink) -> Result<Store, String> {
        Ok(Store {
            engine: Engine::Sqlite(sqlite::Sqlite::open(path, sink)?),
        })
    }

    /// Opens the database the settings name; PostgreSQL's schema is created or migrated (one
    /// instance at a time), and its feed starts handing committed leads to `sink`.
    pub async fn connect(database: &Database, sink: impl LeadSink) -> Result<Store, String> {
        match database {
            Database::Sqlite(path) => Store::open(path, sink),
            Database::Postgres(settings) => Ok(Store {
                engine: Engine::Postgres(postgres::Postgres::connect(settings, sink).await?),
            }),
        }
    }

    /// True when other instances may share this database (PostgreSQL): then sessions, the
    /// Graph pause and Meta's problems must be read from it, not only kept in memory.
    pub fn is_shared(&self) -> bool {
        matches!(self.engine, Engine::Postgres(_))
    }

    /// `Ok` when the database can be written now; otherwise why not, in words (for
    /// `/healthz` and `/api/status`).
    pub async fn health_check(&self) -> Result<(), String> {
        match &self.engine {
            Engine::Sqlite(db) => db.health_check().await,
            Engine::Postgres(db) => db.ping().await.map_err(|e| e.to_string()),
        }
    }

    /// True once the SQLite file was removed or replaced: nothing more can be saved until a
    /// restart. (PostgreSQL comes back by itself.)
    pub fn file_gone(&self) -> bool {
        match &self.engine {
            Engine::Sqlite(db) => db.file_gone(),
            Engine::Postgres(_) => false,
        }
    }

    // --- leads -------------------------------------------------------------------------

    /// Saves a lead unless one with the same `leadgen_id` exists, and marks its job done.
    /// Returns the saved lead, or `None` for a duplicate. Saving is the only way leads are
    /// written, so the only way they reach the sink.
    pub async fn save_lead(&self, lead: NewLead) -> Result<Option<Lead>, StoreError> {
        let saved = on_engine!(self.save_lead(lead))?;
        if let Some(lead) = &saved {
            crate::metrics::leads_saved(&lead.source, 1);
        }
        Ok(saved)
    }

    /// Saves several leads in one transaction (a page of a sync), each as [`Self::save_lead`]
    /// does; returns how many were new.
    pub async fn save_leads(&self, leads: Vec<NewLead>) -> Result<u64, StoreError> {
        let Some(first) = leads.first() else {
            return Ok(0);
        };
        // A page of a sync comes from one source.
        let source = first.source;
        let new = on_engine!(self.save_leads(leads))?;
        crate::metrics::leads_saved(source.as_str(), new);
        Ok(new)
    }

    /// How many leads there are, the newest lead id and the newest event id.
    pub async fn count(&self) -> Result<Counts, StoreError> {
        on_engine!(self.count())
    }

    /// The newest committed event id (0 when there is none). With PostgreSQL this is the
    /// database's, which may be ahead of what this instance has published yet.
    pub async fn max_event_id(&self) -> Result<i64, StoreError> {
        on_engine!(self.max_event_id())
    }

    /// Up to `limit` events with an id above `after`, oldest first, each with its lead as it
    /// is now: the stream's replay.
    pub async fn events_after(&self, after: i64, limit: usize) -> Result<Vec<Event>, StoreError> {
        on_engine!(self.events_after(after, limit))
    }

    /// Calls `visit(&mut state, lead)` for every lead matching `filter`, in listing order, one
    /// row in memory at a time, and gives `state` back at the end. `visit` runs on a blocking
    /// thread (it may block, as an export writing to a slow client does); an error from it
    /// stops the walk.
    pub async fn each_lead<S, E, V>(
        &self,
        filter: LeadFilter,
        state: S,
        visit: V,
    ) -> Result<S, WalkError<E>>
    where
        S: Send + 'static,
        E: Send + 'static,
        V: FnMut(&mut S, Lead) -> Result<(), E> + Send + 'static,
    {
        on_engine!(self.each_lead(filter, state, visit))
    }

    /// One page of the leads matching `filter`, in its order, and how many match in all.
    pub async fn list_leads(
        &self,
        filter: LeadFilter,
        limit: usize,
        offset: usize,
    ) -> Result<(Vec<Lead>, i64), StoreError> {
        on_engine!(self.list_leads(filter, limit, offset))
    }

    /// Statistics of the leads matching `filter` over the last `days` days (UTC).
    pub async fn stats(&self, filter: LeadFilter, days: i64) -> Result<Stats, StoreError> {
        on_engine!(self.stats(filter, days))
    }

    /// Every form that has leads or is known from Meta, with its lead count.
    pub async fn forms_summary(&self) -> Result<Vec<FormCount>, StoreError> {
        on_engine!(self.forms_summary())
    }

    /// Pages with leads, with their lead count.
    pub async fn pages_summary(&self) -> Result<Vec<PageCount>, StoreError> {
        on_engine!(self.pages_summary())
    }

    // --- erasure -----------------------------------------------------------------------

    /// Erases the leads `ids`, in one transaction: every row that holds their personal
    /// values goes (the lead, its notes, its history and its events), each lead's job stays
    /// as a tombstone holding Meta's ids only, so neither a webhook delivered again nor a sync
    /// brings the lead back, and each erased lead gets an `erased` event in the one event
    /// sequence, published like the others (the sink, after the commit). With SQLite the file
    /// keeps none of their bytes afterwards. Returns the ids that were there, in order.
    pub async fn erase_leads(&self, ids: Vec<i64>) -> Result<Vec<i64>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        on_engine!(self.erase_leads(ids))
    }

    /// Up to `limit` ids of leads received before `before_ms` (unix ms), oldest first.
    pub async fn leads_received_before(
        &self,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<i64>, StoreError> {
        on_engine!(self.leads_received_before(before_ms, limit))
    }

    // --- the inbox: deliveries, jobs, dead letters ------------------------------------

    /// Stores a signed delivery's raw `body` and one pending job per lead in `leads` that has
    /// neither a job nor a saved lead yet, and notes the time of the last webhook: one
    /// transaction, so a 200 after it means none of it can be lost.
    pub async fn store_delivery(
        &self,
        body: Bytes,
        kind: &'static str,
        note: Option<String>,
        leads: Vec<LeadgenChange>,
    ) -> Result<Stored, StoreError> {
        on_engine!(self.store_delivery(body, kind, note, leads))
    }

    /// At the worker's start. SQLite (one process): every pending job is made due now, since
    /// the wait was only a courtesy to Graph and after a restart the person wants their
    /// leads. PostgreSQL: nothing changes, since the other instances' backoff is not ours to
    /// reset. Returns how many jobs are pending.
    pub async fn resume_jobs(&self) -> Result<i64, StoreError> {
        on_engine!(self.resume_jobs())
    }

    /// Up to `limit` due pending jobs (oldest first) whose lead id is not in `skip` (the ones
    /// this process is working on), and when the next job is due. Ask only for as many as
    /// will be started at once. SQLite marks nothing: with
    /// one process, `skip` keeps a job from running twice. PostgreSQL claims them for this
    /// instance for a lease: no other instance takes them until it ends, and an instance that
    /// dies leaves them to the others when it does.
    pub async fn claim_jobs(&self, limit: usize, skip: Vec<String>) -> Result<DueJobs, StoreError> {
        on_engine!(self.claim_jobs(limit, skip))
    }

    /// Records a failed try of a pending job: `attempts` so far, the next try at
    /// `next_attempt_ms`, and why it failed. With PostgreSQL, only while this instance holds
    /// the job's claim.
    pub async fn retry_job_later(
        &self,
        leadgen_id: String,
        attempts: i64,
        next_attempt_ms: i64,
        error: String,
        error_code: Option<i64>,
    ) -> Result<(), StoreError> {
        on_engine!(self.retry_job_later(leadgen_id, attempts, next_attempt_ms, error, error_code))
    }

    /// Sets a pending job aside as a dead letter after `attempts` tries, with why. With
    /// PostgreSQL, only while this instance holds the job's claim.
    pub async fn set_job_aside(
        &self,
        leadgen_id: String,
        attempts: i64,
        error: String,
        error_code: Option<i64>,
    ) -> Result<(), StoreError> {
        on_engine!(self.set_job_aside(leadgen_id, attempts, error, error_code))
    }

    /// Puts every dead letter back in the queue, due now. Returns how many.
    pub async fn retry_dead_letters(&self) -> Result<usize, StoreError> {
        on_engine!(self.retry_dead_letters())
    }

    /// The newest `limit` dead letters.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        on_engine!(self.dead_letters(limit))
    }

    // --- forwarding: destinations and their deliveries -------------------------------------

    /// Keeps a new destination; it takes the events of leads saved from now on.
    pub async fn add_destination(&self, new: NewDestination) -> Result<Destination, StoreError> {
        on_engine!(self.add_destination(new))
    }

    /// Every destination, oldest first, with its counts and failures.
    pub async fn destinations(&self) -> Result<Vec<Destination>, StoreError> {
        on_engine!(self.destinations())
    }

    /// Removes a destination and every delivery to it; false when there is none.
    pub async fn remove_destination(&self, id: i64) -> Result<bool, StoreError> {
        on_engine!(self.remove_destination(id))
    }

    /// Queues a test to a destination (a delivery with no lead); `None` when there is no such
    /// destination.
    pub async fn queue_test_delivery(
        &self,
        destination_id: i64,
        payload: String,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        on_engine!(self.queue_test_delivery(destination_id, payload))
    }

    /// A destination's newest deliveries (at most [`MAX_LISTED_DELIVERIES`]); `None` when
    /// there is no such destination.
    pub async fn deliveries(
        &self,
        destination_id: i64,
        limit: usize,
    ) -> Result<Option<Vec<DeliveryRecord>>, StoreError> {
        on_engine!(self.deliveries(destination_id, limit))
    }

    /// At the forwarder's start, as [`Self::resume_jobs`] for jobs: SQLite makes every
    /// pending delivery due now, PostgreSQL leaves the other instances' schedule alone.
    /// Returns how many are pending.
    pub async fn resume_deliveries(&self) -> Result<i64, StoreError> {
        on_engine!(self.resume_deliveries())
    }

    /// Due deliveries, destination by destination, so one destination with a long queue
    /// never holds up the others: to each, up to `per_destination` less what `busy` says this
    /// process has in flight to it; none of `skip` (in flight here); `limit` in all. And when
    /// the next of the others is due. PostgreSQL claims them for this instance for a lease,
    /// as jobs are claimed.
    pub async fn claim_deliveries(
        &self,
        per_destination: usize,
        busy: Vec<(i64, usize)>,
        skip: Vec<i64>,
        limit: usize,
    ) -> Result<DueDeliveries, StoreError> {
        on_engine!(self.claim_deliveries(per_destination, busy, skip, limit))
    }

    /// Writes down how tries of pending deliveries ended (`(id, tries so far, outcome)`), and
    /// their destinations' failures in a row: SQLite in one transaction (one fsync for many).
    /// With PostgreSQL, each only while this instance holds the delivery's claim.
    pub async fn record_deliveries(
        &self,
        outcomes: Vec<(i64, i64, Outcome)>,
    ) -> Result<(), StoreError> {
        on_engine!(self.record_deliveries(outcomes))
    }

    /// Puts a destination's dead deliveries back in the queue, due now, with a new retry
    /// period; how many.
    pub async fn retry_dead_deliveries(&self, destination_id: i64) -> Result<usize, StoreError> {
        on_engine!(self.retry_dead_deliveries(destination_id))
    }

    // --- sessions ------------------------------------------------------------------------

    /// Forgets the sessions that expired by `now_ms` and returns the others, by cookie hash.
    pub async fn load_sessions(
        &self,
        now_ms: i64,
    ) -> Result<HashMap<String, StoredSession>, StoreError> {
        on_engine!(self.load_sessions(now_ms))
    }

    /// One session, if it exists.
    pub async fn session(&self, token_hash: String) -> Result<Option<StoredSession>, StoreError> {
        on_engine!(self.session(token_hash))
    }

    /// Keeps a new session.
    pub async fn add_session(
        &self,
        token_hash: String,
        session: StoredSession,
    ) -> Result<(), StoreError> {
        on_engine!(self.add_session(token_hash, session))
    }

    /// Ends every session made with a credential of `kind` other than the one whose
    /// fingerprint is `current` (the token changed); returns how many ended.
    pub async fn remove_sessions_made_with_other(
        &self,
        kind: String,
        current: String,
    ) -> Result<usize, StoreError> {
        on_engine!(self.remove_sessions_made_with_other(kind, current))
    }

    /// The random salt of credential fingerprints, made on first use and kept with the data.
    pub async fn credential_salt(&self) -> Result<String, StoreError> {
        on_engine!(self.credential_salt())
    }

    /// Ends a session (logout); with PostgreSQL every instance hears of it.
    pub async fn remove_session(&self, token_hash: String) -> Result<(), StoreError> {
        on_engine!(self.remove_session(token_hash))
    }

    /// Sessions ended elsewhere. PostgreSQL: each token hash as another instance removes it,
    /// and [`ALL_SESSIONS`] when a user was removed or changed their password, or after the
    /// connection that hears them was lost. SQLite: [`ALL_SESSIONS`] when another process
    /// wrote to the database (`leadstream users` removing a user or changing a password while
    /// the server runs).
    pub fn session_ends(&self) -> broadcast::Receiver<String> {
        match &self.engine {
            Engine::Sqlite(db) => db.session_ends(),
            Engine::Postgres(db) => db.session_ends(),
        }
    }

    // --- forms and state -----------------------------------------------------------------

    /// Records forms of `page_id` (when known) in one transaction; a value Meta left out
    /// keeps what was known before.
    pub async fn remember_forms(
        &self,
        page_id: Option<String>,
        forms: Vec<FormInfo>,
    ) -> Result<(), StoreError> {
        on_engine!(self.remember_forms(page_id, forms))
    }

    /// The name of a form, when known.
    pub async fn form_name(&self, form_id: String) -> Result<Option<String>, StoreError> {
        on_engine!(self.form_name(form_id))
    }

    /// Job counts, the last webhook and sync, and the lead count.
    pub async fn overview(&self) -> Result<Overview, StoreError> {
        on_engine!(self.overview())
    }

    /// Keeps the outcome of the sync that just ended.
    pub async fn record_sync(&self, last: LastSync) -> Result<(), StoreError> {
        on_engine!(self.record_sync(last))
    }

    /// Form id → the start (unix seconds) of the last sync that read the form to the end.
    pub async fn sync_watermarks(&self) -> Result<HashMap<String, i64>, StoreError> {
        on_engine!(self.sync_watermarks())
    }

    /// Notes that `form_id` was read to the end by the sync that started at `started` (an
    /// older mark never replaces a newer one).
    pub async fn set_sync_watermark(
        &self,
        form_id: String,
        started: i64,
    ) -> Result<(), StoreError> {
        on_engine!(self.set_sync_watermark(form_id, started))
    }

    // --- what instances share (PostgreSQL; SQLite keeps it in the process) ------------------

    /// The Graph pause and Meta's problem as every instance sees them. SQLite: the default.
    pub async fn shared_health(&self) -> Result<SharedHealth, StoreError> {
        match &self.engine {
            Engine::Sqlite(_) => Ok(SharedHealth::default()),
            Engine::Postgres(db) => db.shared_health().await,
        }
    }

    /// Pauses Graph calls on every instance until `until_ms` (a shorter pause never
    /// shortens a longer one). SQLite: nothing to share.
    pub async fn pause_graph_until(&self, until_ms: i64) -> Result<(), StoreError> {
        match &self.engine {
            Engine::Sqlite(_) => Ok(()),
            Engine::Postgres(db) => db.pause_graph_until(until_ms).await,
        }
    }

    /// Sets (or clears) Meta's problem for every instance. SQLite: nothing to share.
    pub async fn set_meta_problem(&self, words: Option<String>) -> Result<(), StoreError> {
        match &self.engine {
            Engine::Sqlite(_) => Ok(()),
            Engine::Postgres(db) => db.set_meta_problem(words).await,
        }
    }

    /// The right to run a sync now, if no other instance is running one; held until the
    /// turn is dropped. SQLite: always granted (the process runs one sync at a time itself).
    pub async fn try_sync_turn(&self) -> Result<Option<SyncTurn>, StoreError> {
        match &self.engine {
            Engine::Sqlite(_) => Ok(Some(SyncTurn::local())),
            Engine::Postgres(db) => db.try_sync_turn().await,
        }
    }

    /// The right to apply the retention period now, if no other instance is; held until the
    /// turn is dropped. SQLite: always granted.
    pub async fn try_retention_turn(&self) -> Result<Option<SyncTurn>, StoreError> {
        match &self.engine {
            Engine::Sqlite(_) => Ok(Some(SyncTurn::local())),
            Engine::Postgres(db) => db.try_retention_turn().await,
        }
    }

    /// Waits (up to `timeout`) until no instance runs a sync. SQLite: at once.
    pub async fn wait_for_sync_turn(&self, timeout: Duration) -> Result<(), StoreError> {
        match &self.engine {
            Engine::Sqlite(_) => Ok(()),
            Engine::Postgres(db) => db.wait_for_sync_turn(timeout).await,
        }
    }

    /// Who runs the periodic sync: with PostgreSQL one instance at a time, elected by a lock
    /// held for as long as its connection lives; with SQLite, this process.
    pub fn sync_leadership(&self) -> SyncLeadership {
        match &self.engine {
            Engine::Sqlite(_) => SyncLeadership::local(),
            Engine::Postgres(db) => db.sync_leadership(),
        }
    }
}

/// What [`Store::session_ends`] sends when every session may have ended unheard.
pub const ALL_SESSIONS: &str = "*";

// After the macro it uses.
mod team;
