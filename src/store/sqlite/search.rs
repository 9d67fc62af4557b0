//! Finding leads: one page of a listing, and the statistics of a filtered set (the filter
//! itself is SQL shared with PostgreSQL, in `store::filter`).

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, Row};

use super::leads::lead_from_row;
use super::Sqlite;
use crate::model::{Lead, LeadFilter};
use crate::store::filter::{order_clause, per_day, stats_window, where_clause, Arg, SQLITE};
use crate::store::rows::{LEAD_COLUMNS, LEAD_FROM};
use crate::store::{FormCount, PageCount, Stats, StoreError};

impl Sqlite {
    pub async fn list_leads(
        &self,
        filter: LeadFilter,
        limit: usize,
        offset: usize,
    ) -> Result<(Vec<Lead>, i64), StoreError> {
        self.read(move |c| list_leads(c, &filter, limit, offset))
            .await
    }

    pub async fn stats(&self, filter: LeadFilter, days: i64) -> Result<Stats, StoreError> {
        self.read(move |c| stats(c, &filter, days)).await
    }

    pub async fn forms_summary(&self) -> Result<Vec<FormCount>, StoreError> {
        self.read(forms_summary).await
    }

    pub async fn pages_summary(&self) -> Result<Vec<PageCount>, StoreError> {
        self.read(pages_summary).await
    }
}

/// A filter's parameters as SQLite values.
pub(super) fn sql_args(args: Vec<Arg>) -> Vec<SqlValue> {
    args.into_iter()
        .map(|a| match a {
            Arg::Text(t) => SqlValue::Text(t),
            Arg::Int(i) => SqlValue::Integer(i),
        })
        .collect()
}

/// One page of leads matching `filter`, and how many match in all.
fn list_leads(
    c: &Connection,
    filter: &LeadFilter,
    limit: usize,
    offset: usize,
) -> rusqlite::Result<(Vec<Lead>, i64)> {
    let (wh, args) = where_clause(filter, &SQLITE);
    let mut args = sql_args(args);
    let total: i64 = c.query_row(
        &format!("SELECT count(*) {LEAD_FROM} {wh}"),
        rusqlite::params_from_iter(args.iter()),
        |r| r.get(0),
    )?;
    args.push(SqlValue::Integer(limit as i64));
    args.push(SqlValue::Integer(offset as i64));
    let sql = format!(
        "SELECT {LEAD_COLUMNS} {LEAD_FROM} {wh} {} LIMIT ? OFFSET ?",
        order_clause(filter, &SQLITE)
    );
    let mut stmt = c.prepare(&sql)?;
    let leads = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), lead_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((leads, total))
}

fn stats(c: &Connection, filter: &LeadFilter, days: i64) -> rusqlite::Result<Stats> {
    let (wh, args) = where_clause(filter, &SQLITE);
    let args = sql_args(args);
    let (today_start, week_start, first_day) = stats_window(days);
    let (total, today, week): (i64, i64, i64) = c.query_row(
        &format!(
            "SELECT count(*),
                    coalesce(sum(l.created_ts >= {today_start}), 0),
                    coalesce(sum(l.created_ts >= {week_start}), 0)
             {LEAD_FROM} {wh}"
        ),
        rusqlite::params_from_iter(args.iter()),
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let mut stmt = c.prepare(&format!(
        "SELECT l.form_id, max(f.name), max(l.page_id), count(*) {LEAD_FROM} {wh}
         GROUP BY l.form_id ORDER BY count(*) DESC, l.form_id"
    ))?;
    let per_form = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), form_count)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut stmt = c.prepare(&format!(
        "SELECT (l.created_ts - {first_day}) / 86400 AS d, count(*) {LEAD_FROM} {wh}
         AND l.created_ts >= {first_day} GROUP BY d"
    ))?;
    let counts = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Stats {
        today,
        last_7_days: week,
        total,
        per_form,
        per_day: per_day(first_day, days, counts),
    })
}

/// Every form that has leads or is known from Meta, with its lead count.
fn forms_summary(c: &Connection) -> rusqlite::Result<Vec<FormCount>> {
    let mut stmt = c.prepare(
        "SELECT form_id, max(name), max(page_id), sum(n) FROM (
             SELECT l.form_id, NULL AS name, l.page_id, count(*) AS n FROM leads l
              WHERE l.form_id IS NOT NULL GROUP BY l.form_id
             UNION ALL
             SELECT form_id, name, page_id, 0 FROM forms)
         GROUP BY form_id ORDER BY sum(n) DESC, max(name), form_id",
    )?;
    let forms = stmt.query_map([], form_count)?.collect();
    forms
}

/// A `FormCount` from `SELECT form_id, name, page_id, count`.
fn form_count(r: &Row<'_>) -> rusqlite::Result<FormCount> {
    Ok(FormCount {
        form_id: r.get(0)?,
        form_name: r.get(1)?,
        page_id: r.get(2)?,
        count: r.get(3)?,
    })
}

fn pages_summary(c: &Connection) -> rusqlite::Result<Vec<PageCount>> {
    let mut stmt = c.prepare(
        "SELECT page_id, count(*) FROM leads WHERE page_id IS NOT NULL GROUP BY page_id ORDER BY count(*) DESC",
    )?;
    let pages = stmt
        .query_map([], |r| {
            Ok(PageCount {
                page_id: r.get(0)?,
                count: r.get(1)?,
            })
        })?
        .collect();
    pages
}
