//! A lead as stored and served, one answer of it, and a lead before it has a row.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::team::LeadStatus;

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
    /// Where the team is with the lead.
    pub status: LeadStatus,
    /// The user who works the lead (a name), or `None` while nobody does.
    pub owner: Option<String>,
    /// The first move away from `new`, or the first note (UTC, RFC 3339, milliseconds, `Z`).
    pub first_contact_at: Option<String>,
    /// The last change, or when the lead was saved (UTC, RFC 3339, milliseconds, `Z`).
    pub updated_at: String,
    /// Grows by one with every change: a change names the version it was made on, and one
    /// made on an older version is refused (someone else changed the lead meanwhile).
    pub version: i64,
    pub notes_count: i64,
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

/// A lead a webhook announced (one `leadgen` change): ids only; the answers come from Graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadgenChange {
    /// Checked to be digits.
    pub leadgen_id: String,
    pub page_id: Option<String>,
    pub form_id: Option<String>,
    /// `None` for organic and Testing Tool leads (absent, or `0`).
    pub ad_id: Option<String>,
    pub adgroup_id: Option<String>,
    /// Unix seconds.
    pub created_time: Option<i64>,
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
            status: LeadStatus::New,
            owner: None,
            first_contact_at: None,
            updated_at: "2026-11-28T12:00:00.000Z".into(),
            version: 1,
            notes_count: 0,
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

#[cfg(test)]
mod tests {
    use super::*;

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
