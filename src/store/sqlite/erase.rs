//! Erasing leads: every row that holds their personal values goes in one transaction (the
//! lead, its notes, its history and its events), an `erased` event takes the next id of the
//! one event sequence, and the file keeps none of their bytes afterwards (`secure_delete` on
//! the writer, then a checkpoint that empties the write-ahead log).

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::events::record_event;
use super::writer::Written;
use super::Sqlite;
use crate::model::{now_ms, Event, EventKind};
use crate::store::StoreError;

impl Sqlite {
    /// Erases the leads `ids` (see [`crate::store::Store::erase_leads`]); the ids that were
    /// there.
    pub async fn erase_leads(&self, ids: Vec<i64>) -> Result<Vec<i64>, StoreError> {
        let erased = self
            .write(move |c| {
                let now = now_ms();
                let mut erased = Vec::new();
                let mut events = Vec::new();
                for id in ids {
                    if let Some(event) = erase_lead(c, id, now)? {
                        erased.push(id);
                        events.push(event);
                    }
                }
                // The writer hands the `erased` events to the sink after the commit.
                Ok(Written {
                    value: erased,
                    inserted: events,
                })
            })
            .await?;
        if !erased.is_empty() {
            let path = self.path.clone();
            tokio::task::spawn_blocking(move || checkpoint(&path))
                .await
                .map_err(|_| StoreError::Closed)??;
        }
        Ok(erased)
    }

    /// Up to `limit` ids of leads received before `before_ms` (unix ms), oldest first.
    pub async fn leads_received_before(
        &self,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<i64>, StoreError> {
        self.read(move |c| {
            // By id, which follows the order of receipt: the old ones are met first, and the
            // scan stops after `limit` of them.
            let mut stmt = c.prepare_cached(
                "SELECT id FROM leads WHERE received_ms < ?1 ORDER BY id LIMIT ?2",
            )?;
            let ids = stmt
                .query_map(params![before_ms, limit as i64], |r| r.get(0))?
                .collect();
            ids
        })
        .await
    }
}

/// Deletes lead `id` with its notes, its history and its events, leaves its job as a
/// tombstone that holds Meta's ids only, so neither a webhook delivered again nor a sync
/// fetches the person's answers back, and records its `erased` event. `None` when there was
/// no such lead.
fn erase_lead(c: &Connection, id: i64, now: i64) -> rusqlite::Result<Option<Event>> {
    let leadgen_id: Option<String> = c
        .prepare_cached("SELECT leadgen_id FROM leads WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    let Some(leadgen_id) = leadgen_id else {
        return Ok(None);
    };
    // Notes and history first: they point at the lead. Its earlier events go too, so a replay
    // has nothing of it to tell but the erasure; and its forwarding deliveries, pending or not,
    // since their bodies hold the lead's answers.
    for sql in [
        "DELETE FROM notes WHERE lead_id = ?1",
        "DELETE FROM history WHERE lead_id = ?1",
        "DELETE FROM events WHERE lead_id = ?1",
        "DELETE FROM forwards WHERE lead_id = ?1",
        "DELETE FROM leads WHERE id = ?1",
    ] {
        c.prepare_cached(sql)?.execute([id])?;
    }
    c.prepare_cached(
        "INSERT INTO jobs (leadgen_id, state, first_seen_ms, next_attempt_ms, updated_ms)
         VALUES (?1, 'erased', ?2, ?2, ?2)
         ON CONFLICT(leadgen_id) DO UPDATE
             SET state = 'erased', last_error = NULL, last_error_code = NULL,
                 updated_ms = excluded.updated_ms",
    )?
    .execute(params![leadgen_id, now])?;
    // AUTOINCREMENT: the id is above every id the sequence ever gave, deleted ones included.
    let event_id = record_event(c, EventKind::Erased, id, now)?;
    Ok(Some(Event::erased(event_id, id)))
}

/// Copies the write-ahead log into the database and empties it: until then the log still
/// holds the pages as they were before the erasure. Readers in the middle of a read can hold
/// it up, so it is tried a few times; a later checkpoint overwrites what is left.
fn checkpoint(path: &Path) -> Result<(), StoreError> {
    // Never created here: a database removed under the server must not come back empty.
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // About two seconds in all: the erasure's answer waits for this.
    c.busy_timeout(Duration::from_millis(400))?;
    for _ in 0..4 {
        let busy: i64 = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        if busy == 0 {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    log::warn!(
        "erasure: the write-ahead log could not be emptied while readers were busy; the next \
         checkpoint overwrites the erased pages"
    );
    Ok(())
}
