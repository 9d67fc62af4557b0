//! The filter every listing and export shares, as SQL: one builder for both engines, which
//! differ only in how a parameter is written and how text is folded for search and sorting.

use crate::model::{LeadFilter, SortKey};

/// A parameter of a filter's SQL.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Arg {
    Text(String),
    Int(i64),
}

/// What the two engines write differently.
pub(super) struct Dialect {
    /// The `n`th parameter (1-based): `?` or `$n`.
    pub param: fn(usize) -> String,
    /// The form's name folded to lower case, as `q` matches it.
    pub form_name_folded: &'static str,
    /// The display name folded for sorting, ASCII only, byte order after that.
    pub name_sort: &'static str,
}

pub(super) const SQLITE: Dialect = Dialect {
    param: |_| "?".into(),
    // SQLite's lower() folds ASCII only; lower_unicode is Rust's to_lowercase.
    form_name_folded: "lower_unicode(f.name)",
    name_sort: "l.name COLLATE NOCASE",
};

pub(super) const POSTGRES: Dialect = Dialect {
    param: |n| format!("${n}"),
    // Folded in Rust when the form is saved: lower() depends on the database's locale.
    form_name_folded: "f.name_folded",
    // The same order as SQLite's NOCASE, whatever the database's collation.
    name_sort: "lower(l.name COLLATE \"C\")",
};

/// `WHERE …` and its parameters for a filter (every listing and export uses this).
pub(super) fn where_clause(filter: &LeadFilter, d: &Dialect) -> (String, Vec<Arg>) {
    let mut sql = String::from("WHERE 1 = 1");
    let mut args: Vec<Arg> = Vec::new();
    let next = |args: &mut Vec<Arg>, arg: Arg| {
        args.push(arg);
        (d.param)(args.len())
    };
    if let Some(q) = &filter.q {
        // Every word must appear somewhere: "ada gmail" finds Ada's gmail address.
        for word in q.to_lowercase().split_whitespace() {
            let escaped = word
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            let pattern = format!("%{escaped}%");
            let a = next(&mut args, Arg::Text(pattern.clone()));
            let b = next(&mut args, Arg::Text(pattern));
            sql.push_str(&format!(
                " AND (l.search_text LIKE {a} ESCAPE '\\' OR {} LIKE {b} ESCAPE '\\')",
                d.form_name_folded
            ));
        }
    }
    for (col, v) in [
        ("l.form_id", &filter.form_id),
        ("l.page_id", &filter.page_id),
        ("l.ad_id", &filter.ad_id),
    ] {
        if let Some(v) = v {
            let p = next(&mut args, Arg::Text(v.clone()));
            sql.push_str(&format!(" AND {col} = {p}"));
        }
    }
    if let Some(s) = filter.since {
        let p = next(&mut args, Arg::Int(s));
        sql.push_str(&format!(" AND l.created_ts >= {p}"));
    }
    if let Some(u) = filter.until {
        let p = next(&mut args, Arg::Int(u));
        sql.push_str(&format!(" AND l.created_ts <= {p}"));
    }
    (sql, args)
}

pub(super) fn order_clause(filter: &LeadFilter, d: &Dialect) -> String {
    let dir = if filter.ascending { "ASC" } else { "DESC" };
    match sort_key(filter, d) {
        // Row ids increase in the order leads were saved.
        None => format!("ORDER BY l.id {dir}"),
        Some(key) => format!("ORDER BY {key} {dir}, l.id {dir}"),
    }
}

/// What a listing is ordered by before the row id, which breaks ties (`None`: the id alone).
pub(super) fn sort_key(filter: &LeadFilter, d: &Dialect) -> Option<&'static str> {
    match filter.sort {
        SortKey::ReceivedAt => None,
        SortKey::CreatedTime => Some("l.created_ts"),
        SortKey::Name => Some(d.name_sort),
    }
}

/// `AND …` for the rows after a listing's row whose sort key was `key` and id `id`, in the
/// listing's order: the next page of a walk that reads a listing a batch at a time. `first`
/// is the number of the first parameter it adds.
pub(super) fn after_clause<K>(
    filter: &LeadFilter,
    d: &Dialect,
    key: K,
    id: i64,
    first: usize,
) -> (String, Vec<AfterArg<K>>) {
    let cmp = if filter.ascending { ">" } else { "<" };
    match sort_key(filter, d) {
        None => (
            format!(" AND l.id {cmp} {}", (d.param)(first)),
            vec![AfterArg::Id(id)],
        ),
        Some(k) => (
            format!(
                " AND ({k}, l.id) {cmp} ({}, {})",
                (d.param)(first),
                (d.param)(first + 1)
            ),
            vec![AfterArg::Key(key), AfterArg::Id(id)],
        ),
    }
}

/// A parameter of [`after_clause`]: the sort key as the engine read it, or the row id.
pub(super) enum AfterArg<K> {
    Key(K),
    Id(i64),
}

/// The first day of a `days`-day statistics window ending today, and the starts of today and
/// of the last 7 days (unix seconds, UTC).
pub(super) fn stats_window(days: i64) -> (i64, i64, i64) {
    let today_start = chrono::Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        .timestamp();
    let week_start = today_start - 6 * 86_400;
    let first_day = today_start - (days - 1) * 86_400;
    (today_start, week_start, first_day)
}

/// The per-day counts of a statistics window, days without leads included.
pub(super) fn per_day(
    first_day: i64,
    days: i64,
    counts: impl IntoIterator<Item = (i64, i64)>,
) -> Vec<super::DayCount> {
    let mut slots = vec![0i64; days.max(0) as usize];
    for (d, n) in counts {
        if let Some(slot) = usize::try_from(d).ok().and_then(|d| slots.get_mut(d)) {
            *slot = n;
        }
    }
    slots
        .into_iter()
        .enumerate()
        .map(|(i, count)| super::DayCount {
            day: chrono::DateTime::from_timestamp(first_day + i as i64 * 86_400, 0)
                .map(|t| t.format("%Y-%m-%d").to_string())
                .unwrap_or_default(),
            count,
        })
        .collect()
}
