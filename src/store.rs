//! SQLite: one writer thread with group commit, a small pool of reader connections, the
//! pragmas, the schema and its migrations, and the queries over leads.
//!
//! Why one writer thread: SQLite allows one writer at a time anyway, and a single thread that
//! drains its queue into one transaction lets one fsync (`synchronous=FULL`) cover many
//! deliveries (group commit) without ever answering a caller before its data is durable.
//! Each operation runs inside its own SAVEPOINT, so one failing operation does not take the
//! others of its batch down with it.
//!
//! The writer is also the one place that publishes leads: an operation returns the leads it
//! inserted, and they go out on the broadcast channel right after the COMMIT succeeded, in id
//! order. A lead is therefore never streamed before it is durable, and never twice.
//!
//! rusqlite is blocking, so it never runs on the async runtime: writes go to the writer
//! thread, reads to `spawn_blocking` with a pooled connection.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection, OptionalExtension, Row};
use tokio::sync::oneshot;

use crate::live::Hub;
pub use crate::model::now_ms;
use crate::model::{
    flatten_fields, format_millis, format_seconds, FieldData, Lead, LeadFilter, NewLead, SortKey,
};

/// The schema of a new database (user_version 1).
pub const SCHEMA: &str = include_str!("../schema.sql");

/// Migrations after version 1, in order: `MIGRATIONS[0]` takes a database from version 1 to 2.
/// Shipped entries are never edited; a change is a new entry.
const MIGRATIONS: &[&str] = &[];

/// Most operations one group commit takes from the queue.
const MAX_BATCH: usize = 1024;

#[derive(Debug)]
pub enum StoreError {
    Sqlite(rusqlite::Error),
    /// The batch this operation was part of could not be committed.
    Commit(String),
    /// The writer thread is gone (shutdown, or it panicked).
    Closed,
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Sqlite(e) => write!(f, "database error: {e}"),
            StoreError::Commit(e) => write!(f, "database commit failed: {e}"),
            StoreError::Closed => f.write_str("database writer stopped"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e)
    }
}

/// What a write operation gives back: its result, and the leads it inserted (to publish).
pub struct Written<T> {
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

/// A type-erased queued write: `run` inside the batch transaction, `complete` after COMMIT.
trait QueuedWrite: Send {
    /// Runs inside a SAVEPOINT; returns the leads to publish if the batch commits, or `None`
    /// when the operation failed (its savepoint is then rolled back).
    fn run(&mut self, conn: &Connection) -> Option<Vec<Lead>>;
    /// Tells the caller; `committed` is false when the COMMIT itself failed.
    fn complete(self: Box<Self>, committed: Result<(), String>);
}

struct Op<T, F> {
    f: Option<F>,
    result: Option<rusqlite::Result<T>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
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

/// Cheap to clone: a handle on the writer queue and the reader pool.
#[derive(Clone)]
pub struct Store {
    writer: mpsc::Sender<Box<dyn QueuedWrite>>,
    readers: Arc<ReaderPool>,
}

struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

/// Idle reader connections kept open; more are opened under load and closed afterwards.
const IDLE_READERS: usize = 8;

impl ReaderPool {
    fn get(&self) -> rusqlite::Result<Connection> {
        if let Some(c) = self.idle.lock().expect("pool lock").pop() {
            return Ok(c);
        }
        open_reader(&self.path)
    }

    fn put(&self, c: Connection) {
        let mut idle = self.idle.lock().expect("pool lock");
        if idle.len() < IDLE_READERS {
            idle.push(c);
        }
    }
}

fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let c = Connection::open(path)?;
    c.busy_timeout(Duration::from_secs(5))?;
    c.pragma_update(None, "query_only", true)?;
    set_up(&c)?;
    Ok(c)
}

/// What every connection needs, the writer's and each reader's.
fn set_up(c: &Connection) -> rusqlite::Result<()> {
    plan_once(c)?;
    add_functions(c)
}

/// `lower_unicode(text)`: Rust's `to_lowercase`, for the search. SQLite's own `lower()` folds
/// ASCII only, so a form named "Été" was not found by "été" (lead answers are lower-cased in
/// Rust when saved, so only form names, which can change, need this at query time).
fn add_functions(c: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    c.create_scalar_function(
        "lower_unicode",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            Ok(ctx
                .get::<Option<String>>(0)?
                .map(|text| text.to_lowercase()))
        },
    )
}

