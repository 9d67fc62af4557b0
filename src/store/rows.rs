//! What both engines store for a lead and read back: the row a new lead becomes, the text `q`
//! searches, and the columns a listing selects.

use chrono::{TimeZone, Utc};

use crate::model::{
    flatten_fields, format_millis, format_seconds, format_unix_ms, FieldData, Lead, LeadStatus,
    NewLead,
};

/// A new lead as its row holds it: the lead as it will be served (id still 0), and the
/// derived columns.
pub(super) struct LeadRow {
    pub lead: Lead,
    /// Unix seconds of `created_time`.
    pub created_ts: i64,
    pub received_ms: i64,
    /// The display name, for sorting.
    pub name: String,
    /// `field_data` as JSON text.
    pub field_data: String,
    pub search_text: String,
}

impl LeadRow {
    pub fn new(lead: &NewLead, received_ms: i64) -> LeadRow {
        let received = Utc
            .timestamp_millis_opt(received_ms)
            .single()
            .unwrap_or_else(Utc::now);
        let out = Lead {
            id: 0,
            leadgen_id: lead.leadgen_id.clone(),
            page_id: lead.page_id.clone(),
            form_id: lead.form_id.clone(),
            form_name: None,
            ad_id: lead.ad_id.clone(),
            adgroup_id: lead.adgroup_id.clone(),
            campaign_id: lead.campaign_id.clone(),
            created_time: format_seconds(lead.created_time),
            received_at: format_millis(received),
            fields: flatten_fields(&lead.field_data),
            field_data: lead.field_data.clone(),
            source: lead.source.as_str().to_string(),
            status: LeadStatus::New,
            owner: None,
            first_contact_at: None,
            updated_at: format_millis(received),
            version: 1,
            notes_count: 0,
        };
        LeadRow {
            // Derived columns drop NUL, which PostgreSQL's text cannot hold; the answers
            // themselves are kept verbatim in `field_data` (JSON escapes it).
            name: out.display_name().replace('\0', ""),
            field_data: serde_json::to_string(&lead.field_data).expect("field data serialises"),
            search_text: search_text(&out),
            created_ts: lead.created_time.timestamp(),
            received_ms,
            lead: out,
        }
    }
}

/// Lower-cased text that `q` searches: the name, every answer, and the ids.
fn search_text(l: &Lead) -> String {
    let mut s = String::new();
    // U+001F between parts, so a search cannot match across two answers.
    let sep = '\u{1f}';
    for part in [
        Some(&l.leadgen_id),
        l.form_id.as_ref(),
        l.page_id.as_ref(),
        l.ad_id.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        s.push_str(part);
        s.push(sep);
    }
    for f in &l.field_data {
        for v in &f.values {
            s.extend(v.to_lowercase().chars().filter(|c| *c != '\0'));
            s.push(sep);
        }
    }
    s
}

/// The columns a lead is read from, in the order [`LeadColumns`] expects, for
/// `SELECT {LEAD_COLUMNS} {LEAD_FROM} …`. (`updated_ms` is empty for leads saved before leads
/// could change.)
pub(super) const LEAD_COLUMNS: &str =
    "l.id, l.leadgen_id, l.page_id, l.form_id, f.name, l.ad_id, l.adgroup_id, \
     l.campaign_id, l.created_time, l.received_at, l.field_data, l.source, \
     l.status, l.owner, l.first_contact_ms, coalesce(l.updated_ms, l.received_ms), l.version, \
     l.notes_count";
/// How many columns [`LEAD_COLUMNS`] names.
pub(super) const LEAD_COLUMN_COUNT: usize = 18;
pub(super) const LEAD_FROM: &str = "FROM leads l LEFT JOIN forms f ON f.form_id = l.form_id";
/// The stream's events with their leads: `SELECT {LEAD_COLUMNS}, {EVENT_COLUMNS} {EVENT_FROM}`.
/// An `erased` event has no lead (its columns are NULL); the events of a lead are deleted when
/// it is erased, so every other event finds its lead.
pub(super) const EVENT_FROM: &str = "FROM events e LEFT JOIN leads l ON l.id = e.lead_id \
     LEFT JOIN forms f ON f.form_id = l.form_id";
/// The event's own columns, after [`LEAD_COLUMNS`] (from index [`LEAD_COLUMN_COUNT`]).
pub(super) const EVENT_COLUMNS: &str = "e.id, e.kind, e.lead_id";
/// Only events that can still be told: a lead's, or an erasure (never a lead's event whose
/// lead is gone).
pub(super) const EVENT_TOLD: &str = "(l.id IS NOT NULL OR e.kind = 'erased')";

/// The values of [`LEAD_COLUMNS`], as either engine's row hands them over.
pub(super) struct LeadColumns {
    pub id: i64,
    pub leadgen_id: String,
    pub page_id: Option<String>,
    pub form_id: Option<String>,
    pub form_name: Option<String>,
    pub ad_id: Option<String>,
    pub adgroup_id: Option<String>,
    pub campaign_id: Option<String>,
    pub created_time: String,
    pub received_at: String,
    pub field_data: String,
    pub source: String,
    pub status: String,
    pub owner: Option<String>,
    pub first_contact_ms: Option<i64>,
    pub updated_ms: i64,
    pub version: i64,
    pub notes_count: i64,
}

impl LeadColumns {
    pub fn into_lead(self) -> Result<Lead, serde_json::Error> {
        let field_data: Vec<FieldData> = serde_json::from_str(&self.field_data)?;
        Ok(Lead {
            id: self.id,
            leadgen_id: self.leadgen_id,
            page_id: self.page_id,
            form_id: self.form_id,
            form_name: self.form_name,
            ad_id: self.ad_id,
            adgroup_id: self.adgroup_id,
            campaign_id: self.campaign_id,
            created_time: self.created_time,
            received_at: self.received_at,
            fields: flatten_fields(&field_data),
            field_data,
            source: self.source,
            status: LeadStatus::parse(&self.status).unwrap_or_default(),
            owner: self.owner,
            first_contact_at: self.first_contact_ms.map(format_unix_ms),
            updated_at: format_unix_ms(self.updated_ms),
            version: self.version,
            notes_count: self.notes_count,
        })
    }
}
