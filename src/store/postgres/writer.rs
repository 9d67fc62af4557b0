//! The two write queues that are worth batching: lead saves and webhook deliveries. Each is
//! drained by one task into one transaction at a time (group commit: one WAL flush covers the
//! batch, and its statements are pipelined on one connection), like SQLite's writer thread.
//!
//! A batch of lead saves first takes the ordering lock, `pg_advisory_xact_lock`, held until
//! its COMMIT: across every instance, lead-inserting transactions then commit one after the
//! other in the order they drew ids, so committed ids only ever grow and the feed's
//! `id > cursor` never skips a row that commits late. The batch also sends one NOTIFY (no
//! payload) for the feeds of the other instances, and nudges this instance's own.
//!
//! When a batch fails, every operation is tried again in a transaction of its own, so one bad
//! operation fails alone; when the connection is gone, they all fail (and the callers answer
//! 5xx: Meta sends the webhook again).

use std::sync::Arc;

use bytes::Bytes;
use deadpool_postgres::{Client, Pool};
use futures_util::future::{join_all, BoxFuture};
use tokio::sync::{mpsc, oneshot, Notify};

use super::forwards::queue_lead_event;
use super::{opt_text, pool_error, CHANNEL_LEADS, LOCK_LEADS, LOCK_SPACE};
use crate::model::forward::EventType;
use crate::model::{Lead, LeadgenChange, NewLead};
use crate::store::rows::LeadRow;
use crate::store::{StoreError, Stored};

/// Most operations one transaction takes from a queue.
const MAX_BATCH: usize = 512;

/// An operation and the caller waiting for its outcome.
pub(super) struct Queued<O: Batched> {
    pub op: O,
    pub reply: oneshot::Sender<Result<O::Out, StoreError>>,
}

/// A write that can share its transaction with others of its kind.
pub(super) trait Batched: Send + Sync + 'static {
    type Out: Send + 'static;
    /// Inserts leads: its batch takes the ordering lock and tells the feeds.
    const SAVES_LEADS: bool;
    /// Runs `ops` inside the batch's transaction, their outcomes in order; runs again with
    /// each op alone if the batch fails.
    fn run_all<'a>(
        ops: &'a [&'a Self],
        c: &'a Client,
    ) -> BoxFuture<'a, Result<Vec<Self::Out>, tokio_postgres::Error>>;
    /// True when `out` says leads were inserted.
    fn inserted(out: &Self::Out) -> bool;
}

/// Drains `rx` batch by batch until every sender is gone.
pub(super) async fn run<O: Batched>(
    pool: Pool,
    mut rx: mpsc::UnboundedReceiver<Queued<O>>,
    nudge: Arc<Notify>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(q) => batch.push(q),
                Err(_) => break,
            }
        }
        commit(&pool, &mut batch, &nudge).await;
    }
}

async fn commit<O: Batched>(pool: &Pool, batch: &mut Vec<Queued<O>>, nudge: &Notify) {
    let client = match pool.get().await {
        Ok(c) => c,
        Err(e) => {
            let e = pool_error(e).to_string();
            for q in batch.drain(..) {
                let _ = q.reply.send(Err(StoreError::Unavailable(e.clone())));
            }
            return;
        }
    };
    let ops: Vec<&O> = batch.iter().map(|q| &q.op).collect();
    let outcome = together(&client, &ops).await;
    let outs = match outcome {
        Ok(outs) => outs.into_iter().map(Ok).collect::<Vec<_>>(),
        Err(e) => {
            let client = end_transaction(client).await;
            match client {
                // One by one, so a bad operation fails alone.
                Some(client) if batch.len() > 1 => {
                    log::warn!(
                        "a batch of {} writes failed ({}); trying each alone",
                        batch.len(),
                        StoreError::from(e)
                    );
                    let mut outs = Vec::with_capacity(batch.len());
                    let mut client = Some(client);
                    for q in batch.iter() {
                        let Some(c) = client.take() else {
                            outs.push(Err(super::unreachable("the connection was lost")));
                            continue;
                        };
                        match together(&c, &[&q.op]).await {
                            Ok(mut out) => {
                                outs.push(Ok(out.pop().expect("one outcome")));
                                client = Some(c);
                            }
                            Err(e) => {
                                outs.push(Err(StoreError::from(e)));
                                client = end_transaction(c).await;
                            }
                        }
                    }
                    outs
                }
                _ => {
                    let e = StoreError::from(e).to_string();
                    batch
                        .iter()
                        .map(|_| Err(StoreError::Commit(e.clone())))
                        .collect()
                }
            }
        }
    };
    if O::SAVES_LEADS && outs.iter().any(|o| o.as_ref().is_ok_and(O::inserted)) {
        nudge.notify_one();
    }
    for (q, out) in batch.drain(..).zip(outs) {
        // The caller may have gone away (request cancelled); the data is committed regardless.
        let _ = q.reply.send(out);
    }
}