/// Keeps a cached statement's plan independent of the values bound to it.
///
/// Without this, SQLite (built with STAT4, as rusqlite bundles it) looks at the value bound
/// to `LIMIT ?` when it plans, and prepares the statement again whenever that value changes.
/// The worker's claim query binds a different limit nearly every time: in the ingest profile
/// those re-preparations were about 5% of the server's CPU. Our queries gain nothing from
/// value-dependent plans (no ANALYZE statistics, no LIKE prefix on an index).
fn plan_once(c: &Connection) -> rusqlite::Result<()> {
    c.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

impl Store {
    /// Opens (creating and migrating as needed) the database at `path` and starts the writer.
    /// Leads inserted by writes are published on `hub` after their commit.
    pub fn open(path: &Path, hub: Hub) -> Result<Store, String> {
        let describe = |e: rusqlite::Error| format!("cannot open database {}: {e}", path.display());
        let conn = Connection::open(path).map_err(describe)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(describe)?;
        // WAL: readers never block the writer. FULL: a commit survives power loss, which is
        // what a 200 to Meta promises. foreign_keys: deliveries ↔ jobs stay consistent.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(describe)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(describe)?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(describe)?;
        migrate(&conn).map_err(describe)?;
        // Every statement the writer runs stays prepared: the transaction control above, the
        // inserts of deliveries, jobs and leads, and the rest (rusqlite keeps 16 by default).
        conn.set_prepared_statement_cache_capacity(64);
        set_up(&conn).map_err(describe)?;
        let (tx, rx) = mpsc::channel::<Box<dyn QueuedWrite>>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx, hub))
            .map_err(|e| format!("cannot start the database writer: {e}"))?;
        Ok(Store {
            writer: tx,
            readers: Arc::new(ReaderPool {
                path: path.to_path_buf(),
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Queues `f` for the writer; resolves once the batch holding it is committed.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<Written<T>> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let op = Op {
            f: Some(f),
            result: None,
            reply,
        };
        self.writer
            .send(Box::new(op))
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` on a pooled read connection on the blocking pool.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.get()?;
            let out = f(&conn);
            pool.put(conn);
            out.map_err(StoreError::from)
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` on a read connection on the current thread. For code that is already on a
    /// blocking thread (exports).
    pub fn read_blocking<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let conn = self.readers.get()?;
        let out = f(&conn);
        self.readers.put(conn);
        out.map_err(StoreError::from)
    }

    /// Saves a lead unless one with the same `leadgen_id` exists, and marks its job done.
    /// Returns the saved lead, or `None` for a duplicate. This is the only way leads are
    /// written, so the only way they are published.
    pub async fn save_lead(&self, lead: NewLead) -> Result<Option<Lead>, StoreError> {
        self.write(move |c| {
            let saved = insert_lead(c, &lead, now_ms())?;
            Ok(Written {
                inserted: saved.iter().cloned().collect(),
                value: saved,
            })
        })
        .await
    }

    /// `(count, last_id)` of all leads.
    pub async fn count(&self) -> Result<(i64, i64), StoreError> {
        self.read(|c| {
            c.query_row(
                "SELECT count(*), coalesce(max(id), 0) FROM leads",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .await
    }

    pub async fn integrity_ok(&self) -> Result<bool, StoreError> {
        self.read(|c| c.query_row("PRAGMA quick_check", [], |r| r.get::<_, String>(0)))
            .await
            .map(|s| s == "ok")
    }

    pub async fn get_state(&self, key: &'static str) -> Result<Option<String>, StoreError> {
        self.read(move |c| {
            c.query_row("SELECT value FROM state WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
        })
        .await
    }

    pub async fn set_state(&self, key: &'static str, value: String) -> Result<(), StoreError> {
        self.write(move |c| {
            set_state(c, key, &value)?;
            Ok(Written::value(()))
        })
        .await
    }
}

pub fn set_state(c: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    // Cached: every webhook delivery sets `last_webhook_ms`.
    c.prepare_cached(
        "INSERT INTO state (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![key, value])?;
    Ok(())
}

fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == 0 {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {SCHEMA}; PRAGMA user_version = 1; COMMIT;"
        ))?;
        log::info!("created database schema version 1");
    }
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let to = i as i64 + 2;
        if version < to {
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {to}; COMMIT;"
            ))?;
            log::info!("migrated database to schema version {to}");
        }
    }
    Ok(())
}

fn writer_loop(conn: Connection, rx: mpsc::Receiver<Box<dyn QueuedWrite>>, hub: Hub) {
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
        if committed.is_ok() {
            // Ids were assigned in this order by one writer, so the stream is in id order.
            for lead in inserted.drain(..) {
                hub.publish(lead);
            }
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

/// Inserts a lead (once per `leadgen_id`) and closes its job. `None` for a duplicate.
pub fn insert_lead(
    c: &Connection,
    lead: &NewLead,
    received_ms: i64,
) -> rusqlite::Result<Option<Lead>> {
    let fields = flatten_fields(&lead.field_data);
    let received = Utc
        .timestamp_millis_opt(received_ms)
        .single()
        .unwrap_or_else(Utc::now);
    let mut out = Lead {
        id: 0,
        leadgen_id: lead.leadgen_id.clone(),
        page_id: lead.page_id.clone(),
        form_id: lead.form_id.clone(),
        form_name: None,
        ad_id: lead.ad_id.clone(),
        adgroup_id: lead.adgroup_id.clone(),
        campaign_id: lead.campaign_id.clone(),
        created_time: format_seconds(lead.created_time),
        received_at: format_millis(received),
        fields,
        field_data: lead.field_data.clone(),
        source: lead.source.as_str().to_string(),
    };
    let name = out.display_name();
    let field_data = serde_json::to_string(&lead.field_data).expect("field data serialises");
    let id: Option<i64> = c
        .prepare_cached(
            "INSERT INTO leads (leadgen_id, page_id, form_id, ad_id, adgroup_id, campaign_id,
                                created_time, created_ts, received_at, received_ms, source, name,
                                field_data, search_text)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT(leadgen_id) DO NOTHING
             RETURNING id",
        )?
        .query_row(
            params![
                out.leadgen_id,
                out.page_id,
                out.form_id,
                out.ad_id,
                out.adgroup_id,
                out.campaign_id,
                out.created_time,
                lead.created_time.timestamp(),
                out.received_at,
                received_ms,
                out.source,
                name,
                field_data,
                search_text(&out),
            ],
            |r| r.get(0),
        )
        .optional()?;
    c.prepare_cached(
        "UPDATE jobs SET state = 'done', updated_ms = ?2, last_error = NULL
         WHERE leadgen_id = ?1 AND state <> 'done'",
    )?
    .execute(params![out.leadgen_id, received_ms])?;
    let Some(id) = id else { return Ok(None) };
    out.id = id;
    if let Some(form_id) = &out.form_id {
        out.form_name = c
            .prepare_cached("SELECT name FROM forms WHERE form_id = ?1")?
            .query_row([form_id], |r| r.get(0))
            .optional()?
            .flatten();
    }
    Ok(Some(out))
}

/// Lower-cased text that `q` searches: the name, every answer, and the ids.
fn search_text(l: &Lead) -> String {
    let mut s = String::new();
    // U+001F between parts, so a search cannot match across two answers.
    let sep = '\u{1f}';
    for part in [
        Some(&l.leadgen_id),
        l.form_id.as_ref(),
        l.page_id.as_ref(),
        l.ad_id.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        s.push_str(part);
        s.push(sep);
    }
    for f in &l.field_data {
        for v in &f.values {
            s.push_str(&v.to_lowercase());
            s.push(sep);
        }
    }
    s
}

/// The columns [`lead_from_row`] reads, for `SELECT {LEAD_COLUMNS} FROM leads l LEFT JOIN forms f …`.
pub const LEAD_COLUMNS: &str =
    "l.id, l.leadgen_id, l.page_id, l.form_id, f.name, l.ad_id, l.adgroup_id, \
     l.campaign_id, l.created_time, l.received_at, l.field_data, l.source";
const LEAD_FROM: &str = "FROM leads l LEFT JOIN forms f ON f.form_id = l.form_id";

pub fn lead_from_row(r: &Row<'_>) -> rusqlite::Result<Lead> {
    let field_data_json: String = r.get(10)?;
    let field_data: Vec<FieldData> = serde_json::from_str(&field_data_json).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(10, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(Lead {
        id: r.get(0)?,
        leadgen_id: r.get(1)?,
        page_id: r.get(2)?,
        form_id: r.get(3)?,
        form_name: r.get(4)?,
        ad_id: r.get(5)?,
        adgroup_id: r.get(6)?,
        campaign_id: r.get(7)?,
        created_time: r.get(8)?,
        received_at: r.get(9)?,
        fields: flatten_fields(&field_data),
        field_data,
        source: r.get(11)?,
    })
}

/// `WHERE …` and its parameters for a filter (every listing and export uses this).
fn where_clause(filter: &LeadFilter) -> (String, Vec<SqlValue>) {
    let mut sql = String::from("WHERE 1 = 1");
    let mut args: Vec<SqlValue> = Vec::new();
    if let Some(q) = &filter.q {
        // Every word must appear somewhere: "ada gmail" finds Ada's gmail address.
        for word in q.to_lowercase().split_whitespace() {
            let escaped = word
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            sql.push_str(" AND (l.search_text LIKE ? ESCAPE '\\' OR lower_unicode(f.name) LIKE ? ESCAPE '\\')");
            let pattern = format!("%{escaped}%");
            args.push(SqlValue::Text(pattern.clone()));
            args.push(SqlValue::Text(pattern));
        }
    }
    for (col, v) in [
        ("l.form_id", &filter.form_id),
        ("l.page_id", &filter.page_id),
        ("l.ad_id", &filter.ad_id),
    ] {
        if let Some(v) = v {
            sql.push_str(&format!(" AND {col} = ?"));
            args.push(SqlValue::Text(v.clone()));
        }
    }
    if let Some(s) = filter.since {
        sql.push_str(" AND l.created_ts >= ?");
        args.push(SqlValue::Integer(s));
    }
    if let Some(u) = filter.until {
        sql.push_str(" AND l.created_ts <= ?");
        args.push(SqlValue::Integer(u));
    }
    (sql, args)
}

fn order_clause(filter: &LeadFilter) -> String {
    let dir = if filter.ascending { "ASC" } else { "DESC" };
    match filter.sort {
        // Row ids increase in the order leads were saved.
        SortKey::ReceivedAt => format!("ORDER BY l.id {dir}"),
        SortKey::CreatedTime => format!("ORDER BY l.created_ts {dir}, l.id {dir}"),
        SortKey::Name => format!("ORDER BY l.name COLLATE NOCASE {dir}, l.id {dir}"),
    }
}

/// One page of leads matching `filter`, and how many match in all.
pub fn list_leads(
    c: &Connection,
    filter: &LeadFilter,
    limit: usize,
    offset: usize,
) -> rusqlite::Result<(Vec<Lead>, i64)> {
    let (wh, mut args) = where_clause(filter);
    let total: i64 = c.query_row(
        &format!("SELECT count(*) {LEAD_FROM} {wh}"),
        rusqlite::params_from_iter(args.iter()),
        |r| r.get(0),
    )?;
    args.push(SqlValue::Integer(limit as i64));
    args.push(SqlValue::Integer(offset as i64));
    let sql = format!(
        "SELECT {LEAD_COLUMNS} {LEAD_FROM} {wh} {} LIMIT ? OFFSET ?",
        order_clause(filter)
    );
    let mut stmt = c.prepare(&sql)?;
    let leads = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), lead_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((leads, total))
}

/// Calls `f` for every lead matching `filter`, in listing order, one row in memory at a time.
/// `f` returning an error stops the walk (the export's reader went away).
pub fn for_each_lead<E>(
    c: &Connection,
    filter: &LeadFilter,
    mut f: impl FnMut(Lead) -> Result<(), E>,
) -> Result<(), ForEachError<E>> {
    let (wh, args) = where_clause(filter);
    let sql = format!(
        "SELECT {LEAD_COLUMNS} {LEAD_FROM} {wh} {}",
        order_clause(filter)
    );
    let mut stmt = c.prepare(&sql).map_err(ForEachError::Sqlite)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(args.iter()))
        .map_err(ForEachError::Sqlite)?;
    while let Some(row) = rows.next().map_err(ForEachError::Sqlite)? {
        f(lead_from_row(row).map_err(ForEachError::Sqlite)?).map_err(ForEachError::Callback)?;
    }
    Ok(())
}

#[derive(Debug)]
pub enum ForEachError<E> {
    Sqlite(rusqlite::Error),
    Callback(E),
}

/// Leads with an id above `after`, oldest first: the stream's replay.
pub fn leads_after(c: &Connection, after: i64, limit: usize) -> rusqlite::Result<Vec<Lead>> {
    let sql = format!("SELECT {LEAD_COLUMNS} {LEAD_FROM} WHERE l.id > ?1 ORDER BY l.id LIMIT ?2");
    let mut stmt = c.prepare_cached(&sql)?;
    let leads = stmt
        .query_map(params![after, limit as i64], lead_from_row)?
        .collect();
    leads
}

pub fn max_lead_id(c: &Connection) -> rusqlite::Result<i64> {
    c.query_row("SELECT coalesce(max(id), 0) FROM leads", [], |r| r.get(0))
}

/// Statistics of the leads matching `filter` (dates in UTC).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stats {
    pub today: i64,
    pub last_7_days: i64,
    pub total: i64,
    pub per_form: Vec<FormCount>,
    /// The last 30 days, oldest first, days without leads included.
    pub per_day: Vec<DayCount>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FormCount {
    pub form_id: Option<String>,
    pub form_name: Option<String>,
    pub page_id: Option<String>,
    pub count: i64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DayCount {
    pub day: String,
    pub count: i64,
}

pub fn stats(c: &Connection, filter: &LeadFilter, days: i64) -> rusqlite::Result<Stats> {
    let (wh, args) = where_clause(filter);
    let today_start = Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        .timestamp();
    let week_start = today_start - 6 * 86_400;
    let first_day = today_start - (days - 1) * 86_400;
    let (total, today, week): (i64, i64, i64) = c.query_row(
        &format!(
            "SELECT count(*),
                    coalesce(sum(l.created_ts >= {today_start}), 0),
                    coalesce(sum(l.created_ts >= {week_start}), 0)
             {LEAD_FROM} {wh}"
        ),
        rusqlite::params_from_iter(args.iter()),
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let mut stmt = c.prepare(&format!(
        "SELECT l.form_id, max(f.name), max(l.page_id), count(*) {LEAD_FROM} {wh}
         GROUP BY l.form_id ORDER BY count(*) DESC, l.form_id"
    ))?;
    let per_form = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), |r| {
            Ok(FormCount {
                form_id: r.get(0)?,
                form_name: r.get(1)?,
                page_id: r.get(2)?,
                count: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut stmt = c.prepare(&format!(
        "SELECT (l.created_ts - {first_day}) / 86400 AS d, count(*) {LEAD_FROM} {wh}
         AND l.created_ts >= {first_day} GROUP BY d"
    ))?;
    let mut counts = vec![0i64; days as usize];
    let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
    })?;
    for row in rows {
        let (d, n) = row?;
        if let Some(slot) = counts.get_mut(d as usize) {
            *slot = n;
        }
    }
    let per_day = counts
        .into_iter()
        .enumerate()
        .map(|(i, count)| DayCount {
            day: Utc
                .timestamp_opt(first_day + i as i64 * 86_400, 0)
                .single()
                .map(|t| t.format("%Y-%m-%d").to_string())
                .unwrap_or_default(),
            count,
        })
        .collect();
    Ok(Stats {
        today,
        last_7_days: week,
        total,
        per_form,
        per_day,
    })
}

/// Every form that has leads or is known from Meta, with its lead count.
pub fn forms_summary(c: &Connection) -> rusqlite::Result<Vec<FormCount>> {
    let mut stmt = c.prepare(
        "SELECT form_id, max(name), max(page_id), sum(n) FROM (
             SELECT l.form_id, NULL AS name, l.page_id, count(*) AS n FROM leads l
              WHERE l.form_id IS NOT NULL GROUP BY l.form_id
             UNION ALL
             SELECT form_id, name, page_id, 0 FROM forms)
         GROUP BY form_id ORDER BY sum(n) DESC, max(name), form_id",
    )?;
    let forms = stmt
        .query_map([], |r| {
            Ok(FormCount {
                form_id: r.get(0)?,
                form_name: r.get(1)?,
                page_id: r.get(2)?,
                count: r.get(3)?,
            })
        })?
        .collect();
    forms
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PageCount {
    pub page_id: String,
    pub count: i64,
}

pub fn pages_summary(c: &Connection) -> rusqlite::Result<Vec<PageCount>> {
    let mut stmt = c.prepare(
        "SELECT page_id, count(*) FROM leads WHERE page_id IS NOT NULL GROUP BY page_id ORDER BY count(*) DESC",
    )?;
    let pages = stmt
        .query_map([], |r| {
            Ok(PageCount {
                page_id: r.get(0)?,
                count: r.get(1)?,
            })
        })?
        .collect();
    pages
}

/// Records form names learnt from Meta.
pub fn upsert_form(
    c: &Connection,
    form_id: &str,
    page_id: Option<&str>,
    name: Option<&str>,
    status: Option<&str>,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO forms (form_id, page_id, name, status, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(form_id) DO UPDATE SET
             page_id = coalesce(excluded.page_id, forms.page_id),
             name = coalesce(excluded.name, forms.name),
             status = coalesce(excluded.status, forms.status),
             updated_ms = excluded.updated_ms",
    )?
    .execute(params![form_id, page_id, name, status, now_ms()])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lead_is_saved_once_and_published_once() {
        let dir = tempfile::tempdir().unwrap();
        let hub = Hub::new(16);
        let mut rx = hub.subscribe();
        let store = Store::open(&dir.path().join("t.db"), hub).unwrap();
        let first = store.save_lead(NewLead::sample("10", "Ada")).await.unwrap();
        let again = store.save_lead(NewLead::sample("10", "Ada")).await.unwrap();
        assert!(first.is_some());
        assert!(again.is_none());
        assert_eq!(
            rx.recv().await.unwrap().lead().unwrap().id,
            first.unwrap().id
        );
        assert!(
            rx.try_recv().is_err(),
            "the duplicate must not be published"
        );
        assert_eq!(store.count().await.unwrap().0, 1);
    }

    #[tokio::test]
    async fn a_failed_operation_leaves_no_half_write_while_its_batch_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), Hub::new(16)).unwrap();
        // Queued together, so the writer takes them into one transaction.
        let half = store.write(|c| {
            set_state(c, "half", "written")?;
            c.execute("INSERT INTO no_such_table VALUES (1)", [])?;
            Ok(Written::value(()))
        });
        let whole = store.set_state("whole", "written".into());
        let (half, whole) = tokio::join!(half, whole);
        assert!(half.is_err());
        whole.unwrap();
        assert_eq!(store.get_state("half").await.unwrap(), None);
        assert_eq!(
            store.get_state("whole").await.unwrap().as_deref(),
            Some("written")
        );
    }

    #[tokio::test]
    async fn a_burst_of_concurrent_saves_is_published_once_each_in_id_order() {
        let dir = tempfile::tempdir().unwrap();
        let hub = Hub::new(1024);
        let mut rx = hub.subscribe();
        let store = Store::open(&dir.path().join("t.db"), hub).unwrap();
        let saves =
            (0..300).map(|i| store.save_lead(NewLead::sample(&format!("{}", 1000 + i), "Ada")));
        let saved = futures_util::future::join_all(saves).await;
        assert!(saved.iter().all(|s| matches!(s, Ok(Some(_)))));
        let mut last = 0;
        for _ in 0..300 {
            let signal = rx.recv().await.unwrap();
            let ev = signal
                .lead()
                .expect("only leads: no stream started the clock");
            assert!(
                ev.id > last,
                "published out of order: {} after {last}",
                ev.id
            );
            last = ev.id;
        }
        assert_eq!(store.count().await.unwrap(), (300, last));
    }

    #[tokio::test]
    async fn a_failing_operation_does_not_sink_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), Hub::new(16)).unwrap();
        let bad = store.write(|c| {
            c.execute("INSERT INTO no_such_table VALUES (1)", [])?;
            Ok(Written::value(()))
        });
        let good = store.save_lead(NewLead::sample("11", "Bob"));
        let (bad, good) = tokio::join!(bad, good);
        assert!(bad.is_err());
        assert!(good.unwrap().is_some());
    }

    #[tokio::test]
    async fn search_matches_every_word_and_escapes_wildcards() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), Hub::new(16)).unwrap();
        store
            .save_lead(NewLead::sample("1", "Ada Lovelace"))
            .await
            .unwrap();
        store
            .save_lead(NewLead::sample("2", "Zoë Ström"))
            .await
            .unwrap();
        store
            .save_lead(NewLead::sample("3", "100% real"))
            .await
            .unwrap();
        let find = |q: &str| {
            let f = LeadFilter {
                q: Some(q.into()),
                ..Default::default()
            };
            store
                .read_blocking(move |c| list_leads(c, &f, 10, 0))
                .unwrap()
                .1
        };
        assert_eq!(find("ada love"), 1);
        assert_eq!(find("STRÖM"), 1);
        assert_eq!(find("%"), 1);
        assert_eq!(find("ada zoë"), 0);
        // Form names fold beyond ASCII too ("ÉTÉ" finds the form "Été").
        store
            .write(|c| {
                c.execute(
                    "INSERT INTO forms (form_id, name, updated_ms) VALUES ('2', 'Offre d''Été', 0)",
                    [],
                )?;
                Ok(Written::value(()))
            })
            .await
            .unwrap();
        assert_eq!(find("ÉTÉ"), 3);
        assert_eq!(find("été ström"), 1);
    }
}
