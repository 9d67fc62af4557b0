//! Leads: saving (through the ordering writer), reading back by id, listing, statistics and
//! the exports' walk.

use futures_util::StreamExt;
use tokio::sync::oneshot;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::writer::{Queued, SaveLeads};
use super::Postgres;
use crate::model::{now_ms, Lead, LeadFilter, NewLead};
use crate::store::filter::{order_clause, per_day, stats_window, where_clause, Arg, POSTGRES};
use crate::store::rows::{LeadColumns, LEAD_COLUMNS, LEAD_FROM};
use crate::store::{FormCount, PageCount, Stats, StoreError, WalkError};

/// A parameter of a filter's SQL, as tokio-postgres takes it.
type Param = Box<dyn ToSql + Sync + Send>;

fn params(args: Vec<Arg>) -> Vec<Param> {
    args.into_iter()
        .map(|a| -> Param {
            match a {
                Arg::Text(t) => Box::new(t),
                Arg::Int(i) => Box::new(i),
            }
        })
        .collect()
}

fn refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// A lead from a row of `SELECT {LEAD_COLUMNS} …`.
pub(super) fn lead_from_row(r: &Row) -> Result<Lead, StoreError> {
    LeadColumns {
        id: r.try_get(0)?,
        leadgen_id: r.try_get(1)?,
        page_id: r.try_get(2)?,
        form_id: r.try_get(3)?,
        form_name: r.try_get(4)?,
        ad_id: r.try_get(5)?,
        adgroup_id: r.try_get(6)?,
        campaign_id: r.try_get(7)?,
        created_time: r.try_get(8)?,
        received_at: r.try_get(9)?,
        field_data: r.try_get(10)?,
        source: r.try_get(11)?,
    }
    .into_lead()
    .map_err(|e| StoreError::Commit(format!("a stored lead's field_data is not JSON: {e}")))
}

impl Postgres {
    async fn save(&self, leads: Vec<NewLead>) -> Result<Vec<Lead>, StoreError> {
        let (reply, rx) = oneshot::channel();
        let op = SaveLeads {
            leads,
            received_ms: now_ms(),
        };
        self.inner
            .leads
            .send(Queued { op, reply })
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    pub async fn save_lead(&self, lead: NewLead) -> Result<Option<Lead>, StoreError> {
        Ok(self.save(vec![lead]).await?.pop())
    }

    pub async fn save_leads(&self, leads: Vec<NewLead>) -> Result<u64, StoreError> {
        Ok(self.save(leads).await?.len() as u64)
    }

    pub async fn count(&self) -> Result<(i64, i64), StoreError> {
        let row = self
            .client()
            .await?
            .query_one("SELECT count(*), coalesce(max(id), 0) FROM leads", &[])
            .await?;
        Ok((row.get(0), row.get(1)))
    }

    pub async fn max_lead_id(&self) -> Result<i64, StoreError> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached("SELECT coalesce(max(id), 0) FROM leads")
            .await?;
        Ok(c.query_one(&stmt, &[]).await?.get(0))
    }

