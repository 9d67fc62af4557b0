//! The `leads` table: saving a lead exactly once (with its `created` event), and reading leads
//! back one by one in listing order (the exports).

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::events::new_lead_event;
use super::forwards::queue_lead_event;
use super::search::sql_args;
use super::writer::Written;
use super::Sqlite;
use crate::model::forward::EventType;
use crate::model::{now_ms, Event, Lead, LeadFilter, NewLead};
use rusqlite::types::Value as SqlValue;

use crate::store::filter::{after_clause, order_clause, sort_key, where_clause, AfterArg, SQLITE};
use crate::store::rows::{LeadColumns, LeadRow, LEAD_COLUMNS, LEAD_COLUMN_COUNT, LEAD_FROM};
use crate::store::{StoreError, WalkError};

impl Sqlite {
    /// Saves a lead unless one with the same `leadgen_id` exists, and marks its job done.
    /// Returns the saved lead, or `None` for a duplicate. Saving is the only way leads are
    /// written, so the only way they reach the sink.
    pub async fn save_lead(&self, lead: NewLead) -> Result<Option<Lead>, StoreError> {
        self.write(move |c| {
            let saved = insert_lead(c, &lead, now_ms())?;
            forward_created(c, saved.as_slice())?;
            Ok(Written {
                inserted: saved.iter().cloned().map(Event::created).collect(),
                value: saved,
            })
        })
        .await
    }

    /// Saves several leads in one transaction (a page of a sync), each as [`Self::save_lead`]
    /// does; returns how many were new.
    pub async fn save_leads(&self, leads: Vec<NewLead>) -> Result<u64, StoreError> {
        self.write(move |c| {
            let now = now_ms();
            let mut inserted = Vec::new();
            for lead in &leads {
                inserted.extend(insert_lead(c, lead, now)?);
            }
            forward_created(c, &inserted)?;
            let inserted: Vec<Event> = inserted.into_iter().map(Event::created).collect();
            Ok(Written {
                value: inserted.len() as u64,
                inserted,
            })
        })
        .await
    }

    /// Calls `visit(&mut state, lead)` for every lead matching `filter`, in listing order, one
    /// row in memory at a time, and gives `state` back at the end. `visit` runs on a blocking
    /// thread (it may block, as an export writing to a slow client does); an error from it
    /// stops the walk.
    pub async fn each_lead<S, E, V>(
        &self,
        filter: LeadFilter,
        mut state: S,
        mut visit: V,
    ) -> Result<S, WalkError<E>>
    where
        S: Send + 'static,
        E: Send + 'static,
        V: FnMut(&mut S, Lead) -> Result<(), E> + Send + 'static,
    {
        self.on_reader(move |c| {
            walk(c, &filter, |lead| visit(&mut state, lead))?;
            Ok(state)
        })
        .await
        .map_err(WalkError::Store)?
    }
}

/// Rows a walk reads per statement. Each batch is a read of its own, so a long walk (an
/// export to a slow client) never holds one snapshot of the database open for minutes: that
/// would keep the WAL from being checkpointed, and it would grow for as long.
const WALK_BATCH: usize = 1000;

/// Calls `f` for every lead matching `filter`, in listing order, a batch at a time: each batch
/// starts after the last row of the one before (by sort key and id), so no row is read twice
/// or skipped, and leads saved meanwhile are met where the order puts them.
fn walk<E>(
    c: &Connection,
    filter: &LeadFilter,
    mut f: impl FnMut(Lead) -> Result<(), E>,
) -> Result<(), WalkError<E>> {
    let sqlite = |e: rusqlite::Error| WalkError::Store(StoreError::Sqlite(e));
    let (wh, args) = where_clause(filter, &SQLITE);
    let args = sql_args(args);
    // The sort key goes last, after the columns `lead_from_row` reads.
    let key_column = sort_key(filter, &SQLITE).unwrap_or("l.id");
    let mut after: Option<(SqlValue, i64)> = None;
    loop {
        let mut sql = format!("SELECT {LEAD_COLUMNS}, {key_column} {LEAD_FROM} {wh}");
        let mut params = args.clone();
        if let Some((key, id)) = after.take() {
            let (and, more) = after_clause(filter, &SQLITE, key, id, params.len() + 1);
            sql.push_str(&and);
            params.extend(more.into_iter().map(|a| match a {
                AfterArg::Key(k) => k,
                AfterArg::Id(id) => SqlValue::Integer(id),
            }));
        }
        sql.push_str(&format!(
            " {} LIMIT {WALK_BATCH}",
            order_clause(filter, &SQLITE)
        ));
        let mut stmt = c.prepare(&sql).map_err(sqlite)?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params.iter()))
            .map_err(sqlite)?;
        let mut read = 0;
        while let Some(row) = rows.next().map_err(sqlite)? {
            read += 1;
            let lead = lead_from_row(row).map_err(sqlite)?;
            after = Some((row.get(LEAD_COLUMN_COUNT).map_err(sqlite)?, lead.id));
            f(lead).map_err(WalkError::Visitor)?;
        }
        if read < WALK_BATCH {
            return Ok(());
        }
    }
}

