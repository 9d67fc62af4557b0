//! The filter every listing and export shares, and the query string it is parsed from.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde::Deserialize;

use super::team::LeadStatus;
use super::time::parse_graph_time;

/// Column a listing is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    #[default]
    ReceivedAt,
    CreatedTime,
    Name,
}

/// The filter shared by `/api/leads`, `/api/leads.csv` and `/api/report.pdf`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeadFilter {
    /// Free text, matched case-insensitively against names, emails, phones and all answers.
    pub q: Option<String>,
    pub form_id: Option<String>,
    pub page_id: Option<String>,
    pub ad_id: Option<String>,
    /// Inclusive lower bound on `created_time`, unix seconds.
    pub since: Option<i64>,
    /// Inclusive upper bound on `created_time`, unix seconds.
    pub until: Option<i64>,
    pub status: Option<LeadStatus>,
    pub owner: Option<OwnerFilter>,
    pub sort: SortKey,
    /// `true` for ascending; the default is newest first.
    pub ascending: bool,
}

/// Whose leads: one person's (by name, any case; `me` is resolved to a name when parsed), or
/// nobody's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerFilter {
    /// The name, lower-cased.
    Named(String),
    Nobody,
}

/// Raw query string values, as they arrive; [`LeadQuery::parse`] checks them.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LeadQuery {
    pub q: Option<String>,
    pub form_id: Option<String>,
    pub page_id: Option<String>,
    pub ad_id: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub status: Option<String>,
    pub owner: Option<String>,
    pub sort: Option<String>,
    pub order: Option<String>,
    pub limit: Option<String>,
    pub offset: Option<String>,
}

/// Default and maximum page size of `/api/leads`.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// The longest search `q`, in characters, and the most words in it. Every word is one more
/// condition for the database to test on every row (a thousand made SQLite give up with
/// "Expression tree is too large"), and nobody types more into a search box.
pub const MAX_SEARCH_CHARS: usize = 200;
pub const MAX_SEARCH_WORDS: usize = 20;