    pub async fn leads_after(&self, after: i64, limit: usize) -> Result<Vec<Lead>, StoreError> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(&format!(
                "SELECT {LEAD_COLUMNS} {LEAD_FROM} WHERE l.id > $1 ORDER BY l.id LIMIT $2"
            ))
            .await?;
        c.query(&stmt, &[&after, &(limit as i64)])
            .await?
            .iter()
            .map(lead_from_row)
            .collect()
    }

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
        let client = self.client().await.map_err(WalkError::Store)?;
        let (wh, args) = where_clause(&filter, &POSTGRES);
        let sql = format!(
            "SELECT {LEAD_COLUMNS} {LEAD_FROM} {wh} {}",
            order_clause(&filter, &POSTGRES)
        );
        let args = params(args);
        let store = |e: StoreError| WalkError::Store(e);
        // The visitor may block (an export writing to a slow client), so the walk runs on a
        // blocking thread and waits there for each row; rows arrive as the visitor takes them.
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let rows = runtime
                .block_on(client.query_raw(&sql, refs(&args)))
                .map_err(|e| store(e.into()))?;
            let mut rows = std::pin::pin!(rows);
            while let Some(row) = runtime.block_on(rows.next()) {
                let lead = lead_from_row(&row.map_err(|e| store(e.into()))?).map_err(store)?;
                visit(&mut state, lead).map_err(WalkError::Visitor)?;
            }
            Ok(state)
        })
        .await
        .map_err(|_| WalkError::Store(StoreError::Closed))?
    }

    pub async fn list_leads(
        &self,
        filter: LeadFilter,
        limit: usize,
        offset: usize,
    ) -> Result<(Vec<Lead>, i64), StoreError> {
        let c = self.client().await?;
        let (wh, args) = where_clause(&filter, &POSTGRES);
        let n = args.len();
        let mut args = params(args);
        let total: i64 = c
            .query_one(&format!("SELECT count(*) {LEAD_FROM} {wh}"), &refs(&args))
            .await?
            .get(0);
        args.push(Box::new(limit as i64));
        args.push(Box::new(offset as i64));
        let sql = format!(
            "SELECT {LEAD_COLUMNS} {LEAD_FROM} {wh} {} LIMIT ${} OFFSET ${}",
            order_clause(&filter, &POSTGRES),
            n + 1,
            n + 2
        );
        let leads = c
            .query(&sql, &refs(&args))
            .await?
            .iter()
            .map(lead_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((leads, total))
    }

    pub async fn stats(&self, filter: LeadFilter, days: i64) -> Result<Stats, StoreError> {
        let c = self.client().await?;
        let (wh, args) = where_clause(&filter, &POSTGRES);
        let args = params(args);
        let args = refs(&args);
        let (today_start, week_start, first_day) = stats_window(days);
        let row = c
            .query_one(
                &format!(
                    "SELECT count(*),
                            count(*) FILTER (WHERE l.created_ts >= {today_start}),
                            count(*) FILTER (WHERE l.created_ts >= {week_start})
                     {LEAD_FROM} {wh}"
                ),
                &args,
            )
            .await?;
        // NULLS FIRST and byte order: the order SQLite gives.
        let per_form = c
            .query(
                &format!(
                    "SELECT l.form_id, max(f.name), max(l.page_id), count(*) {LEAD_FROM} {wh}
                     GROUP BY l.form_id
                     ORDER BY count(*) DESC, l.form_id COLLATE \"C\" NULLS FIRST"
                ),
                &args,
            )
            .await?
            .iter()
            .map(form_count)
            .collect();
        let counts = c
            .query(
                &format!(
                    "SELECT (l.created_ts - {first_day}) / 86400 AS d, count(*) {LEAD_FROM} {wh}
                     AND l.created_ts >= {first_day} GROUP BY d"
                ),
                &args,
            )
            .await?
            .iter()
            .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1)))
            .collect::<Vec<_>>();
        Ok(Stats {
            total: row.get(0),
            today: row.get(1),
            last_7_days: row.get(2),
            per_form,
            per_day: per_day(first_day, days, counts),
        })
    }

    pub async fn forms_summary(&self) -> Result<Vec<FormCount>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT form_id, max(name), max(page_id), sum(n)::bigint FROM (
                     SELECT l.form_id, NULL::text AS name, max(l.page_id) AS page_id, count(*) AS n
                       FROM leads l WHERE l.form_id IS NOT NULL GROUP BY l.form_id
                     UNION ALL
                     SELECT form_id, name, page_id, 0 FROM forms) t
                 GROUP BY form_id
                 ORDER BY sum(n) DESC, max(name) COLLATE \"C\" NULLS FIRST, form_id COLLATE \"C\"",
                &[],
            )
            .await?;
        Ok(rows.iter().map(form_count).collect())
    }

    pub async fn pages_summary(&self) -> Result<Vec<PageCount>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT page_id, count(*) FROM leads WHERE page_id IS NOT NULL
                 GROUP BY page_id ORDER BY count(*) DESC",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| PageCount {
                page_id: r.get(0),
                count: r.get(1),
            })
            .collect())
    }
}

/// A `FormCount` from `SELECT form_id, name, page_id, count`.
fn form_count(r: &Row) -> FormCount {
    FormCount {
        form_id: r.get(0),
        form_name: r.get(1),
        page_id: r.get(2),
        count: r.get(3),
    }
}
