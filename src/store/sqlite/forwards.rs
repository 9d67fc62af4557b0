//! Forwarding's tables: `destinations`, and `forwards` (one delivery per event and
//! destination). Deliveries of a lead are written by [`queue_lead_event`] inside the operation
//! that saves the lead, so they commit (or not) together with it.
//!
//! With one process nothing is marked when deliveries are claimed: the worker's `skip` list
//! keeps one from being sent twice at once, as with the jobs.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::writer::Written;
use super::Sqlite;
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
/// the caller's transaction. Returns how many.
pub(super) fn queue_lead_event(
    c: &Connection,
    event: EventType,
    leads: &[Lead],
    timestamp: impl Fn(&Lead) -> String,
) -> rusqlite::Result<usize> {
    if leads.is_empty() {
        return Ok(0);
    }
    let routes = c
        .prepare_cached("SELECT id, forms, events FROM destinations")?
        .query_map([], |r| Ok(Route::new(r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if routes.is_empty() {
        return Ok(0);
    }
    let now = now_ms();
    let mut insert = c.prepare_cached(
        "INSERT INTO forwards (destination_id, lead_id, event, payload, created_ms,
                               next_attempt_ms, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?5)",
    )?;
    let made = deliveries_for(&routes, event, leads, timestamp);
    for d in &made {
        insert.execute(params![
            d.destination_id,
            d.lead_id,
            d.event,
            &*d.payload,
            now
        ])?;
    }
    Ok(made.len())
}

fn destination_from_row(r: &Row<'_>) -> rusqlite::Result<Destination> {
    Ok(DestinationColumns {
        id: r.get(0)?,
        kind: r.get(1)?,
        url: r.get(2)?,
        recipients: r.get(3)?,
        forms: r.get(4)?,
        events: r.get(5)?,
        created_ms: r.get(6)?,
        failures: r.get(7)?,
        failing_since_ms: r.get(8)?,
        last_error: r.get(9)?,
        last_delivered_ms: r.get(10)?,
        delivered: r.get(11)?,
        pending: r.get(12)?,
        dead: r.get(13)?,
    }
    .into_destination())
}

fn delivery_from_row(r: &Row<'_>) -> rusqlite::Result<DeliveryRecord> {
    Ok(DeliveryColumns {
        id: r.get(0)?,
        destination_id: r.get(1)?,
        event: r.get(2)?,
        lead_id: r.get(3)?,
        webhook_id: r.get(4)?,
        state: r.get(5)?,
        attempts: r.get(6)?,
        created_ms: r.get(7)?,
        updated_ms: r.get(8)?,
        next_attempt_ms: r.get(9)?,
        last_status: r.get(10)?,
        last_error: r.get(11)?,
        delivered_ms: r.get(12)?,
    }
    .into_record())
}

fn due_from_row(r: &Row<'_>) -> rusqlite::Result<DueDelivery> {
    Ok(DueColumns {
        id: r.get(0)?,
        destination_id: r.get(1)?,
        event: r.get(2)?,
        lead_id: r.get(3)?,
        webhook_id: r.get(4)?,
        payload: r.get(5)?,
        attempts: r.get(6)?,
        created_ms: r.get(7)?,
        kind: r.get(8)?,
        url: r.get(9)?,
        recipients: r.get(10)?,
        secret: r.get(11)?,
    }
    .into_due())
}

fn destination(c: &Connection, id: i64) -> rusqlite::Result<Option<Destination>> {
    c.query_row(
        &format!("SELECT {DESTINATION_COLUMNS} FROM destinations d WHERE d.id = ?1"),
        [id],
        destination_from_row,
    )
    .optional()
}

impl Sqlite {
    pub async fn add_destination(&self, new: NewDestination) -> Result<Destination, StoreError> {
        self.write(move |c| {
            let row = DestinationRow::new(&new);
            c.execute(
                "INSERT INTO destinations (kind, url, recipients, secret, forms, events, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    row.kind,
                    row.url,
                    row.recipients,
                    row.secret,
                    row.forms,
                    row.events,
                    now_ms()
                ],
            )?;
            let id = c.last_insert_rowid();
            Ok(Written::value(
                destination(c, id)?.expect("the row just inserted"),
            ))
        })
        .await
    }

    pub async fn destinations(&self) -> Result<Vec<Destination>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {DESTINATION_COLUMNS} FROM destinations d ORDER BY d.id"
            ))?;
            let rows = stmt.query_map([], destination_from_row)?.collect();
            rows
        })
        .await
    }

    pub async fn remove_destination(&self, id: i64) -> Result<bool, StoreError> {
        self.write(move |c| {
            let n = c.execute("DELETE FROM destinations WHERE id = ?1", [id])?;
            Ok(Written::value(n > 0))
        })
        .await
    }

    pub async fn queue_test_delivery(
        &self,
        destination_id: i64,
        payload: String,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        self.write(move |c| {
            let now = now_ms();
            let n = c.execute(
                "INSERT INTO forwards (destination_id, event, payload, created_ms,
                                       next_attempt_ms, updated_ms)
                 SELECT id, ?2, ?3, ?4, ?4, ?4 FROM destinations WHERE id = ?1",
                params![destination_id, EventType::Test.as_str(), payload, now],
            )?;
            if n == 0 {
                return Ok(Written::value(None));
            }
            let id = c.last_insert_rowid();
            let record = c.query_row(
                &format!("SELECT {DELIVERY_COLUMNS} FROM forwards f WHERE f.id = ?1"),
                [id],
                delivery_from_row,
            )?;
            Ok(Written::value(Some(record)))
        })
        .await
    }

    pub async fn deliveries(
        &self,
        destination_id: i64,
        limit: usize,
    ) -> Result<Option<Vec<DeliveryRecord>>, StoreError> {
        self.read(move |c| {
            let exists: Option<i64> = c
                .query_row(
                    "SELECT id FROM destinations WHERE id = ?1",
                    [destination_id],
                    |r| r.get(0),
                )
                .optional()?;
            if exists.is_none() {
                return Ok(None);
            }
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM forwards f WHERE f.destination_id = ?1
                 ORDER BY f.id DESC LIMIT ?2"
            ))?;
            let rows = stmt
                .query_map(
                    params![destination_id, limit.min(MAX_LISTED_DELIVERIES) as i64],
                    delivery_from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some(rows))
        })
        .await
    }

    /// Makes every pending delivery due now (after a restart the person wants their leads
    /// forwarded; the wait was only a courtesy to the receiver); returns how many are pending.
    pub async fn resume_deliveries(&self) -> Result<i64, StoreError> {
        self.write(|c| {
            let now = now_ms();
            c.execute(
                "UPDATE forwards SET next_attempt_ms = ?1
                 WHERE state = 'pending' AND next_attempt_ms > ?1",
                [now],
            )?;
            let pending: i64 = c.query_row(
                "SELECT count(*) FROM forwards WHERE state = 'pending'",
                [],
                |r| r.get(0),
            )?;
            Ok(Written::value(pending))
        })
        .await
    }

    /// Due deliveries, destination by destination: up to `per_destination` less what `busy`
    /// says is in flight to each, none of `skip`, `limit` in all.
    pub async fn claim_deliveries(
        &self,
        per_destination: usize,
        busy: Vec<(i64, usize)>,
        skip: Vec<i64>,
        limit: usize,
    ) -> Result<DueDeliveries, StoreError> {
        self.read(move |c| {
            let now = now_ms();
            let ids: Vec<i64> = c
                .prepare_cached("SELECT id FROM destinations ORDER BY id")?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut due = c.prepare_cached(&format!(
                "SELECT {DUE_COLUMNS} FROM forwards f JOIN destinations d ON d.id = f.destination_id
                 WHERE f.destination_id = ?1 AND f.state = 'pending' AND f.next_attempt_ms <= ?2
                 ORDER BY f.next_attempt_ms, f.id LIMIT ?3"
            ))?;
            let mut deliveries = Vec::new();
            for id in ids {
                let in_flight = busy.iter().find(|(d, _)| *d == id).map_or(0, |(_, n)| *n);
                let room = per_destination.saturating_sub(in_flight);
                if room == 0 || deliveries.len() >= limit {
                    continue;
                }
                // Read as many more as are skipped, so `room` are left after skipping.
                let rows =
                    due.query_map(params![id, now, (room + skip.len()) as i64], due_from_row)?;
                let mut taken = 0;
                for row in rows {
                    let row = row?;
                    if taken == room || deliveries.len() >= limit {
                        break;
                    }
                    if !skip.contains(&row.id) {
                        deliveries.push(row);
                        taken += 1;
                    }
                }
            }
            let next_due_ms: Option<i64> = c
                .prepare_cached(
                    "SELECT min(next_attempt_ms) FROM forwards
                     WHERE state = 'pending' AND next_attempt_ms > ?1",
                )?
                .query_row([now], |r| r.get(0))?;
            Ok(DueDeliveries {
                deliveries,
                next_due_ms,
            })
        })
        .await
    }

    /// Writes down how tries of pending deliveries ended (`(id, tries so far, outcome)`), in
    /// one transaction, and keeps their destinations' records of failures in a row.
    pub async fn record_deliveries(
        &self,
        outcomes: Vec<(i64, i64, Outcome)>,
    ) -> Result<(), StoreError> {
        self.write(move |c| {
            let now = now_ms();
            for (id, attempts, outcome) in &outcomes {
                record_one(c, *id, *attempts, outcome, now)?;
            }
            Ok(Written::value(()))
        })
        .await
    }

    /// Puts a destination's dead deliveries back in the queue, due now; how many.
    pub async fn retry_dead_deliveries(&self, destination_id: i64) -> Result<usize, StoreError> {
        self.write(move |c| {
            let now = now_ms();
            let n = c.execute(
                "UPDATE forwards SET state = 'pending', attempts = 0, created_ms = ?2,
                                     next_attempt_ms = ?2, updated_ms = ?2
                 WHERE destination_id = ?1 AND state = 'dead'",
                params![destination_id, now],
            )?;
            Ok(Written::value(n))
        })
        .await
    }
}

