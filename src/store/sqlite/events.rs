//! The `events` table: one strictly increasing id sequence for the stream, shared by new leads
//! (a lead's id is its `created` event's) and changes to leads (`updated`). Every event is
//! written here, by [`new_lead_event`] or [`record_event`], inside the transaction that saves
//! the lead or its change: whatever must happen exactly once per event (a delivery to
//! forward, say) belongs in that same transaction, next to these calls.

use rusqlite::{params, Connection};

use super::leads::lead_from_row;
use super::Sqlite;
use crate::model::{Event, EventKind};
use crate::store::rows::{EVENT_COLUMNS, EVENT_FROM, EVENT_TOLD, LEAD_COLUMNS, LEAD_COLUMN_COUNT};
use crate::store::{Counts, StoreError};

/// The `created` event of a lead about to be inserted: its id becomes the lead's.
pub(super) fn new_lead_event(c: &Connection, at_ms: i64) -> rusqlite::Result<i64> {
    let id: i64 = c
        .prepare_cached(
            "INSERT INTO events (lead_id, kind, at_ms) VALUES (0, 'created', ?1) RETURNING id",
        )?
        .query_row([at_ms], |r| r.get(0))?;
    // Now that the id is known, the event names its lead: the lead of the same id.
    c.prepare_cached("UPDATE events SET lead_id = id WHERE id = ?1")?
        .execute([id])?;
    Ok(id)
}

/// An event of `kind` about the lead `lead_id`; its id.
pub(super) fn record_event(
    c: &Connection,
    kind: EventKind,
    lead_id: i64,
    at_ms: i64,
) -> rusqlite::Result<i64> {
    c.prepare_cached("INSERT INTO events (lead_id, kind, at_ms) VALUES (?1, ?2, ?3) RETURNING id")?
        .query_row(params![lead_id, kind.as_str(), at_ms], |r| r.get(0))
}

/// An event from a row of `SELECT {LEAD_COLUMNS}, {EVENT_COLUMNS} {EVENT_FROM}`.
fn event_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    let id = r.get(LEAD_COLUMN_COUNT)?;
    let kind: String = r.get(LEAD_COLUMN_COUNT + 1)?;
    let kind = EventKind::parse(&kind).unwrap_or(EventKind::Updated);
    if kind == EventKind::Erased {
        return Ok(Event::erased(id, r.get(LEAD_COLUMN_COUNT + 2)?));
    }
    Ok(Event::about(kind, id, lead_from_row(r)?))
}

impl Sqlite {
    pub async fn count(&self) -> Result<Counts, StoreError> {
        self.read(|c| {
            c.query_row(
                "SELECT (SELECT count(*) FROM leads), (SELECT coalesce(max(id), 0) FROM leads),
                        (SELECT coalesce(max(id), 0) FROM events)",
                [],
                |r| {
                    Ok(Counts {
                        count: r.get(0)?,
                        last_id: r.get(1)?,
                        last_event_id: r.get(2)?,
                    })
                },
            )
        })
        .await
    }

    /// The newest event id (0 when there is none).
    pub async fn max_event_id(&self) -> Result<i64, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT coalesce(max(id), 0) FROM events")?
                .query_row([], |r| r.get(0))
        })
        .await
    }

    /// Up to `limit` events with an id above `after`, oldest first: the stream's replay.
    pub async fn events_after(&self, after: i64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {LEAD_COLUMNS}, {EVENT_COLUMNS} {EVENT_FROM}
                 WHERE e.id > ?1 AND {EVENT_TOLD} ORDER BY e.id LIMIT ?2"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let events = stmt
                .query_map(params![after, limit as i64], event_from_row)?
                .collect();
            events
        })
        .await
    }
}
