//! Forwarding's tables: destinations, and deliveries claimed with a lease.
//!
//! Deliveries of saved leads are written by [`queue_lead_event`] inside the batch transaction
//! that saves them (under the ordering lock), so they commit together. A claim takes due
//! deliveries destination by destination (a `LATERAL` read per destination), so a
//! destination with thousands waiting never crowds the others out of a claim, and marks them
//! this instance's until the lease ends; an outcome is written only while the claim is still
//! ours, as with the jobs.

use deadpool_postgres::Client;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::{text, Postgres};
use crate::model::forward::{
    DeliveryRecord, Destination, DueDelivery, EventType, NewDestination, Outcome,
};
use crate::model::{now_ms, Lead};
use crate::store::forwards::{
    deliveries_for, DeliveryColumns, DestinationColumns, DestinationRow, DueColumns, Route,
    DELIVERY_COLUMNS, DESTINATION_COLUMNS, DUE_COLUMNS, MAX_LISTED_DELIVERIES,
};
use crate::store::{DueDeliveries, StoreError};

/// Writes the deliveries `event` about `leads` makes (one per destination that wants it), in
/// the caller's transaction: two statements, whatever the number of leads.
pub(super) async fn queue_lead_event(
    c: &impl deadpool_postgres::GenericClient,
    event: EventType,
    leads: &[Lead],
    timestamp: impl Fn(&Lead) -> String,
) -> Result<usize, tokio_postgres::Error> {
    if leads.is_empty() {
        return Ok(0);
    }
    let routes_stmt = c
        .prepare_cached("SELECT id, forms, events FROM destinations")
        .await?;
    let routes: Vec<Route> = c
        .query(&routes_stmt, &[])
        .await?
        .iter()
        .map(|r| Route::new(r.get(0), r.get(1), r.get(2)))
        .collect();
    let made = deliveries_for(&routes, event, leads, timestamp);
    if made.is_empty() {
        return Ok(0);
    }
    let insert = c
        .prepare_cached(
            "INSERT INTO forwards (destination_id, lead_id, event, payload, created_ms,
                                   next_attempt_ms, updated_ms)
             SELECT x.destination_id, x.lead_id, x.event, x.payload, $5, $5, $5
             FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[])
                  AS x(destination_id, lead_id, event, payload)",
        )
        .await?;
    let destinations: Vec<i64> = made.iter().map(|d| d.destination_id).collect();
    let lead_ids: Vec<i64> = made.iter().map(|d| d.lead_id).collect();
    let events: Vec<&str> = made.iter().map(|d| d.event).collect();
    // PostgreSQL's text cannot hold NUL; JSON writes one as \u0000, so a body never has one.
    let payloads: Vec<&str> = made.iter().map(|d| &*d.payload).collect();
    c.execute(
        &insert,
        &[&destinations, &lead_ids, &events, &payloads, &now_ms()],
    )
    .await?;
    Ok(made.len())
}

fn destination_from_row(r: &Row) -> Destination {
    DestinationColumns {
        id: r.get(0),
        kind: r.get(1),
        url: r.get(2),
        recipients: r.get(3),
        forms: r.get(4),
        events: r.get(5),
        created_ms: r.get(6),
        failures: r.get(7),
        failing_since_ms: r.get(8),
        last_error: r.get(9),
        last_delivered_ms: r.get(10),
        delivered: r.get(11),
        pending: r.get(12),
        dead: r.get(13),
    }
    .into_destination()
}

fn delivery_from_row(r: &Row) -> DeliveryRecord {
    DeliveryColumns {
        id: r.get(0),
        destination_id: r.get(1),
        event: r.get(2),
        lead_id: r.get(3),
        webhook_id: r.get(4),
        state: r.get(5),
        attempts: r.get(6),
        created_ms: r.get(7),
        updated_ms: r.get(8),
        next_attempt_ms: r.get(9),
        last_status: r.get(10),
        last_error: r.get(11),
        delivered_ms: r.get(12),
    }
    .into_record()
}

fn due_from_row(r: &Row) -> DueDelivery {
    DueColumns {
        id: r.get(0),
        destination_id: r.get(1),
        event: r.get(2),
        lead_id: r.get(3),
        webhook_id: r.get(4),
        payload: r.get(5),
        attempts: r.get(6),
        created_ms: r.get(7),
        kind: r.get(8),
        url: r.get(9),
        recipients: r.get(10),
        secret: r.get(11),
    }
    .into_due()
}

