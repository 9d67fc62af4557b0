//! The inbox tables: `deliveries` (every signed webhook, raw) and `jobs` (one per lead id Meta
//! announced: pending, done or set aside as a dead letter).
//!
//! A job is a row, so it survives a crash; the worker only ever holds a copy.

use bytes::Bytes;
use rusqlite::{params, Connection};

use super::state::set_state;
use super::writer::Written;
use super::Sqlite;
use crate::model::{now_ms, LeadgenChange};
use crate::store::StoreError;
use crate::store::{DeadLetter, DueJobs, Job, Stored};

impl Sqlite {
    /// Stores a signed delivery's raw `body` and one pending job per lead in `leads` that has
    /// neither a job nor a saved lead yet, and notes the time of the last webhook: one
    /// transaction, so a 200 after it means none of it can be lost.
    pub async fn store_delivery(
        &self,
        body: Bytes,
        kind: &'static str,
        note: Option<String>,
        leads: Vec<LeadgenChange>,
    ) -> Result<Stored, StoreError> {
        self.write(move |c| {
            let now = now_ms();
            c.prepare_cached(
                "INSERT INTO deliveries (received_ms, kind, note, body) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![now, kind, note, &body[..]])?;
            let delivery_id = c.last_insert_rowid();
            let mut new_jobs = 0;
            let mut insert = c.prepare_cached(
                "INSERT INTO jobs (leadgen_id, page_id, form_id, ad_id, adgroup_id, webhook_created,
                                   delivery_id, first_seen_ms, next_attempt_ms, updated_ms)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?8
                 WHERE NOT EXISTS (SELECT 1 FROM leads WHERE leadgen_id = ?1)
                 ON CONFLICT(leadgen_id) DO NOTHING",
            )?;
            for l in &leads {
                new_jobs += insert.execute(params![
                    l.leadgen_id,
                    l.page_id,
                    l.form_id,
                    l.ad_id,
                    l.adgroup_id,
                    l.created_time,
                    delivery_id,
                    now
                ])?;
            }
            set_state(c, "last_webhook_ms", &now.to_string())?;
            Ok(Written::value(Stored {
                delivery_id,
                new_jobs,
            }))
        })
        .await
    }

    /// Makes every pending job due now (after a restart the person wants their leads, and the
    /// wait was only a courtesy to Graph); returns how many are pending.
    pub async fn resume_jobs(&self) -> Result<i64, StoreError> {
        self.write(|c| {
            let now = now_ms();
            c.execute(
                "UPDATE jobs SET next_attempt_ms = ?1
                 WHERE state = 'pending' AND next_attempt_ms > ?1",
                [now],
            )?;
            let pending: i64 = c.query_row(
                "SELECT count(*) FROM jobs WHERE state = 'pending'",
                [],
                |r| r.get(0),
            )?;
            Ok(Written::value(pending))
        })
        .await
    }

    /// Up to `limit` due pending jobs (oldest first) whose lead id is not in `skip` (the ones
    /// this process is working on), and when the next job is due. Nothing is marked: with one
    /// process, `skip` is what keeps a job from running twice.
    pub async fn claim_jobs(&self, limit: usize, skip: Vec<String>) -> Result<DueJobs, StoreError> {
        // Read as many more as are skipped, so `limit` are left after skipping.
        self.read(move |c| {
            let mut due = due_jobs(c, now_ms(), limit + skip.len(), &skip)?;
            due.jobs.truncate(limit);
            Ok(due)
        })
        .await
    }

    /// Records a failed try of a pending job: `attempts` so far, the next try at
    /// `next_attempt_ms`, and why it failed.
    pub async fn retry_job_later(
        &self,
        leadgen_id: String,
        attempts: i64,
        next_attempt_ms: i64,
        error: String,
        error_code: Option<i64>,
    ) -> Result<(), StoreError> {
        self.write(move |c| {
            c.execute(
                "UPDATE jobs SET attempts = ?2, next_attempt_ms = ?3, last_error = ?4,
                                 last_error_code = ?5, updated_ms = ?6
                 WHERE leadgen_id = ?1 AND state = 'pending'",
                params![
                    leadgen_id,
                    attempts,
                    next_attempt_ms,
                    error,
                    error_code,
                    now_ms()
                ],
            )?;
            Ok(Written::value(()))
        })
        .await
    }

    /// Sets a pending job aside as a dead letter after `attempts` tries, with why.
    pub async fn set_job_aside(
        &self,
        leadgen_id: String,
        attempts: i64,
        error: String,
        error_code: Option<i64>,
    ) -> Result<(), StoreError> {
        self.write(move |c| {
            c.execute(
                "UPDATE jobs SET state = 'dead', attempts = ?2, last_error = ?3,
                                 last_error_code = ?4, updated_ms = ?5
                 WHERE leadgen_id = ?1 AND state = 'pending'",
                params![leadgen_id, attempts, error, error_code, now_ms()],
            )?;
            Ok(Written::value(()))
        })
        .await
    }

    /// Puts every dead letter back in the queue, due now. Returns how many.
    pub async fn retry_dead_letters(&self) -> Result<usize, StoreError> {
        self.write(|c| {
            let now = now_ms();
            let n = c.execute(
                "UPDATE jobs SET state = 'pending', attempts = 0, first_seen_ms = ?1,
                                 next_attempt_ms = ?1, updated_ms = ?1
                 WHERE state = 'dead'",
                [now],
            )?;
            Ok(Written::value(n))
        })
        .await
    }

    /// The newest `limit` dead letters.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT leadgen_id, form_id, attempts, last_error, last_error_code, updated_ms
                 FROM jobs WHERE state = 'dead' ORDER BY updated_ms DESC LIMIT ?1",
            )?;
            let rows = stmt
                .query_map([limit as i64], |r| {
                    Ok(DeadLetter {
                        leadgen_id: r.get(0)?,
                        form_id: r.get(1)?,
                        attempts: r.get(2)?,
                        error: r.get(3)?,
                        error_code: r.get(4)?,
                        updated_ms: r.get(5)?,
                    })
                })?
                .collect();
            rows
        })
        .await
    }
}

fn due_jobs(c: &Connection, now: i64, limit: usize, skip: &[String]) -> rusqlite::Result<DueJobs> {
    let mut stmt = c.prepare_cached(
        "SELECT leadgen_id, page_id, form_id, ad_id, adgroup_id, attempts, first_seen_ms
         FROM jobs WHERE state = 'pending' AND next_attempt_ms <= ?1
         ORDER BY next_attempt_ms, first_seen_ms LIMIT ?2",
    )?;
    let jobs = stmt
        .query_map(params![now, limit as i64], |r| {
            Ok(Job {
                leadgen_id: r.get(0)?,
                page_id: r.get(1)?,
                form_id: r.get(2)?,
                ad_id: r.get(3)?,
                adgroup_id: r.get(4)?,
                attempts: r.get(5)?,
                first_seen_ms: r.get(6)?,
            })
        })?
        .filter(|j| j.as_ref().map_or(true, |j| !skip.contains(&j.leadgen_id)))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let next_due_ms: Option<i64> = c.query_row(
        "SELECT min(next_attempt_ms) FROM jobs WHERE state = 'pending' AND next_attempt_ms > ?1",
        [now],
        |r| r.get(0),
    )?;
    Ok(DueJobs { jobs, next_due_ms })
}

/// `(pending, dead)` job counts.
pub(super) fn job_counts(c: &Connection) -> rusqlite::Result<(i64, i64)> {
    c.query_row(
        "SELECT coalesce(sum(state = 'pending'), 0), coalesce(sum(state = 'dead'), 0) FROM jobs",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}
