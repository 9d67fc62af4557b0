//! Erasing leads: every row that holds their personal values goes in one transaction, which
//! also tells every instance which leads went. PostgreSQL keeps dead row versions until VACUUM reclaims them; autovacuum
//! does that on its own schedule (docs/operations.md).

use super::{Postgres, CHANNEL_ERASED};
use crate::model::now_ms;
use crate::store::StoreError;

impl Postgres {
    pub async fn erase_leads(&self, ids: Vec<i64>) -> Result<Vec<i64>, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        // The job stays as a tombstone with Meta's ids only, so neither a webhook delivered
        // again nor a sync fetches the person's answers back.
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
                 SELECT id FROM gone ORDER BY id",
            )
            .await?;
        let rows = tx.query(&stmt, &[&ids, &now_ms()]).await?;
        let erased: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        // Every instance's feed hears it once this commits, and tells its own streams. A
        // notification holds at most 8000 bytes: 500 ids of up to 15 digits fit.
        for part in erased.chunks(500) {
            let payload = part
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",");
            tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL_ERASED, &payload])
                .await?;
        }
        tx.commit().await?;
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