/// Runs `ops` in one transaction; their outcomes once it is committed.
async fn together<O: Batched>(
    c: &Client,
    ops: &[&O],
) -> Result<Vec<O::Out>, tokio_postgres::Error> {
    c.batch_execute("BEGIN").await?;
    if O::SAVES_LEADS {
        let lock = c
            .prepare_cached("SELECT pg_advisory_xact_lock($1, $2)")
            .await?;
        c.execute(&lock, &[&LOCK_SPACE, &LOCK_LEADS]).await?;
    }
    let outs = O::run_all(ops, c).await?;
    if O::SAVES_LEADS && outs.iter().any(O::inserted) {
        // Delivered at COMMIT, once per transaction; the feeds read the rows themselves.
        c.batch_execute(&format!("NOTIFY {CHANNEL_LEADS}; COMMIT"))
            .await?;
    } else {
        c.batch_execute("COMMIT").await?;
    }
    Ok(outs)
}

/// Rolls a failed transaction back; the connection if it is still fit for use. One that
/// cannot even roll back is taken out of the pool rather than handed to the next caller.
async fn end_transaction(c: Client) -> Option<Client> {
    if c.is_closed() {
        let _ = deadpool_postgres::Object::take(c);
        return None;
    }
    match c.batch_execute("ROLLBACK").await {
        Ok(()) => Some(c),
        Err(_) => {
            let _ = deadpool_postgres::Object::take(c);
            None
        }
    }
}

/// Saves leads, once per `leadgen_id`, closes their jobs, and queues their deliveries to the
/// destinations that want them.
pub(super) struct SaveLeads {
    pub leads: Vec<NewLead>,
    pub received_ms: i64,
}

impl Batched for SaveLeads {
    type Out = Vec<Lead>;
    const SAVES_LEADS: bool = true;

    fn run_all<'a>(
        ops: &'a [&'a Self],
        c: &'a Client,
    ) -> BoxFuture<'a, Result<Vec<Vec<Lead>>, tokio_postgres::Error>> {
        Box::pin(async move {
            // Issued together, the statements go down the connection back to back (pipelined).
            let saves = ops.iter().map(|op| async move {
                let saved =
                    join_all(op.leads.iter().map(|l| insert_lead(c, l, op.received_ms))).await;
                let mut out = Vec::new();
                for lead in saved {
                    out.extend(lead?);
                }
                Ok(out)
            });
            let outs: Vec<Vec<Lead>> = join_all(saves)
                .await
                .into_iter()
                .collect::<Result<_, tokio_postgres::Error>>()?;
            // The new leads' deliveries, in the same transaction: a lead is never saved
            // without them.
            let inserted: Vec<Lead> = outs.iter().flatten().cloned().collect();
            queue_lead_event(c, EventType::LeadCreated, &inserted, |l| {
                l.received_at.clone()
            })
            .await?;
            Ok(outs)
        })
    }

    fn inserted(out: &Vec<Lead>) -> bool {
        !out.is_empty()
    }
}

/// One lead, unless its `leadgen_id` is saved already, with its `created` event (whose id is
/// the lead's: one sequence for the stream), and its job marked done, in one statement. The
/// existence check comes first so a lead fetched twice does not use up an id (ON CONFLICT
/// alone would draw one from the sequence and throw it away). Whatever must happen once per
/// event (a delivery to forward) belongs in this transaction, as for changes (`team`).
async fn insert_lead(
    c: &Client,
    lead: &NewLead,
    received_ms: i64,
) -> Result<Option<Lead>, tokio_postgres::Error> {
    let row = LeadRow::new(lead, received_ms);
    let stmt = c
        .prepare_cached(
            "WITH fresh AS (
                 SELECT nextval(pg_get_serial_sequence('events', 'id')) AS id
                 WHERE NOT EXISTS (SELECT 1 FROM leads WHERE leadgen_id = $1)
                   AND NOT EXISTS (SELECT 1 FROM jobs
                                   WHERE leadgen_id = $1 AND state = 'erased')),
             ins AS (
                 INSERT INTO leads (id, leadgen_id, page_id, form_id, ad_id, adgroup_id,
                                    campaign_id, created_time, created_ts, received_at,
                                    received_ms, source, name, field_data, search_text,
                                    updated_ms)
                 SELECT fresh.id, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $10
                 FROM fresh
                 ON CONFLICT (leadgen_id) DO NOTHING
                 RETURNING id),
             ev AS (
                 INSERT INTO events (id, lead_id, kind, at_ms)
                 SELECT id, id, 'created', $10 FROM ins),
             done AS (
                 UPDATE jobs SET state = 'done', updated_ms = $10, last_error = NULL,
                                 locked_by = NULL, locked_until = NULL
                 WHERE leadgen_id = $1 AND state NOT IN ('done', 'erased'))
             SELECT id, (SELECT name FROM forms WHERE form_id = $3) FROM ins",
        )
        .await?;
    let l = &row.lead;
    let rows = c
        .query(
            &stmt,
            &[
                &l.leadgen_id,
                &l.page_id,
                &l.form_id,
                &l.ad_id,
                &l.adgroup_id,
                &l.campaign_id,
                &l.created_time,
                &row.created_ts,
                &l.received_at,
                &row.received_ms,
                &l.source,
                &row.name,
                &row.field_data,
                &row.search_text,
            ],
        )
        .await?;
    Ok(rows.first().map(|r| {
        let mut lead = row.lead.clone();
        lead.id = r.get(0);
        lead.form_name = r.get(1);
        lead
    }))
}