/// One outcome, with its destination's record.
fn record_one(
    c: &Connection,
    id: i64,
    attempts: i64,
    outcome: &Outcome,
    now: i64,
) -> rusqlite::Result<()> {
    let destination: Option<i64> = match outcome {
        Outcome::Delivered { status } => c
            .prepare_cached(
                "UPDATE forwards SET state = 'delivered', attempts = ?2, last_status = ?3,
                                     last_error = NULL, delivered_ms = ?4, updated_ms = ?4
                 WHERE id = ?1 AND state = 'pending' RETURNING destination_id",
            )?
            .query_row(params![id, attempts, status, now], |r| r.get(0))
            .optional()?,
        Outcome::RetryLater {
            next_attempt_ms,
            status,
            error,
        } => c
            .prepare_cached(
                "UPDATE forwards SET attempts = ?2, next_attempt_ms = ?3, last_status = ?4,
                                     last_error = ?5, updated_ms = ?6
                 WHERE id = ?1 AND state = 'pending' RETURNING destination_id",
            )?
            .query_row(
                params![id, attempts, next_attempt_ms, status, error, now],
                |r| r.get(0),
            )
            .optional()?,
        Outcome::SetAside { status, error } => c
            .prepare_cached(
                "UPDATE forwards SET state = 'dead', attempts = ?2, last_status = ?3,
                                     last_error = ?4, updated_ms = ?5
                 WHERE id = ?1 AND state = 'pending' RETURNING destination_id",
            )?
            .query_row(params![id, attempts, status, error, now], |r| r.get(0))
            .optional()?,
    };
    if let Some(destination) = destination {
        note_on_destination(c, destination, outcome, now)?;
    }
    Ok(())
}

/// A success clears the destination's failures; a failure adds one (and starts the count's
/// "since" if it is the first).
fn note_on_destination(
    c: &Connection,
    destination: i64,
    outcome: &Outcome,
    now: i64,
) -> rusqlite::Result<()> {
    match outcome {
        Outcome::Delivered { .. } => c
            .prepare_cached(
                "UPDATE destinations SET failures = 0, failing_since_ms = NULL, last_error = NULL,
                                         last_delivered_ms = ?2,
                                         delivered_count = delivered_count + 1
                 WHERE id = ?1",
            )?
            .execute(params![destination, now])?,
        Outcome::RetryLater { error, .. } | Outcome::SetAside { error, .. } => c
            .prepare_cached(
                "UPDATE destinations SET failures = failures + 1,
                                         failing_since_ms = coalesce(failing_since_ms, ?2),
                                         last_error = ?3
                 WHERE id = ?1",
            )?
            .execute(params![destination, now, error])?,
    };
    Ok(())
}
