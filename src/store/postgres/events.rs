//! The `events` table read back: the stream's replay, the newest id, the counts. Events are
//! written by the lead-saving writer (`created`, in the lead's statement) and by changes
//! (`updated`, in `team`), both under the ordering lock.

use tokio_postgres::Row;

use super::leads::lead_from_row;
use super::Postgres;
use crate::model::{Event, EventKind};
use crate::store::rows::{EVENT_COLUMNS, EVENT_FROM, EVENT_TOLD, LEAD_COLUMNS, LEAD_COLUMN_COUNT};
use crate::store::{Counts, StoreError};

/// The query that reads events after an id, oldest first, with their leads.
pub(super) fn events_after_sql(limit: &str) -> String {
    format!(
        "SELECT {LEAD_COLUMNS}, {EVENT_COLUMNS} {EVENT_FROM}
         WHERE e.id > $1 AND {EVENT_TOLD} ORDER BY e.id LIMIT {limit}"
    )
}

/// An event from a row of [`events_after_sql`].
pub(super) fn event_from_row(r: &Row) -> Result<Event, StoreError> {
    let id = r.try_get(LEAD_COLUMN_COUNT)?;
    let kind: String = r.try_get(LEAD_COLUMN_COUNT + 1)?;
    let kind = EventKind::parse(&kind).unwrap_or(EventKind::Updated);
    if kind == EventKind::Erased {
        return Ok(Event::erased(id, r.try_get(LEAD_COLUMN_COUNT + 2)?));
    }
    Ok(Event::about(kind, id, lead_from_row(r)?))
}

impl Postgres {
    pub async fn count(&self) -> Result<Counts, StoreError> {
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT (SELECT count(*) FROM leads), (SELECT coalesce(max(id), 0) FROM leads),
                        (SELECT coalesce(max(id), 0) FROM events)",
                &[],
            )
            .await?;
        Ok(Counts {
            count: row.get(0),
            last_id: row.get(1),
            last_event_id: row.get(2),
        })
    }

    pub async fn max_event_id(&self) -> Result<i64, StoreError> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached("SELECT coalesce(max(id), 0) FROM events")
            .await?;
        Ok(c.query_one(&stmt, &[]).await?.get(0))
    }

    /// Planned for each call, as the feed's read is (see [`super::CUSTOM_PLAN`]).
    pub async fn events_after(&self, after: i64, limit: usize) -> Result<Vec<Event>, StoreError> {
        let c = self.client().await?;
        let stmt = c.prepare_cached(&events_after_sql("$2")).await?;
        let limit = limit as i64;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&after, &limit];
        let begin = format!("BEGIN READ ONLY; {}", super::CUSTOM_PLAN);
        super::query_alone(&c, &begin, &stmt, &params)
            .await?
            .iter()
            .map(event_from_row)
            .collect()
    }
}