/// The jobs of a batch of deliveries, column by column.
#[derive(Default)]
struct JobColumns {
    leadgen_id: Vec<String>,
    page_id: Vec<Option<String>>,
    form_id: Vec<Option<String>>,
    ad_id: Vec<Option<String>>,
    adgroup_id: Vec<Option<String>>,
    created: Vec<Option<i64>>,
    delivery_id: Vec<i64>,
    received: Vec<i64>,
}

impl JobColumns {
    fn push(&mut self, l: &LeadgenChange, delivery_id: i64, received_ms: i64) {
        self.leadgen_id.push(l.leadgen_id.clone());
        self.page_id.push(l.page_id.clone());
        self.form_id.push(l.form_id.clone());
        self.ad_id.push(l.ad_id.clone());
        self.adgroup_id.push(l.adgroup_id.clone());
        self.created.push(l.created_time);
        self.delivery_id.push(delivery_id);
        self.received.push(received_ms);
    }
}

/// A signed delivery's raw body and one pending job per lead that has neither a job nor a
/// saved lead yet.
pub(super) struct StoreDelivery {
    pub body: Bytes,
    pub kind: &'static str,
    pub note: Option<String>,
    pub leads: Vec<LeadgenChange>,
    pub received_ms: i64,
}

impl Batched for StoreDelivery {
    type Out = Stored;
    const SAVES_LEADS: bool = false;

    /// Two statements for the whole batch: the deliveries' ids first (so each job knows its
    /// delivery), then every delivery and every job at once, from arrays.
    fn run_all<'a>(
        ops: &'a [&'a Self],
        c: &'a Client,
    ) -> BoxFuture<'a, Result<Vec<Stored>, tokio_postgres::Error>> {
        Box::pin(async move {
            let ids_stmt = c
                .prepare_cached(
                    "SELECT nextval(pg_get_serial_sequence('deliveries', 'id'))
                     FROM generate_series(1, $1::bigint)",
                )
                .await?;
            let mut ids: Vec<i64> = c
                .query(&ids_stmt, &[&(ops.len() as i64)])
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            ids.sort_unstable();
            let stmt = c
                .prepare_cached(
                    "WITH d AS (
                         INSERT INTO deliveries (id, received_ms, kind, note, body)
                         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[],
                                              $5::bytea[])),
                     j AS (
                         INSERT INTO jobs (leadgen_id, page_id, form_id, ad_id, adgroup_id,
                                           webhook_created, delivery_id, first_seen_ms,
                                           next_attempt_ms, updated_ms)
                         SELECT x.leadgen_id, x.page_id, x.form_id, x.ad_id, x.adgroup_id,
                                x.created, x.delivery_id, x.received, x.received, x.received
                         FROM unnest($6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                                     $11::bigint[], $12::bigint[], $13::bigint[])
                              AS x(leadgen_id, page_id, form_id, ad_id, adgroup_id, created,
                                   delivery_id, received)
                         WHERE NOT EXISTS (SELECT 1 FROM leads WHERE leads.leadgen_id = x.leadgen_id)
                         ON CONFLICT (leadgen_id) DO NOTHING
                         RETURNING delivery_id)
                     SELECT delivery_id, count(*) FROM j GROUP BY delivery_id",
                )
                .await?;
            let received: Vec<i64> = ops.iter().map(|o| o.received_ms).collect();
            let kinds: Vec<&str> = ops.iter().map(|o| o.kind).collect();
            let notes: Vec<Option<String>> = ops.iter().map(|o| opt_text(&o.note)).collect();
            let bodies: Vec<&[u8]> = ops.iter().map(|o| &o.body[..]).collect();
            // One entry per job, with its delivery's id and time.
            let mut jobs = JobColumns::default();
            for (op, id) in ops.iter().zip(&ids) {
                for l in &op.leads {
                    jobs.push(l, *id, op.received_ms);
                }
            }
            let rows = c
                .query(
                    &stmt,
                    &[
                        &ids,
                        &received,
                        &kinds,
                        &notes,
                        &bodies,
                        &jobs.leadgen_id,
                        &jobs.page_id,
                        &jobs.form_id,
                        &jobs.ad_id,
                        &jobs.adgroup_id,
                        &jobs.created,
                        &jobs.delivery_id,
                        &jobs.received,
                    ],
                )
                .await?;
            let new: std::collections::HashMap<i64, i64> =
                rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            Ok(ids
                .iter()
                .map(|id| Stored {
                    delivery_id: *id,
                    new_jobs: new.get(id).copied().unwrap_or(0) as usize,
                })
                .collect())
        })
    }

    fn inserted(_: &Stored) -> bool {
        false
    }
}
