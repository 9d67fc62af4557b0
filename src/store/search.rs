//! Finding leads: the filter as SQL, the listing order, one page of a listing, and the
//! statistics of a filtered set.

use chrono::{TimeZone, Utc};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, Row};

use super::leads::{lead_from_row, LEAD_COLUMNS, LEAD_FROM};
use super::{Store, StoreError};
use crate::model::{Lead, LeadFilter, SortKey};

impl Store {
    /// One page of the leads matching `filter`, in its order, and how many match in all.
    pub async fn list_leads(
        &self,
        filter: LeadFilter,
        limit: usize,
        offset: usize,
    ) -> Result<(Vec<Lead>, i64), StoreError> {
        self.read(move |c| list_leads(c, &filter, limit, offset))
            .await
    }

    /// Statistics of the leads matching `filter` over the last `days` days (UTC).
    pub async fn stats(&self, filter: LeadFilter, days: i64) -> Result<Stats, StoreError> {
        self.read(move |c| stats(c, &filter, days)).await
    }

    /// Every form that has leads or is known from Meta, with its lead count.
    pub async fn forms_summary(&self) -> Result<Vec<FormCount>, StoreError> {
        self.read(forms_summary).await
    }

    /// Pages with leads, with their lead count.
    pub async fn pages_summary(&self) -> Result<Vec<PageCount>, StoreError> {
        self.read(pages_summary).await
    }
}

/// `WHERE …` and its parameters for a filter (every listing and export uses this).
pub(super) fn where_clause(filter: &LeadFilter) -> (String, Vec<SqlValue>) {
    let mut sql = String::from("WHERE 1 = 1");
    let mut args: Vec<SqlValue> = Vec::new();
    if let Some(q) = &filter.q {
        // Every word must appear somewhere: "ada gmail" finds Ada's gmail address.
        for word in q.to_lowercase().split_whitespace() {
            let escaped = word
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            sql.push_str(" AND (l.search_text LIKE ? ESCAPE '\\' OR lower_unicode(f.name) LIKE ? ESCAPE '\\')");
            let pattern = format!("%{escaped}%");
            args.push(SqlValue::Text(pattern.clone()));
            args.push(SqlValue::Text(pattern));
        }
    }
    for (col, v) in [
        ("l.form_id", &filter.form_id),
        ("l.page_id", &filter.page_id),
        ("l.ad_id", &filter.ad_id),
    ] {
        if let Some(v) = v {
            sql.push_str(&format!(" AND {col} = ?"));
            args.push(SqlValue::Text(v.clone()));
        }
    }
    if let Some(s) = filter.since {
        sql.push_str(" AND l.created_ts >= ?");
        args.push(SqlValue::Integer(s));
    }
    if let Some(u) = filter.until {
        sql.push_str(" AND l.created_ts <= ?");
        args.push(SqlValue::Integer(u));
    }
    (sql, args)
}

pub(super) fn order_clause(filter: &LeadFilter) -> String {
    let dir = if filter.ascending { "ASC" } else { "DESC" };
    match sort_key(filter) {
        // Row ids increase in the order leads were saved.
        None => format!("ORDER BY l.id {dir}"),
        Some(key) => format!("ORDER BY {key} {dir}, l.id {dir}"),
    }
}

/// What a listing is ordered by before the row id, which breaks ties (`None`: the id alone).
pub(super) fn sort_key(filter: &LeadFilter) -> Option<&'static str> {
    match filter.sort {
        SortKey::ReceivedAt => None,
        SortKey::CreatedTime => Some("l.created_ts"),
        SortKey::Name => Some("l.name COLLATE NOCASE"),
    }
}

/// `AND …` for the rows after a listing's row whose sort key was `key` and id `id`, in the
/// listing's order: the next page of a walk that reads a listing a batch at a time.
pub(super) fn after_clause(filter: &LeadFilter, key: SqlValue, id: i64) -> (String, Vec<SqlValue>) {
    let cmp = if filter.ascending { ">" } else { "<" };
    match sort_key(filter) {
        None => (format!(" AND l.id {cmp} ?"), vec![SqlValue::Integer(id)]),
        Some(k) => (
            format!(" AND ({k}, l.id) {cmp} (?, ?)"),
            vec![key, SqlValue::Integer(id)],
        ),
    }
}

/// One page of leads matching `filter`, and how many match in all.
fn list_leads(
    c: &Connection,
    filter: &LeadFilter,
    limit: usize,
    offset: usize,
) -> rusqlite::Result<(Vec<Lead>, i64)> {
    let (wh, mut args) = where_clause(filter);
    let total: i64 = c.query_row(
        &format!("SELECT count(*) {LEAD_FROM} {wh}"),
        rusqlite::params_from_iter(args.iter()),
        |r| r.get(0),
    )?;
    args.push(SqlValue::Integer(limit as i64));
    args.push(SqlValue::Integer(offset as i64));
    let sql = format!(
        "SELECT {LEAD_COLUMNS} {LEAD_FROM} {wh} {} LIMIT ? OFFSET ?",
        order_clause(filter)
    );
    let mut stmt = c.prepare(&sql)?;
    let leads = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), lead_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((leads, total))
}

/// Statistics of the leads matching `filter` (dates in UTC).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stats {
    pub today: i64,
    pub last_7_days: i64,
    pub total: i64,
    pub per_form: Vec<FormCount>,
    /// The last 30 days, oldest first, days without leads included.
    pub per_day: Vec<DayCount>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FormCount {
    pub form_id: Option<String>,
    pub form_name: Option<String>,
    pub page_id: Option<String>,
    pub count: i64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DayCount {
    pub day: String,
    pub count: i64,
}

fn stats(c: &Connection, filter: &LeadFilter, days: i64) -> rusqlite::Result<Stats> {
    let (wh, args) = where_clause(filter);
    let today_start = Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        .timestamp();
    let week_start = today_start - 6 * 86_400;
    let first_day = today_start - (days - 1) * 86_400;
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
    let mut counts = vec![0i64; days as usize];
    let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
    })?;
    for row in rows {
        let (d, n) = row?;
        if let Some(slot) = counts.get_mut(d as usize) {
            *slot = n;
        }
    }
    let per_day = counts
        .into_iter()
        .enumerate()
        .map(|(i, count)| DayCount {
            day: Utc
                .timestamp_opt(first_day + i as i64 * 86_400, 0)
                .single()
                .map(|t| t.format("%Y-%m-%d").to_string())
                .unwrap_or_default(),
            count,
        })
        .collect();
    Ok(Stats {
        today,
        last_7_days: week,
        total,
        per_form,
        per_day,
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

#[derive(Debug, Clone, serde::Serialize)]
pub struct PageCount {
    pub page_id: String,
    pub count: i64,
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
