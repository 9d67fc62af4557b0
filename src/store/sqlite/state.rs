//! The `state` table: small facts that must survive a restart (the last webhook, the last
//! sync and how far it read each form), and the overview `/api/status` shows.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};

use super::jobs::job_counts;
use super::writer::Written;
use super::Sqlite;
use crate::model::LastSync;
use crate::store::Overview;
use crate::store::StoreError;

const LAST_WEBHOOK_MS: &str = "last_webhook_ms";
const LAST_SYNC: &str = "last_sync";
/// The per-form watermarks of the sync: `{"<form_id>": <unix seconds>}`.
const SYNC_WATERMARKS: &str = "sync_form_watermarks";

impl Sqlite {
    /// Job counts, the last webhook and sync, and the lead count.
    pub async fn overview(&self) -> Result<Overview, StoreError> {
        self.read(|c| {
            let (jobs_waiting, dead_letters) = job_counts(c)?;
            let leads: i64 = c.query_row("SELECT count(*) FROM leads", [], |r| r.get(0))?;
            Ok(Overview {
                jobs_waiting,
                dead_letters,
                last_webhook_ms: get_state(c, LAST_WEBHOOK_MS)?.and_then(|ms| ms.parse().ok()),
                last_sync: get_state(c, LAST_SYNC)?.and_then(|s| serde_json::from_str(&s).ok()),
                leads,
            })
        })
        .await
    }

    /// Keeps the outcome of the sync that just ended.
    pub async fn record_sync(&self, last: LastSync) -> Result<(), StoreError> {
        self.write(move |c| {
            set_state(
                c,
                LAST_SYNC,
                &serde_json::to_string(&last).expect("serialises"),
            )?;
            Ok(Written::value(()))
        })
        .await
    }

    /// Form id → the start (unix seconds) of the last sync that read the form to the end.
    pub async fn sync_watermarks(&self) -> Result<HashMap<String, i64>, StoreError> {
        self.read(watermarks).await
    }

    /// Notes that `form_id` was read to the end by the sync that started at `started`.
    pub async fn set_sync_watermark(
        &self,
        form_id: String,
        started: i64,
    ) -> Result<(), StoreError> {
        self.write(move |c| {
            let mut marks = watermarks(c)?;
            marks.insert(form_id, started);
            set_state(
                c,
                SYNC_WATERMARKS,
                &serde_json::to_string(&marks).expect("serialises"),
            )?;
            Ok(Written::value(()))
        })
        .await
    }
}

fn watermarks(c: &Connection) -> rusqlite::Result<HashMap<String, i64>> {
    Ok(get_state(c, SYNC_WATERMARKS)?
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default())
}

pub(super) fn get_state(c: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    c.query_row("SELECT value FROM state WHERE key = ?1", [key], |r| {
        r.get(0)
    })
    .optional()
}

pub(super) fn set_state(c: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    // Cached: every webhook delivery sets `last_webhook_ms`.
    c.prepare_cached(
        "INSERT INTO state (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![key, value])?;
    Ok(())
}
