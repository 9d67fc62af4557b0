//! The inbox: deliveries (through the batching writer), and jobs claimed with a lease.
//!
//! A claim marks a job as this instance's (`locked_by`) until `locked_until`; the claim skips
//! rows another claim holds right now (`FOR UPDATE SKIP LOCKED`), so two instances never take
//! the same job. An outcome is written only while the claim is still ours: an instance that
//! was presumed dead and comes back cannot overwrite what its successor did.

use bytes::Bytes;
use tokio::sync::oneshot;

use super::writer::{Queued, StoreDelivery};
use super::{text, Postgres};
use crate::model::{now_ms, LeadgenChange};
use crate::store::{DeadLetter, DueJobs, Job, StoreError, Stored};

impl Postgres {
    pub async fn store_delivery(
        &self,
        body: Bytes,
        kind: &'static str,
        note: Option<String>,
        leads: Vec<LeadgenChange>,
    ) -> Result<Stored, StoreError> {
        let (reply, rx) = oneshot::channel();
        let op = StoreDelivery {
            body,
            kind,
            note,
            leads,
            received_ms: now_ms(),
        };
        self.inner
            .deliveries
            .send(Queued { op, reply })
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Only counts: making every job due now would reset the backoff of the whole cluster
    /// each time one instance starts.
    pub async fn resume_jobs(&self) -> Result<i64, StoreError> {
        Ok(self
            .client()
            .await?
            .query_one("SELECT count(*) FROM jobs WHERE state = 'pending'", &[])
            .await?
            .get(0))
    }

    /// Jobs this instance claimed before count as free (the caller's `skip` holds the ones it
    /// is still working on): a job whose outcome could not be written must not wait for its
    /// own lease to run out.
    ///
    /// One statement claims and says when the next job is due, committed without waiting
    /// for the disk: a claim lost in a crash of the database only lets a job run twice, and
    /// its lead is saved once all the same. It is planned for each call (see
    /// [`CUSTOM_PLAN`](super::CUSTOM_PLAN)): planned once while `jobs` was small, it read and
    /// sorted every due job of a backlog to claim a few, 3 ms a claim at 10,000.
    pub async fn claim_jobs(&self, limit: usize, skip: Vec<String>) -> Result<DueJobs, StoreError> {
        let c = self.client().await?;
        let now = now_ms();
        // The claim's rows, then one row with only `next_due`: when the next job not claimed
        // now is due. (A lease that runs out is noticed by the worker looking again every
        // second; asking for the next one here would read every pending row.)
        let claim = c
            .prepare_cached(
                "WITH claimed AS (
                     UPDATE jobs j SET locked_by = $1, locked_until = $2 + $3
                     FROM (SELECT leadgen_id FROM jobs
                           WHERE state = 'pending' AND next_attempt_ms <= $2
                             AND (locked_until IS NULL OR locked_until <= $2 OR locked_by = $1)
                             AND leadgen_id <> ALL($4)
                           ORDER BY next_attempt_ms, first_seen_ms
                           LIMIT $5
                           FOR UPDATE SKIP LOCKED) due
                     WHERE j.leadgen_id = due.leadgen_id
                     RETURNING j.leadgen_id, j.page_id, j.form_id, j.ad_id, j.adgroup_id,
                               j.attempts, j.first_seen_ms, j.next_attempt_ms)
                 SELECT leadgen_id, page_id, form_id, ad_id, adgroup_id, attempts,
                        first_seen_ms, next_attempt_ms, NULL::bigint AS next_due
                 FROM claimed
                 UNION ALL
                 SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                        (SELECT min(next_attempt_ms) FROM jobs
                         WHERE state = 'pending' AND next_attempt_ms > $2)",
            )
            .await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [
            &self.inner.me,
            &now,
            &self.inner.lease_ms,
            &skip,
            &(limit as i64),
        ];
        let begin = format!(
            "BEGIN; SET LOCAL synchronous_commit TO off; {}",
            super::CUSTOM_PLAN
        );
        let rows = super::query_alone(&c, &begin, &claim, &params).await?;
        let mut next_due_ms = None;
        let mut jobs: Vec<(i64, Job)> = Vec::with_capacity(rows.len());
        for r in &rows {
            let Some(leadgen_id) = r.get::<_, Option<String>>(0) else {
                next_due_ms = r.get(8);
                continue;
            };
            let job = Job {
                leadgen_id,
                page_id: r.get(1),
                form_id: r.get(2),
                ad_id: r.get(3),
                adgroup_id: r.get(4),
                attempts: r.get(5),
                first_seen_ms: r.get(6),
            };
            jobs.push((r.get::<_, i64>(7), job));
        }
        jobs.sort_by_key(|(next, job)| (*next, job.first_seen_ms));
        Ok(DueJobs {
            jobs: jobs.into_iter().map(|(_, j)| j).collect(),
            next_due_ms,
        })
    }

    pub async fn retry_job_later(
        &self,
        leadgen_id: String,
        attempts: i64,
        next_attempt_ms: i64,
        error: String,
        error_code: Option<i64>,
    ) -> Result<(), StoreError> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "UPDATE jobs SET attempts = $2, next_attempt_ms = $3, last_error = $4,
                                 last_error_code = $5, updated_ms = $6,
                                 locked_by = NULL, locked_until = NULL
                 WHERE leadgen_id = $1 AND state = 'pending' AND locked_by = $7",
            )
            .await?;
        let n = c
            .execute(
                &stmt,
                &[
                    &leadgen_id,
                    &attempts,
                    &next_attempt_ms,
                    &text(&error),
                    &error_code,
                    &now_ms(),
                    &self.inner.me,
                ],
            )
            .await?;
        if n == 0 {
            log::info!(
                "lead {leadgen_id}: its claim had passed to another instance; that one decides"
            );
        }
        Ok(())
    }

    pub async fn set_job_aside(
        &self,
        leadgen_id: String,
        attempts: i64,
        error: String,
        error_code: Option<i64>,
    ) -> Result<(), StoreError> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "UPDATE jobs SET state = 'dead', attempts = $2, last_error = $3,
                                 last_error_code = $4, updated_ms = $5,
                                 locked_by = NULL, locked_until = NULL
                 WHERE leadgen_id = $1 AND state = 'pending' AND locked_by = $6",
            )
            .await?;
        c.execute(
            &stmt,
            &[
                &leadgen_id,
                &attempts,
                &text(&error),
                &error_code,
                &now_ms(),
                &self.inner.me,
            ],
        )
        .await?;
        Ok(())
    }

    pub async fn retry_dead_letters(&self) -> Result<usize, StoreError> {
        let now = now_ms();
        let n = self
            .client()
            .await?
            .execute(
                "UPDATE jobs SET state = 'pending', attempts = 0, first_seen_ms = $1,
                                 next_attempt_ms = $1, updated_ms = $1,
                                 locked_by = NULL, locked_until = NULL
                 WHERE state = 'dead'",
                &[&now],
            )
            .await?;
        Ok(n as usize)
    }

    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT leadgen_id, form_id, attempts, last_error, last_error_code, updated_ms
                 FROM jobs WHERE state = 'dead' ORDER BY updated_ms DESC LIMIT $1",
                &[&(limit as i64)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| DeadLetter {
                leadgen_id: r.get(0),
                form_id: r.get(1),
                attempts: r.get(2),
                error: r.get(3),
                error_code: r.get(4),
                updated_ms: r.get(5),
            })
            .collect())
    }
}
