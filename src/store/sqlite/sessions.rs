//! The `sessions` table: a SHA-256 of each dashboard session cookie and when it expires.

use std::collections::HashMap;

use rusqlite::OptionalExtension;

use super::writer::Written;
use super::Sqlite;
use crate::model::now_ms;
use crate::store::StoreError;

impl Sqlite {
    /// Forgets the sessions that expired by `now_ms` and returns the others: token hash →
    /// expiry (unix ms).
    pub async fn load_sessions(&self, now_ms: i64) -> Result<HashMap<String, i64>, StoreError> {
        self.write(move |c| {
            c.execute("DELETE FROM sessions WHERE expires_ms <= ?1", [now_ms])?;
            let mut stmt = c.prepare("SELECT token_hash, expires_ms FROM sessions")?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
                .collect::<rusqlite::Result<HashMap<_, _>>>()?;
            Ok(Written::value(rows))
        })
        .await
    }

    pub async fn session_expiry(&self, token_hash: String) -> Result<Option<i64>, StoreError> {
        self.read(move |c| {
            c.query_row(
                "SELECT expires_ms FROM sessions WHERE token_hash = ?1",
                [token_hash],
                |r| r.get(0),
            )
            .optional()
        })
        .await
    }

    /// Keeps a new session until `expires_ms`.
    pub async fn add_session(&self, token_hash: String, expires_ms: i64) -> Result<(), StoreError> {
        self.write(move |c| {
            c.execute(
                "INSERT INTO sessions (token_hash, created_ms, expires_ms) VALUES (?1, ?2, ?3)",
                rusqlite::params![token_hash, now_ms(), expires_ms],
            )?;
            Ok(Written::value(()))
        })
        .await
    }

    /// Ends a session (logout).
    pub async fn remove_session(&self, token_hash: String) -> Result<(), StoreError> {
        self.write(move |c| {
            c.execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])?;
            Ok(Written::value(()))
        })
        .await
    }
}
