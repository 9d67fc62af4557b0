//! The `sessions` table: a SHA-256 of each dashboard session cookie, whom it belongs to, the
//! credential that made it (its kind and a fingerprint), and when it expires.

use std::collections::HashMap;

use super::state::{get_state, set_state};
use rusqlite::OptionalExtension;

use super::writer::Written;
use super::Sqlite;
use crate::model::now_ms;
use crate::store::{StoreError, StoredSession, CREDENTIAL_SALT};

impl Sqlite {
    /// Forgets the sessions that expired by `now_ms` and returns the others, by cookie hash.
    pub async fn load_sessions(
        &self,
        now_ms: i64,
    ) -> Result<HashMap<String, StoredSession>, StoreError> {
        self.write(move |c| {
            c.execute("DELETE FROM sessions WHERE expires_ms <= ?1", [now_ms])?;
            let mut stmt = c.prepare(
                "SELECT token_hash, principal, credential_kind, credential_fp, expires_ms
                 FROM sessions",
            )?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        StoredSession {
                            principal: r.get(1)?,
                            credential_kind: r.get(2)?,
                            credential_fp: r.get(3)?,
                            expires_ms: r.get(4)?,
                        },
                    ))
                })?
                .collect::<rusqlite::Result<HashMap<_, _>>>()?;
            Ok(Written::value(rows))
        })
        .await
    }

    pub async fn session(&self, token_hash: String) -> Result<Option<StoredSession>, StoreError> {
        self.read(move |c| {
            c.query_row(
                "SELECT principal, credential_kind, credential_fp, expires_ms
                 FROM sessions WHERE token_hash = ?1",
                [token_hash],
                |r| {
                    Ok(StoredSession {
                        principal: r.get(0)?,
                        credential_kind: r.get(1)?,
                        credential_fp: r.get(2)?,
                        expires_ms: r.get(3)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    /// Keeps a new session.
    pub async fn add_session(
        &self,
        token_hash: String,
        session: StoredSession,
    ) -> Result<(), StoreError> {
        self.write(move |c| {
            c.execute(
                "INSERT INTO sessions
                   (token_hash, created_ms, expires_ms, principal, credential_kind, credential_fp)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                rusqlite::params![
                    token_hash,
                    now_ms(),
                    session.expires_ms,
                    session.principal,
                    session.credential_kind,
                    session.credential_fp
                ],
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

    /// Ends every session made with a credential of `kind` other than the one whose
    /// fingerprint is `current` (the token changed); returns how many ended.
    pub async fn remove_sessions_made_with_other(
        &self,
        kind: String,
        current: String,
    ) -> Result<usize, StoreError> {
        self.write(move |c| {
            let n = c.execute(
                "DELETE FROM sessions WHERE credential_kind = ?1 AND credential_fp != ?2",
                [kind, current],
            )?;
            Ok(Written::value(n))
        })
        .await
    }

    /// The random salt of credential fingerprints, made on first use and kept with the data:
    /// the same token fingerprints alike for as long as this database lives, and differently
    /// in every other.
    pub async fn credential_salt(&self) -> Result<String, StoreError> {
        self.write(|c| {
            let salt = match get_state(c, CREDENTIAL_SALT)? {
                Some(salt) => salt,
                None => {
                    let salt = crate::config::random_token(32);
                    set_state(c, CREDENTIAL_SALT, &salt)?;
                    salt
                }
            };
            Ok(Written::value(salt))
        })
        .await
    }
}
