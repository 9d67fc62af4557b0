//! Connections as the store wants them: the pragmas, our SQL functions, the schema of a new
//! database and the migrations of an old one.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

/// The schema of a new database (user_version 1).
const SCHEMA: &str = include_str!("../../../schema.sql");

/// Migrations after version 1, in order: `MIGRATIONS[0]` takes a database from version 1 to 2.
/// Shipped entries are never edited; a change is a new entry.
const MIGRATIONS: &[&str] = &[
    // 2: a session belongs to a principal (the token acts as `admin`) and remembers the kind
    // and a fingerprint of the credential that made it, so a changed token ends the sessions
    // made with the old one. Sessions from before cannot be told apart, so they end: everyone
    // logs in once after the upgrade.
    "DELETE FROM sessions;
     ALTER TABLE sessions ADD COLUMN principal TEXT NOT NULL DEFAULT 'admin';
     ALTER TABLE sessions ADD COLUMN credential_kind TEXT NOT NULL DEFAULT '';
     ALTER TABLE sessions ADD COLUMN credential_fp TEXT NOT NULL DEFAULT '';",
    // 3: working the leads as a team.
    //
    // `events` is the stream's one id sequence: a new lead's id is its `created` event's id,
    // and every change to a lead is an `updated` event. Every lead saved before gets its
    // `created` event with its own id, and the sequence goes on after the highest id the
    // leads ever had, so a stream resuming with a Last-Event-ID from before the upgrade
    // replays exactly what came after it.
    //
    // Leads gain a status, an owner (a user's name), the time of their first contact, the
    // time of their last change (empty for leads saved before: their receipt counts), a
    // version and their number of notes; users, notes and the history of changes get tables
    // of their own, and sessions remember their role.
    "CREATE TABLE events (
         id       INTEGER PRIMARY KEY AUTOINCREMENT,
         lead_id  INTEGER NOT NULL,
         kind     TEXT    NOT NULL,    -- 'created' | 'updated' | 'erased'
         at_ms    INTEGER NOT NULL
     );
     CREATE INDEX events_lead ON events(lead_id);
     INSERT INTO events (id, lead_id, kind, at_ms)
         SELECT id, id, 'created', received_ms FROM leads ORDER BY id;
     DELETE FROM sqlite_sequence WHERE name = 'events';
     INSERT INTO sqlite_sequence (name, seq)
         SELECT 'events', max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'leads'), 0),
                              coalesce((SELECT max(id) FROM events), 0));
     ALTER TABLE leads ADD COLUMN status TEXT NOT NULL DEFAULT 'new';
     ALTER TABLE leads ADD COLUMN owner TEXT;
     ALTER TABLE leads ADD COLUMN first_contact_ms INTEGER;
     ALTER TABLE leads ADD COLUMN updated_ms INTEGER;
     ALTER TABLE leads ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
     ALTER TABLE leads ADD COLUMN notes_count INTEGER NOT NULL DEFAULT 0;
     CREATE INDEX leads_status ON leads(status, received_ms);
     CREATE TABLE users (
         name_key       TEXT    PRIMARY KEY,   -- the name in lower case: names are unique in any case
         name           TEXT    NOT NULL,      -- as it was given
         password_hash  TEXT    NOT NULL,      -- Argon2id, PHC string
         role           TEXT    NOT NULL,      -- 'admin' | 'member'
         created_ms     INTEGER NOT NULL,
         updated_ms     INTEGER NOT NULL
     );
     CREATE TABLE notes (
         id          INTEGER PRIMARY KEY AUTOINCREMENT,
         lead_id     INTEGER NOT NULL REFERENCES leads(id),
         author      TEXT    NOT NULL,
         text        TEXT    NOT NULL,
         created_ms  INTEGER NOT NULL
     );
     CREATE INDEX notes_lead ON notes(lead_id, id);
     CREATE TABLE history (
         id          INTEGER PRIMARY KEY AUTOINCREMENT,
         lead_id     INTEGER NOT NULL REFERENCES leads(id),
         at_ms       INTEGER NOT NULL,
         changed_by  TEXT    NOT NULL,
         field       TEXT    NOT NULL,         -- 'status' | 'owner'
         from_value  TEXT,
         to_value    TEXT
     );
     CREATE INDEX history_lead ON history(lead_id, id);
     ALTER TABLE sessions ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';",
    // 4: forwarding. `destinations` are where leads go besides the dashboard; `forwards` holds
    // one row per event and destination (a delivery), made in the transaction that saves the
    // lead, so a crash loses none. The payload is the body as it was when the event happened.
    // webhook_id is random, so a receiver that deduplicates by it never mistakes a delivery
    // of a database started afresh for one it has seen.
    "CREATE TABLE destinations (
         id                 INTEGER PRIMARY KEY AUTOINCREMENT,
         kind               TEXT    NOT NULL,           -- 'webhook' | 'email'
         url                TEXT,                       -- webhook: where to POST
         recipients         TEXT,                       -- email: JSON list of addresses
         secret             TEXT,                       -- webhook: whsec_…, signs; never served
         forms              TEXT,                       -- JSON list of form ids; NULL: all
         events             TEXT    NOT NULL,           -- JSON list: lead.created, lead.updated
         created_ms         INTEGER NOT NULL,
         failures           INTEGER NOT NULL DEFAULT 0, -- failed tries in a row
         failing_since_ms   INTEGER,                    -- the first of them
         last_error         TEXT,
         last_delivered_ms  INTEGER,
         delivered_count    INTEGER NOT NULL DEFAULT 0
     );
     CREATE TABLE forwards (
         id               INTEGER PRIMARY KEY AUTOINCREMENT,
         destination_id   INTEGER NOT NULL REFERENCES destinations(id) ON DELETE CASCADE,
         lead_id          INTEGER,                      -- NULL for a test
         event            TEXT    NOT NULL,             -- 'lead.created' | 'lead.updated' | 'test'
         webhook_id       TEXT    NOT NULL DEFAULT ('msg_' || lower(hex(randomblob(12)))),
         payload          TEXT    NOT NULL,             -- the body, JSON, as sent on every try
         state            TEXT    NOT NULL DEFAULT 'pending',  -- 'pending' | 'delivered' | 'dead'
         attempts         INTEGER NOT NULL DEFAULT 0,
         created_ms       INTEGER NOT NULL,             -- retries stop 48 h later
         next_attempt_ms  INTEGER NOT NULL,
         updated_ms       INTEGER NOT NULL,
         last_status      INTEGER,                      -- HTTP status or SMTP code of the last try
         last_error       TEXT,                         -- and a short, escaped piece of the answer
         delivered_ms     INTEGER
     );
     CREATE INDEX forwards_due ON forwards(destination_id, next_attempt_ms) WHERE state = 'pending';
     CREATE INDEX forwards_next ON forwards(next_attempt_ms) WHERE state = 'pending';
     CREATE INDEX forwards_dead ON forwards(destination_id) WHERE state = 'dead';
     CREATE INDEX forwards_listing ON forwards(destination_id, id);
     CREATE INDEX forwards_lead ON forwards(lead_id);",
];

/// The version a database has once every migration ran.
pub(in crate::store) const VERSION: i64 = 1 + MIGRATIONS.len() as i64;

/// The writer's connection: the database at `path`, created and migrated as needed.
pub(super) fn open_writer(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // WAL: readers never block the writer. FULL: a commit survives power loss, which is
    // what a 200 to Meta promises. foreign_keys: deliveries ↔ jobs stay consistent.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // An erased lead's bytes are overwritten with zeros, not left in free pages of the file.
    conn.pragma_update(None, "secure_delete", true)?;
    migrate(&conn)?;
    // Every statement the writer runs stays prepared: the transaction control above, the
    // inserts of deliveries, jobs and leads, and the rest (rusqlite keeps 16 by default).
    conn.set_prepared_statement_cache_capacity(64);
    set_up(&conn)?;
    Ok(conn)
}

/// A read-only connection for the reader pool. It never creates the file: a database removed
/// under a running server must not come back as an empty one.
pub(in crate::store) fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    use rusqlite::OpenFlags;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let c = Connection::open_with_flags(path, flags)?;
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