impl LeadQuery {
    /// Checks every value; the error names the parameter so the caller can fix it. `me` is
    /// who asks (the owner filter's `me`).
    pub fn parse(&self, me: &str) -> Result<(LeadFilter, usize, usize), String> {
        let non_empty = |v: &Option<String>| {
            v.as_ref()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let sort = match non_empty(&self.sort).as_deref() {
            None | Some("received_at") => SortKey::ReceivedAt,
            Some("created_time") => SortKey::CreatedTime,
            Some("name") => SortKey::Name,
            Some(other) => {
                return Err(format!(
                    "sort must be created_time, received_at or name, not {other:?}"
                ))
            }
        };
        let ascending = match non_empty(&self.order).as_deref() {
            None | Some("desc") => false,
            Some("asc") => true,
            Some(other) => return Err(format!("order must be asc or desc, not {other:?}")),
        };
        let since = match non_empty(&self.since) {
            None => None,
            Some(s) => Some(parse_time_param(&s, false).ok_or_else(|| {
                format!("since must be RFC 3339, a date (YYYY-MM-DD) or unix seconds, not {s:?}")
            })?),
        };
        let until = match non_empty(&self.until) {
            None => None,
            Some(s) => Some(parse_time_param(&s, true).ok_or_else(|| {
                format!("until must be RFC 3339, a date (YYYY-MM-DD) or unix seconds, not {s:?}")
            })?),
        };
        // Out of range is an error, never a quiet first page: an offset past i64 once wrapped
        // round to a negative number, which SQLite reads as no offset at all.
        let limit = match non_empty(&self.limit) {
            None => DEFAULT_LIMIT,
            Some(s) => match s.parse::<i64>() {
                Ok(n) if (1..=MAX_LIMIT as i64).contains(&n) => n as usize,
                _ => {
                    return Err(format!(
                        "limit must be a whole number from 1 to {MAX_LIMIT}, not {s:?}"
                    ))
                }
            },
        };
        let offset = match non_empty(&self.offset) {
            None => 0,
            Some(s) => match s.parse::<i64>() {
                Ok(n) if n >= 0 => n as usize,
                _ => {
                    return Err(format!(
                        "offset must be a whole number from 0 to {}, not {s:?}",
                        i64::MAX
                    ))
                }
            },
        };
        let q = non_empty(&self.q);
        if let Some(q) = &q {
            let chars = q.chars().count();
            if chars > MAX_SEARCH_CHARS {
                return Err(format!(
                    "q is {chars} characters long: a search takes at most {MAX_SEARCH_CHARS}"
                ));
            }
            let words = q.split_whitespace().count();
            if words > MAX_SEARCH_WORDS {
                return Err(format!(
                    "q has {words} words: a search takes at most {MAX_SEARCH_WORDS}"
                ));
            }
        }
        let status = match non_empty(&self.status) {
            None => None,
            Some(s) => Some(LeadStatus::parse(&s).ok_or_else(|| LeadStatus::unknown(&s))?),
        };
        let owner = non_empty(&self.owner).map(|o| match o.to_ascii_lowercase().as_str() {
            "none" => OwnerFilter::Nobody,
            "me" => OwnerFilter::Named(me.to_ascii_lowercase()),
            name => OwnerFilter::Named(name.to_string()),
        });
        let filter = LeadFilter {
            q,
            status,
            owner,
            form_id: non_empty(&self.form_id),
            page_id: non_empty(&self.page_id),
            ad_id: non_empty(&self.ad_id),
            since,
            until,
            sort,
            ascending,
        };
        Ok((filter, limit, offset))
    }
}

/// Parses `since`/`until`: unix seconds, RFC 3339, or a bare date. A bare date as `until`
/// means the end of that day, so `since=2026-11-01&until=2026-11-30` covers all of November.
pub fn parse_time_param(s: &str, end_of_day: bool) -> Option<i64> {
    if let Ok(secs) = s.parse::<i64>() {
        return Some(secs);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp());
    }
    if let Ok(t) = parse_graph_time(s) {
        return Some(t.timestamp());
    }
    let day = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    let t = if end_of_day {
        day.and_hms_opt(23, 59, 59)?
    } else {
        day.and_hms_opt(0, 0, 0)?
    };
    Some(Utc.from_utc_datetime(&t).timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_params_accept_three_forms() {
        assert_eq!(parse_time_param("1700000000", false), Some(1_700_000_000));
        assert_eq!(
            parse_time_param("2026-11-28T00:00:00Z", false),
            Some(parse_time_param("2026-11-28", false).unwrap())
        );
        assert_eq!(
            parse_time_param("2026-11-28", true).unwrap()
                - parse_time_param("2026-11-28", false).unwrap(),
            86_399
        );
        assert_eq!(parse_time_param("yesterday", false), None);
    }

    #[test]
    fn query_errors_name_the_parameter() {
        let q = LeadQuery {
            sort: Some("price".into()),
            ..Default::default()
        };
        assert!(q.parse("admin").unwrap_err().contains("sort"));
        let q = LeadQuery {
            limit: Some("1000".into()),
            ..Default::default()
        };
        assert_eq!(q.parse("admin").unwrap().1, MAX_LIMIT);
    }

    #[test]
    fn out_of_range_numbers_and_oversized_searches_are_errors_that_name_the_limit() {
        let parse = |limit: &str, offset: &str, q: &str| {
            LeadQuery {
                limit: Some(limit.into()),
                offset: Some(offset.into()),
                q: Some(q.into()),
                ..Default::default()
            }
            .parse("admin")
        };
        assert!(parse("1", "0", "ada").is_ok());
        assert!(parse("1000", &i64::MAX.to_string(), "ada").is_ok());
        for (limit, offset, named) in [
            ("0", "0", "limit"),
            ("1001", "0", "limit"),
            ("-5", "0", "limit"),
            ("18446744073709551616", "0", "limit"),
            ("10", "9223372036854775808", "offset"),
            ("10", "18446744073709551615", "offset"),
            ("10", "-1", "offset"),
        ] {
            let err = parse(limit, offset, "").unwrap_err();
            assert!(err.starts_with(named), "{limit}/{offset}: {err}");
        }
        let words = vec!["w"; MAX_SEARCH_WORDS + 1].join(" ");
        let err = parse("1", "0", &words).unwrap_err();
        assert!(err.contains("at most 20"), "{err}");
        assert!(parse("1", "0", &vec!["w"; MAX_SEARCH_WORDS].join(" ")).is_ok());
        let long = "é".repeat(MAX_SEARCH_CHARS + 1);
        let err = parse("1", "0", &long).unwrap_err();
        assert!(err.contains("at most 200"), "{err}");
        assert!(parse("1", "0", &"é".repeat(MAX_SEARCH_CHARS)).is_ok());
    }
}
