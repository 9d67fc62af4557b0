//! The test's own look into the server's database, for what the HTTP surface does not show:
//! the SQLite file (WAL: reading beside the server is fine), or the test's PostgreSQL database.
//! Values come back as text, whichever engine.

use std::path::Path;
use std::time::Duration;

use super::app::TestApp;
use super::pg;

/// The rows `sql` selects, every value as text (`None` for NULL). Plain SQL both engines
/// understand, or [`rows_in`] for the two spellings.
pub async fn rows(app: &TestApp, sql: &str) -> Vec<Vec<Option<String>>> {
    rows_in(app, sql, sql).await
}

/// Like [`rows`], with the query as each engine spells it.
pub async fn rows_in(app: &TestApp, sqlite: &str, postgres: &str) -> Vec<Vec<Option<String>>> {
    match &app.database_url {
        Some(url) => {
            let c = pg::connect(url).await;
            c.simple_query(postgres)
                .await
                .unwrap_or_else(|e| panic!("{postgres}: {e}"))
                .into_iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => {
                        Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                    }
                    _ => None,
                })
                .collect()
        }
        None => {
            let c = db_read_only(app);
            let mut stmt = c.prepare(sqlite).unwrap();
            let n = stmt.column_count();
            let rows = stmt
                .query_map([], |r| {
                    (0..n)
                        .map(|i| {
                            Ok(match r.get_ref(i)? {
                                rusqlite::types::ValueRef::Null => None,
                                rusqlite::types::ValueRef::Integer(i) => Some(i.to_string()),
                                rusqlite::types::ValueRef::Real(f) => Some(f.to_string()),
                                rusqlite::types::ValueRef::Text(t) => {
                                    Some(String::from_utf8_lossy(t).into_owned())
                                }
                                rusqlite::types::ValueRef::Blob(b) => Some(hex::encode(b)),
                            })
                        })
                        .collect()
                })
                .unwrap()
                .collect::<rusqlite::Result<Vec<Vec<Option<String>>>>>()
                .unwrap();
            rows
        }
    }
}

/// The first value of the first row `sql` selects.
pub async fn one(app: &TestApp, sql: &str) -> Option<String> {
    rows(app, sql)
        .await
        .into_iter()
        .next()?
        .into_iter()
        .next()?
}

/// The one number `sql` selects.
pub async fn count(app: &TestApp, sql: &str) -> i64 {
    one(app, sql)
        .await
        .unwrap_or_else(|| panic!("{sql}: no value"))
        .parse()
        .unwrap()
}

/// Runs statements, as each engine spells them (to plant a failing trigger, say).
pub async fn exec(app: &TestApp, sqlite: &str, postgres: &str) {
    match &app.database_url {
        Some(url) => pg::connect(url)
            .await
            .batch_execute(postgres)
            .await
            .unwrap_or_else(|e| panic!("{postgres}: {e}")),
        None => {
            let c = rusqlite::Connection::open(&app.db_path).unwrap();
            c.busy_timeout(Duration::from_secs(5)).unwrap();
            c.execute_batch(sqlite).unwrap();
        }
    }
}

/// Every stored delivery, oldest first: `(kind, raw body)`.
pub async fn deliveries(app: &TestApp) -> Vec<(String, Vec<u8>)> {
    rows_in(
        app,
        "SELECT kind, hex(body) FROM deliveries ORDER BY id",
        "SELECT kind, encode(body, 'hex') FROM deliveries ORDER BY id",
    )
    .await
    .into_iter()
    .map(|r| {
        (
            r[0].clone().unwrap(),
            hex::decode(r[1].as_deref().unwrap_or("")).unwrap(),
        )
    })
    .collect()
}

pub async fn job_count(app: &TestApp) -> i64 {
    count(app, "SELECT count(*) FROM jobs").await
}

/// A connection to the server's SQLite file that may write (tests that plant rows in the file
/// itself, and say they run on SQLite only).
pub fn db(app: &TestApp) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(&app.db_path).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

/// A read-only connection to the server's SQLite file.
pub fn db_read_only(app: &TestApp) -> rusqlite::Connection {
    let c = rusqlite::Connection::open_with_flags(
        &app.db_path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

/// `PRAGMA integrity_check` of the database file at `path`: "ok" when it is sound.
pub fn integrity(path: &Path) -> String {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}
