//! What the instances share besides leads and jobs: sessions (a logout is announced to every
//! instance), form names, the sync's state and watermarks, and Meta's health.

use std::collections::HashMap;

use super::{opt_text, Postgres, CHANNEL_SESSIONS};
use crate::model::{now_ms, LastSync};
use crate::store::{
    FormInfo, Overview, SharedHealth, StoreError, StoredSession, ALL_SESSIONS, CREDENTIAL_SALT,
};

/// A session from `principal, credential_kind, credential_fp, expires_ms` at column `at`.
fn stored_session(r: &tokio_postgres::Row, at: usize) -> StoredSession {
    StoredSession {
        principal: r.get(at),
        credential_kind: r.get(at + 1),
        credential_fp: r.get(at + 2),
        expires_ms: r.get(at + 3),
    }
}

const LAST_SYNC: &str = "last_sync";

impl Postgres {
    pub async fn load_sessions(
        &self,
        now_ms: i64,
    ) -> Result<HashMap<String, StoredSession>, StoreError> {
        let c = self.client().await?;
        c.execute("DELETE FROM sessions WHERE expires_ms <= $1", &[&now_ms])
            .await?;
        let rows = c
            .query(
                "SELECT token_hash, principal, credential_kind, credential_fp, expires_ms
                 FROM sessions",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), stored_session(r, 1)))
            .collect())
    }

    pub async fn session(&self, token_hash: String) -> Result<Option<StoredSession>, StoreError> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "SELECT principal, credential_kind, credential_fp, expires_ms
                 FROM sessions WHERE token_hash = $1",
            )
            .await?;
        Ok(c.query_opt(&stmt, &[&token_hash])
            .await?
            .map(|r| stored_session(&r, 0)))
    }

    pub async fn add_session(
        &self,
        token_hash: String,
        session: StoredSession,
    ) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO sessions (token_hash, created_ms, expires_ms, principal,
                                       credential_kind, credential_fp)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &token_hash,
                    &now_ms(),
                    &session.expires_ms,
                    &session.principal,
                    &session.credential_kind,
                    &session.credential_fp,
                ],
            )
            .await?;
        Ok(())
    }

    /// Deletes them, and asks every instance to look at its sessions again.
    pub async fn remove_sessions_made_with_other(
        &self,
        kind: String,
        current: String,
    ) -> Result<usize, StoreError> {
        let row = self
            .client()
            .await?
            .query_one(
                &format!(
                    "WITH gone AS (DELETE FROM sessions
                                   WHERE credential_kind = $1 AND credential_fp <> $2
                                   RETURNING 1),
                          n AS (SELECT count(*) AS n FROM gone)
                     SELECT n, CASE WHEN n > 0 THEN pg_notify('{CHANNEL_SESSIONS}', '{ALL_SESSIONS}')
                               END IS NULL FROM n"
                ),
                &[&kind, &current],
            )
            .await?;
        Ok(row.get::<_, i64>(0) as usize)
    }

    /// Made once, by whichever instance comes first.
    pub async fn credential_salt(&self) -> Result<String, StoreError> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO state (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            &[&CREDENTIAL_SALT, &crate::config::random_token(32)],
        )
        .await?;
        Ok(c.query_one(
            "SELECT value FROM state WHERE key = $1",
            &[&CREDENTIAL_SALT],
        )
        .await?
        .get(0))
    }

    /// Deletes the session and tells every instance, in one statement (so one transaction:
    /// the notification goes out when the row is gone).
    pub async fn remove_session(&self, token_hash: String) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                &format!(
                    "WITH gone AS (DELETE FROM sessions WHERE token_hash = $1)
                     SELECT pg_notify('{CHANNEL_SESSIONS}', $1)"
                ),
                &[&token_hash],
            )
            .await?;
        Ok(())
    }

    pub async fn remember_forms(
        &self,
        page_id: Option<String>,
        forms: Vec<FormInfo>,
    ) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let upsert = tx
            .prepare_cached(
                "INSERT INTO forms (form_id, page_id, name, name_folded, status, updated_ms)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (form_id) DO UPDATE SET
                     page_id = coalesce(excluded.page_id, forms.page_id),
                     name = coalesce(excluded.name, forms.name),
                     name_folded = coalesce(excluded.name_folded, forms.name_folded),
                     status = coalesce(excluded.status, forms.status),
                     updated_ms = excluded.updated_ms",
            )
            .await?;
        for f in &forms {
            let name = opt_text(&f.name);
            let folded = name.as_deref().map(str::to_lowercase);
            tx.execute(
                &upsert,
                &[
                    &f.form_id,
                    &page_id,
                    &name,
                    &folded,
                    &opt_text(&f.status),
                    &now_ms(),
                ],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn form_name(&self, form_id: String) -> Result<Option<String>, StoreError> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached("SELECT name FROM forms WHERE form_id = $1")
            .await?;
        Ok(c.query_opt(&stmt, &[&form_id])
            .await?
            .and_then(|r| r.get(0)))
    }

    pub async fn overview(&self) -> Result<Overview, StoreError> {
        // The last webhook is the newest delivery: no row that every webhook would update
        // (and every instance wait for).
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT (SELECT count(*) FROM jobs WHERE state = 'pending'),
                        (SELECT count(*) FROM jobs WHERE state = 'dead'),
                        (SELECT received_ms FROM deliveries ORDER BY id DESC LIMIT 1),
                        (SELECT value FROM state WHERE key = $1),
                        (SELECT count(*) FROM leads)",
                &[&LAST_SYNC],
            )
            .await?;
        Ok(Overview {
            jobs_waiting: row.get(0),
            dead_letters: row.get(1),
            last_webhook_ms: row.get(2),
            last_sync: row
                .get::<_, Option<String>>(3)
                .and_then(|s| serde_json::from_str(&s).ok()),
            leads: row.get(4),
        })
    }

    pub async fn record_sync(&self, last: LastSync) -> Result<(), StoreError> {
        let value = serde_json::to_string(&last).expect("serialises");
        self.client()
            .await?
            .execute(
                "INSERT INTO state (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&LAST_SYNC, &value],
            )
            .await?;
        Ok(())
    }

    pub async fn sync_watermarks(&self) -> Result<HashMap<String, i64>, StoreError> {
        let rows = self
            .client()
            .await?
            .query("SELECT form_id, started FROM sync_watermarks", &[])
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn set_sync_watermark(
        &self,
        form_id: String,
        started: i64,
    ) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO sync_watermarks (form_id, started) VALUES ($1, $2)
                 ON CONFLICT (form_id) DO UPDATE
                 SET started = greatest(sync_watermarks.started, excluded.started)",
                &[&form_id, &started],
            )
            .await?;
        Ok(())
    }

    pub async fn shared_health(&self) -> Result<SharedHealth, StoreError> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached("SELECT paused_until_ms, meta_problem FROM graph_health WHERE id = 1")
            .await?;
        let row = c.query_one(&stmt, &[]).await?;
        Ok(SharedHealth {
            graph_paused_until_ms: row.get(0),
            meta_problem: row.get(1),
        })
    }

    pub async fn pause_graph_until(&self, until_ms: i64) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "UPDATE graph_health SET paused_until_ms = greatest(paused_until_ms, $1) WHERE id = 1",
                &[&until_ms],
            )
            .await?;
        Ok(())
    }

    pub async fn set_meta_problem(&self, words: Option<String>) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "UPDATE graph_health SET meta_problem = $1
                 WHERE id = 1 AND meta_problem IS DISTINCT FROM $1",
                &[&opt_text(&words)],
            )
            .await?;
        Ok(())
    }
}
