//! The typed values the rest of the crate passes around: a saved [`Lead`], one answer
//! ([`FieldData`]), and the filter every listing and export shares ([`LeadFilter`]).
//!
//! Everything here is already validated; parsing Meta's JSON into these happens at the edge
//! (`meta::webhook`, `meta::graph`) and parsing query strings happens in [`LeadQuery::parse`].

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// One answer of a lead form, exactly as Graph returns it (`values` is always a list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldData {
    pub name: String,
    #[serde(default)]
    pub values: Vec<String>,
}

/// A lead as stored and as served (`/api/leads`, the SSE `data:` line, exports).
///
/// `id` is the local row id, strictly increasing, and doubles as the SSE event id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lead {
    pub id: i64,
    /// Meta's lead id, always a string of digits.
    pub leadgen_id: String,
    pub page_id: Option<String>,
    pub form_id: Option<String>,
    /// The form's name when known (from sync or a form lookup); not part of Meta's lead object.
    pub form_name: Option<String>,
    pub ad_id: Option<String>,
    pub adgroup_id: Option<String>,
    pub campaign_id: Option<String>,
    /// When the person submitted the form (UTC, RFC 3339 with `Z`).
    pub created_time: String,
    /// When leadstream saved the lead (UTC, RFC 3339, milliseconds, `Z`).
    pub received_at: String,
    /// Each question's values joined with ", ", in the order of `field_data`.
    pub fields: BTreeMap<String, String>,
    pub field_data: Vec<FieldData>,
    /// `webhook`, `sync` or `demo`: which door the lead came through.
    pub source: String,
}

impl Lead {
    /// The person's name as the dashboard shows it: `full_name`, else first + last name.
    pub fn display_name(&self) -> String {
        if let Some(n) = self
            .fields
            .get("full_name")
            .filter(|n| !n.trim().is_empty())
        {
            return n.clone();
        }
        let first = self
            .fields
            .get("first_name")
            .map(String::as_str)
            .unwrap_or("");
        let last = self
            .fields
            .get("last_name")
            .map(String::as_str)
            .unwrap_or("");
        format!("{first} {last}").trim().to_string()
    }

    pub fn email(&self) -> &str {
        self.fields.get("email").map(String::as_str).unwrap_or("")
    }

    pub fn phone(&self) -> &str {
        self.fields
            .get("phone_number")
            .or_else(|| self.fields.get("phone"))
            .map(String::as_str)
            .unwrap_or("")
    }
}

/// Builds the flattened `fields` map from Graph's `field_data`.
pub fn flatten_fields(field_data: &[FieldData]) -> BTreeMap<String, String> {
    field_data
        .iter()
        .map(|f| (f.name.clone(), f.values.join(", ")))
        .collect()
}

/// A lead fetched from Graph (or made by sync), before it has a local row id.
#[derive(Debug, Clone, PartialEq)]
pub struct NewLead {
    pub leadgen_id: String,
    pub page_id: Option<String>,
    pub form_id: Option<String>,
    pub ad_id: Option<String>,
    pub adgroup_id: Option<String>,
    pub campaign_id: Option<String>,
    pub created_time: DateTime<Utc>,
    pub field_data: Vec<FieldData>,
    pub source: LeadSource,
}

#[cfg(test)]
impl Lead {
    /// For unit tests: saved lead `id` (Graph id 1,000,000 + `id`) with no answers and no
    /// page or form; tests set what they check with `..Lead::sample(id)`.
    pub fn sample(id: i64) -> Lead {
        Lead {
            id,
            leadgen_id: format!("{}", 1_000_000 + id),
            page_id: None,
            form_id: None,
            form_name: None,
            ad_id: None,
            adgroup_id: None,
            campaign_id: None,
            created_time: "2026-11-28T12:00:00Z".into(),
            received_at: "2026-11-28T12:00:00.000Z".into(),
            fields: Default::default(),
            field_data: Vec::new(),
            source: "webhook".into(),
        }
    }
}

#[cfg(test)]
impl NewLead {
    /// For unit tests: a webhook lead from page 1, form 2, made now, with one answer.
    pub fn sample(leadgen_id: &str, full_name: &str) -> NewLead {
        NewLead {
            leadgen_id: leadgen_id.into(),
            page_id: Some("1".into()),
            form_id: Some("2".into()),
            ad_id: None,
            adgroup_id: None,
            campaign_id: None,
            created_time: Utc::now(),
            field_data: vec![FieldData {
                name: "full_name".into(),
                values: vec![full_name.into()],
            }],
            source: LeadSource::Webhook,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeadSource {
    Webhook,
    Sync,
    Demo,
}

impl LeadSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LeadSource::Webhook => "webhook",
            LeadSource::Sync => "sync",
            LeadSource::Demo => "demo",
        }
    }
}

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
    pub sort: SortKey,
    /// `true` for ascending; the default is newest first.
    pub ascending: bool,
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
    pub sort: Option<String>,
    pub order: Option<String>,
    pub limit: Option<String>,
    pub offset: Option<String>,
}

/// Default and maximum page size of `/api/leads`.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

impl LeadQuery {
    /// Checks every value; the error names the parameter so the caller can fix it.
    pub fn parse(&self) -> Result<(LeadFilter, usize, usize), String> {
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
        let limit = match non_empty(&self.limit) {
            None => DEFAULT_LIMIT,
            Some(s) => s
                .parse::<usize>()
                .map_err(|_| format!("limit must be a whole number, not {s:?}"))?
                .clamp(1, MAX_LIMIT),
        };
        let offset = match non_empty(&self.offset) {
            None => 0,
            Some(s) => s
                .parse::<usize>()
                .map_err(|_| format!("offset must be a whole number, not {s:?}"))?,
        };
        let filter = LeadFilter {
            q: non_empty(&self.q),
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

/// Parses Graph's `2026-11-28T14:02:11+0000` (no colon in the offset), and RFC 3339 too.
pub fn parse_graph_time(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%z")
        .or_else(|_| DateTime::parse_from_rfc3339(s))
        .map(|t| t.with_timezone(&Utc))
}

/// `2026-11-28T14:02:11Z`
pub fn format_seconds(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `2026-11-28T14:02:12.345Z`
pub fn format_millis(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_times_without_colon_parse() {
        let t = parse_graph_time("2026-02-28T08:49:14+0000").unwrap();
        assert_eq!(format_seconds(t), "2026-02-28T08:49:14Z");
        let t = parse_graph_time("2026-02-28T10:49:14+0200").unwrap();
        assert_eq!(format_seconds(t), "2026-02-28T08:49:14Z");
    }

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
        assert!(q.parse().unwrap_err().contains("sort"));
        let q = LeadQuery {
            limit: Some("5000".into()),
            ..Default::default()
        };
        assert_eq!(q.parse().unwrap().1, MAX_LIMIT);
    }

    #[test]
    fn display_name_falls_back_to_first_and_last() {
        let fd = vec![
            FieldData {
                name: "first_name".into(),
                values: vec!["Ada".into()],
            },
            FieldData {
                name: "last_name".into(),
                values: vec!["Lovelace".into()],
            },
        ];
        let lead = Lead {
            fields: flatten_fields(&fd),
            field_data: fd,
            ..Lead::sample(1)
        };
        assert_eq!(lead.display_name(), "Ada Lovelace");
    }
}
