//! Erasing leads: every row that holds their personal values goes in one transaction (the
//! lead, its notes, its history and its events), and each erased lead gets an `erased` event,
//! written under the ordering lock like every event, so every instance's feed reads it back in
//! id order and tells its streams. PostgreSQL keeps dead row versions until VACUUM reclaims
//! them; autovacuum does that on its own schedule (docs/operations.md).

use super::{Postgres, CHANNEL_LEADS, LOCK_LEADS, LOCK_SPACE};
use crate::model::now_ms;
use crate::store::StoreError;

impl Postgres {
    pub async fn erase_leads(&self, ids: Vec<i64>) -> Result<Vec<i64>, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        // Every transaction that writes events takes the ordering lock, so ids commit in order.
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&LOCK_SPACE, &LOCK_LEADS],
        )
        .await?;
        // Notes and history point at the lead, so they go first; the lead's earlier events go
        // too, so a replay has nothing of it to tell but the erasure. The job stays as a
        // tombstone with Meta's ids only, so neither a webhook delivered again nor a sync
        // fetches the person's answers back.
        let stmt = tx
            .prepare_cached(
                "WITH target AS (
                     SELECT id FROM leads WHERE id = ANY($1) FOR UPDATE),
                 notes_gone AS (
                     DELETE FROM notes WHERE lead_id IN (SELECT id FROM target)),
                 history_gone AS (
                     DELETE FROM history WHERE lead_id IN (SELECT id FROM target)),
                 events_gone AS (
                     DELETE FROM events WHERE lead_id IN (SELECT id FROM target))
                 SELECT id FROM target ORDER BY id",
            )
            .await?;
        let rows = tx.query(&stmt, &[&ids]).await?;
        let erased: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        if erased.is_empty() {
            tx.rollback().await?;
            return Ok(erased);
        }
        let now = now_ms();
        let stmt = tx
            .prepare_cached(
                "WITH gone AS (
                     DELETE FROM leads WHERE id = ANY($1) RETURNING id, leadgen_id),
                 -- Forwarding deliveries hold the answers in their bodies: pending or not.
                 forwarded AS (
                     DELETE FROM forwards WHERE lead_id IN (SELECT id FROM gone)),
                 tomb AS (
                     INSERT INTO jobs (leadgen_id, state, first_seen_ms, next_attempt_ms,
                                       updated_ms)
                     SELECT leadgen_id, 'erased', $2, $2, $2 FROM gone
                     ON CONFLICT (leadgen_id) DO UPDATE
                         SET state = 'erased', last_error = NULL, last_error_code = NULL,
                             locked_by = NULL, locked_until = NULL,
                             updated_ms = excluded.updated_ms)
                 SELECT count(*) FROM gone",
            )
            .await?;
        tx.query_one(&stmt, &[&erased, &now]).await?;
        // One `erased` event per lead, in the order of their ids.
        tx.execute(
            "INSERT INTO events (lead_id, kind, at_ms)
             SELECT id, 'erased', $2 FROM unnest($1::bigint[]) WITH ORDINALITY AS t(id, n)
             ORDER BY n",
            &[&erased, &now],
        )
        .await?;
        // Delivered at COMMIT: the feeds of every instance read the events back.
        tx.batch_execute(&format!("NOTIFY {CHANNEL_LEADS}")).await?;
        tx.commit().await?;
        self.inner.nudge.notify_one();
        Ok(erased)
    }

    pub async fn leads_received_before(
        &self,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<i64>, StoreError> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached("SELECT id FROM leads WHERE received_ms < $1 ORDER BY id LIMIT $2")
            .await?;
        let rows = c.query(&stmt, &[&before_ms, &(limit as i64)]).await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}
