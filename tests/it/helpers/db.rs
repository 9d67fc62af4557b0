//! The test's own look into the server's database file, for what the HTTP surface does not
//! show (WAL: reading beside the server is fine).

use std::path::Path;
use std::time::Duration;

use super::app::TestApp;

/// A connection to the server's database that may also write (to plant a failing trigger).
pub fn db(app: &TestApp) -> rusqlite::Connection {
    rusqlite::Connection::open(&app.db_path).unwrap()
}

/// A read-only connection to the server's database.
pub fn db_read_only(app: &TestApp) -> rusqlite::Connection {
    let c = rusqlite::Connection::open_with_flags(
        &app.db_path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

/// The one number `sql` selects.
pub fn count(app: &TestApp, sql: &str) -> i64 {
    db_read_only(app).query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Every stored delivery, oldest first: `(kind, raw body)`.
pub fn deliveries(app: &TestApp) -> Vec<(String, Vec<u8>)> {
    let c = db(app);
    let mut stmt = c
        .prepare("SELECT kind, body FROM deliveries ORDER BY id")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap();
    rows
}

pub fn job_count(app: &TestApp) -> i64 {
    db(app)
        .query_row("SELECT count(*) FROM jobs", [], |r| r.get(0))
        .unwrap()
}

/// `PRAGMA integrity_check` of the database file at `path`: "ok" when it is sound.
pub fn integrity(path: &Path) -> String {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}