/// The deliveries of new leads to the destinations that want them, in the same transaction:
/// a lead is never saved without them.
fn forward_created(c: &Connection, leads: &[Lead]) -> rusqlite::Result<()> {
    queue_lead_event(c, EventType::LeadCreated, leads, |l| l.received_at.clone())?;
    Ok(())
}

/// Inserts a lead (once per `leadgen_id`, never again once erased) and closes its job. `None`
/// for a duplicate or an erased lead. The lead's id is its `created` event's, so new leads,
/// changes and erasures share one id sequence.
fn insert_lead(c: &Connection, lead: &NewLead, received_ms: i64) -> rusqlite::Result<Option<Lead>> {
    let row = LeadRow::new(lead, received_ms);
    let mut out = row.lead;
    c.prepare_cached(
        "UPDATE jobs SET state = 'done', updated_ms = ?2, last_error = NULL
         WHERE leadgen_id = ?1 AND state NOT IN ('done', 'erased')",
    )?
    .execute(params![out.leadgen_id, received_ms])?;
    // Checked first, so a duplicate or an erased lead takes no event id (one writer: nobody
    // inserts meanwhile).
    if c.prepare_cached(
        "SELECT 1 FROM leads WHERE leadgen_id = ?1
         UNION ALL SELECT 1 FROM jobs WHERE leadgen_id = ?1 AND state = 'erased'",
    )?
    .exists([&out.leadgen_id])?
    {
        return Ok(None);
    }
    let id = new_lead_event(c, received_ms)?;
    c.prepare_cached(
        "INSERT INTO leads (id, leadgen_id, page_id, form_id, ad_id, adgroup_id, campaign_id,
                            created_time, created_ts, received_at, received_ms, source, name,
                            field_data, search_text, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?11)",
    )?
    .execute(params![
        id,
        out.leadgen_id,
        out.page_id,
        out.form_id,
        out.ad_id,
        out.adgroup_id,
        out.campaign_id,
        out.created_time,
        row.created_ts,
        out.received_at,
        row.received_ms,
        out.source,
        row.name,
        row.field_data,
        row.search_text,
    ])?;
    out.id = id;
    if let Some(form_id) = &out.form_id {
        out.form_name = c
            .prepare_cached("SELECT name FROM forms WHERE form_id = ?1")?
            .query_row([form_id], |r| r.get(0))
            .optional()?
            .flatten();
    }
    Ok(Some(out))
}

/// A lead from a row of `SELECT {LEAD_COLUMNS} …`.
pub(crate) fn lead_from_row(r: &Row<'_>) -> rusqlite::Result<Lead> {
    LeadColumns {
        id: r.get(0)?,
        leadgen_id: r.get(1)?,
        page_id: r.get(2)?,
        form_id: r.get(3)?,
        form_name: r.get(4)?,
        ad_id: r.get(5)?,
        adgroup_id: r.get(6)?,
        campaign_id: r.get(7)?,
        created_time: r.get(8)?,
        received_at: r.get(9)?,
        field_data: r.get(10)?,
        source: r.get(11)?,
        status: r.get(12)?,
        owner: r.get(13)?,
        first_contact_ms: r.get(14)?,
        updated_ms: r.get(15)?,
        version: r.get(16)?,
        notes_count: r.get(17)?,
    }
    .into_lead()
    .map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(10, rusqlite::types::Type::Text, Box::new(e))
    })
}