impl Postgres {
    pub async fn add_destination(&self, new: NewDestination) -> Result<Destination, StoreError> {
        let row = DestinationRow::new(&new);
        let c = self.client().await?;
        let id: i64 = c
            .query_one(
                "INSERT INTO destinations (kind, url, recipients, secret, forms, events, created_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                &[
                    &row.kind,
                    &row.url.as_deref().map(text),
                    &row.recipients.as_deref().map(text),
                    &row.secret,
                    &row.forms.as_deref().map(text),
                    &row.events,
                    &now_ms(),
                ],
            )
            .await?
            .get(0);
        let row = c
            .query_one(
                &format!("SELECT {DESTINATION_COLUMNS} FROM destinations d WHERE d.id = $1"),
                &[&id],
            )
            .await?;
        Ok(destination_from_row(&row))
    }

    pub async fn destinations(&self) -> Result<Vec<Destination>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                &format!("SELECT {DESTINATION_COLUMNS} FROM destinations d ORDER BY d.id"),
                &[],
            )
            .await?;
        Ok(rows.iter().map(destination_from_row).collect())
    }

    pub async fn remove_destination(&self, id: i64) -> Result<bool, StoreError> {
        let n = self
            .client()
            .await?
            .execute("DELETE FROM destinations WHERE id = $1", &[&id])
            .await?;
        Ok(n > 0)
    }

    pub async fn queue_test_delivery(
        &self,
        destination_id: i64,
        payload: String,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                &format!(
                    "WITH f AS (
                         INSERT INTO forwards (destination_id, event, payload, created_ms,
                                               next_attempt_ms, updated_ms)
                         SELECT id, $2, $3, $4, $4, $4 FROM destinations WHERE id = $1
                         RETURNING *)
                     SELECT {DELIVERY_COLUMNS} FROM f"
                ),
                &[
                    &destination_id,
                    &EventType::Test.as_str(),
                    &payload,
                    &now_ms(),
                ],
            )
            .await?;
        Ok(row.as_ref().map(delivery_from_row))
    }

    pub async fn deliveries(
        &self,
        destination_id: i64,
        limit: usize,
    ) -> Result<Option<Vec<DeliveryRecord>>, StoreError> {
        let c = self.client().await?;
        let exists = c
            .query_opt(
                "SELECT 1 FROM destinations WHERE id = $1",
                &[&destination_id],
            )
            .await?
            .is_some();
        if !exists {
            return Ok(None);
        }
        let rows = c
            .query(
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM forwards f WHERE f.destination_id = $1
                     ORDER BY f.id DESC LIMIT $2"
                ),
                &[&destination_id, &(limit.min(MAX_LISTED_DELIVERIES) as i64)],
            )
            .await?;
        Ok(Some(rows.iter().map(delivery_from_row).collect()))
    }

    /// Only counts: making every delivery due now would reset the schedule of the whole
    /// cluster each time one instance starts.
    pub async fn resume_deliveries(&self) -> Result<i64, StoreError> {
        Ok(self
            .client()
            .await?
            .query_one("SELECT count(*) FROM forwards WHERE state = 'pending'", &[])
            .await?
            .get(0))
    }

    /// Deliveries this instance claimed before count as free (the caller's `skip` holds the
    /// ones it is still sending), as with the jobs.
    pub async fn claim_deliveries(
        &self,
        per_destination: usize,
        busy: Vec<(i64, usize)>,
        skip: Vec<i64>,
        limit: usize,
    ) -> Result<DueDeliveries, StoreError> {
        let c = self.client().await?;
        let now = now_ms();
        let claim = c
            .prepare_cached(&format!(
                "WITH busy AS (
                     SELECT * FROM unnest($3::bigint[], $4::bigint[]) AS b(destination_id, n)),
                 picked AS (
                     SELECT due.id FROM destinations d
                     LEFT JOIN busy b ON b.destination_id = d.id
                     CROSS JOIN LATERAL (
                         SELECT f.id FROM forwards f
                         WHERE f.destination_id = d.id AND f.state = 'pending'
                           AND f.next_attempt_ms <= $2
                           AND (f.locked_until IS NULL OR f.locked_until <= $2 OR f.locked_by = $1)
                           AND f.id <> ALL($5)
                         ORDER BY f.next_attempt_ms, f.id
                         LIMIT greatest($6 - coalesce(b.n, 0), 0)
                         FOR UPDATE SKIP LOCKED) due
                     LIMIT $7),
                 claimed AS (
                     UPDATE forwards f SET locked_by = $1, locked_until = $2 + $8
                     FROM picked WHERE f.id = picked.id
                     RETURNING f.*)
                 SELECT {DUE_COLUMNS} FROM claimed f JOIN destinations d ON d.id = f.destination_id
                 ORDER BY f.next_attempt_ms, f.id"
            ))
            .await?;
        let next = c
            .prepare_cached(
                "SELECT min(next_attempt_ms) FROM forwards
                 WHERE state = 'pending' AND next_attempt_ms > $1",
            )
            .await?;
        let busy_ids: Vec<i64> = busy.iter().map(|(d, _)| *d).collect();
        let busy_n: Vec<i64> = busy.iter().map(|(_, n)| *n as i64).collect();
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 8] = [
            &self.inner.me,
            &now,
            &busy_ids,
            &busy_n,
            &skip,
            &(per_destination as i64),
            &(limit as i64),
            &self.inner.lease_ms,
        ];
        // Pipelined, like the jobs' claim; a claim lost in a crash of the database only lets
        // a delivery be sent twice, which its webhook-id lets the receiver notice.
        let next_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&now];
        let (begun, rows, next_due, committed) = tokio::join!(
            c.batch_execute("BEGIN; SET LOCAL synchronous_commit TO off"),
            c.query(&claim, &params),
            c.query_one(&next, &next_params),
            c.batch_execute("COMMIT"),
        );
        begun?;
        let rows = rows?;
        let next_due_ms: Option<i64> = next_due?.get(0);
        committed?;
        Ok(DueDeliveries {
            deliveries: rows.iter().map(due_from_row).collect(),
            next_due_ms,
        })
    }

    /// One statement per outcome, each fenced by the claim.
    pub async fn record_deliveries(
        &self,
        outcomes: Vec<(i64, i64, Outcome)>,
    ) -> Result<(), StoreError> {
        let c = self.client().await?;
        for (id, attempts, outcome) in outcomes {
            self.record_one(&c, id, attempts, outcome).await?;
        }
        Ok(())
    }

    async fn record_one(
        &self,
        c: &Client,
        id: i64,
        attempts: i64,
        outcome: Outcome,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let me = &self.inner.me;
        // The delivery's row, then its destination's record of failures, in one statement;
        // both only while the claim is ours. Committed without waiting for the disk, as the
        // SQLite writer groups them into one commit: an outcome lost in a crash of the database
        // only means the delivery is sent again, with the same webhook-id, while a flush per
        // delivery would wait for the disk beside the lead saves.
        const LENIENT: &str = "BEGIN; SET LOCAL synchronous_commit TO off";
        const SUCCESS: &str = "UPDATE destinations d SET failures = 0, failing_since_ms = NULL,
                                   last_error = NULL, last_delivered_ms = $3,
                                   delivered_count = d.delivered_count + 1
                               FROM f WHERE d.id = f.destination_id RETURNING d.id";
        const FAILURE: &str = "UPDATE destinations d SET failures = d.failures + 1,
                                   failing_since_ms = coalesce(d.failing_since_ms, $3),
                                   last_error = $5
                               FROM f WHERE d.id = f.destination_id RETURNING d.id";
        let error = match &outcome {
            Outcome::Delivered { .. } => None,
            Outcome::RetryLater { error, .. } | Outcome::SetAside { error, .. } => {
                Some(text(error))
            }
        };
        // What differs by outcome: the delivery's new state, its destination's record, and
        // the values from $4 on (attempts, then the outcome's own).
        type Params<'a> = Vec<&'a (dyn ToSql + Sync)>;
        let (set, destination, params): (&str, &str, Params) = match &outcome {
            Outcome::Delivered { status } => (
                "state = 'delivered', attempts = $4, last_status = $5, last_error = NULL,
                 delivered_ms = $3",
                SUCCESS,
                vec![&id, me, &now, &attempts, status],
            ),
            Outcome::RetryLater {
                next_attempt_ms,
                status,
                ..
            } => (
                "attempts = $4, last_status = $6, last_error = $5, next_attempt_ms = $7",
                FAILURE,
                vec![&id, me, &now, &attempts, &error, status, next_attempt_ms],
            ),
            Outcome::SetAside { status, .. } => (
                "state = 'dead', attempts = $4, last_status = $6, last_error = $5",
                FAILURE,
                vec![&id, me, &now, &attempts, &error, status],
            ),
        };
        let stmt = c
            .prepare_cached(&format!(
                "WITH f AS (
                     UPDATE forwards SET {set}, updated_ms = $3, locked_by = NULL,
                                         locked_until = NULL
                     WHERE id = $1 AND state = 'pending' AND locked_by = $2
                     RETURNING destination_id)
                 {destination}"
            ))
            .await?;
        let written = super::query_alone(c, LENIENT, &stmt, &params).await?;
        if written.is_empty() {
            log::info!(
                "forwarding delivery {id}: its claim had passed to another instance, or its \
                 destination was removed; nothing written"
            );
        }
        Ok(())
    }

    pub async fn retry_dead_deliveries(&self, destination_id: i64) -> Result<usize, StoreError> {
        let now = now_ms();
        let n = self
            .client()
            .await?
            .execute(
                "UPDATE forwards SET state = 'pending', attempts = 0, created_ms = $2,
                                     next_attempt_ms = $2, updated_ms = $2,
                                     locked_by = NULL, locked_until = NULL
                 WHERE destination_id = $1 AND state = 'dead'",
                &[&destination_id, &now],
            )
            .await?;
        Ok(n as usize)
    }
}
