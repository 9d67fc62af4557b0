//! What both engines store for forwarding and read back: a destination's columns, a
//! delivery's, and the rows a saved lead's event becomes.
//!
//! A destination's forms, events and e-mail addresses are kept as JSON lists in text columns,
//! the same in SQLite and PostgreSQL. Deliveries are made inside the transaction that saves
//! the lead, so the destinations are read there too, and matched here, in Rust.

use chrono::DateTime;

use crate::config::Secret;
use crate::model::forward::{
    event_body, wants, DeliveryRecord, DeliveryState, Destination, DueDelivery, EventType, Failing,
    NewDestination, Target,
};
use crate::model::{format_millis, Lead};

/// Most deliveries a listing of one destination gives.
pub const MAX_LISTED_DELIVERIES: usize = 200;

/// `ms` (unix milliseconds) as served: RFC 3339, UTC, milliseconds.
pub(super) fn ms_text(ms: i64) -> String {
    format_millis(DateTime::from_timestamp_millis(ms).unwrap_or_default())
}

fn json_list(list: &[String]) -> String {
    serde_json::to_string(list).expect("strings serialise")
}

/// A JSON list column; a broken one reads as empty (it was written by us).
fn parse_list(text: Option<&str>) -> Option<Vec<String>> {
    text.map(|t| serde_json::from_str(t).unwrap_or_default())
}

/// The columns a new destination is written with.
pub(super) struct DestinationRow {
    pub kind: &'static str,
    pub url: Option<String>,
    /// JSON list of addresses.
    pub recipients: Option<String>,
    pub secret: Option<String>,
    /// JSON list of form ids; `None`: every form.
    pub forms: Option<String>,
    /// JSON list of event names.
    pub events: String,
}

impl DestinationRow {
    pub fn new(d: &NewDestination) -> DestinationRow {
        let (url, recipients) = match &d.target {
            Target::Webhook { url } => (Some(url.clone()), None),
            Target::Email { to } => (None, Some(json_list(to))),
        };
        let events: Vec<String> = d.events.iter().map(|e| e.as_str().to_string()).collect();
        DestinationRow {
            kind: d.target.kind(),
            url,
            recipients,
            secret: d.secret.as_ref().map(|s| s.expose().to_string()),
            forms: d.forms.as_deref().map(json_list),
            events: json_list(&events),
        }
    }
}

/// The columns a destination is read from, in this order, for
/// `SELECT {DESTINATION_COLUMNS} FROM destinations d …`.
pub(super) const DESTINATION_COLUMNS: &str =
    "d.id, d.kind, d.url, d.recipients, d.forms, d.events, d.created_ms, d.failures, \
     d.failing_since_ms, d.last_error, d.last_delivered_ms, d.delivered_count, \
     (SELECT count(*) FROM forwards f WHERE f.destination_id = d.id AND f.state = 'pending'), \
     (SELECT count(*) FROM forwards f WHERE f.destination_id = d.id AND f.state = 'dead')";

/// The values of [`DESTINATION_COLUMNS`], as either engine's row hands them over.
pub(super) struct DestinationColumns {
    pub id: i64,
    pub kind: String,
    pub url: Option<String>,
    pub recipients: Option<String>,
    pub forms: Option<String>,
    pub events: String,
    pub created_ms: i64,
    pub failures: i64,
    pub failing_since_ms: Option<i64>,
    pub last_error: Option<String>,
    pub last_delivered_ms: Option<i64>,
    pub delivered: i64,
    pub pending: i64,
    pub dead: i64,
}

/// Where a destination sends, from its columns.
fn target(kind: &str, url: Option<String>, recipients: Option<&str>) -> Target {
    match kind {
        "email" => Target::Email {
            to: parse_list(recipients).unwrap_or_default(),
        },
        _ => Target::Webhook {
            url: url.unwrap_or_default(),
        },
    }
}

impl DestinationColumns {
    pub fn into_destination(self) -> Destination {
        let failing = match (self.failures, self.failing_since_ms) {
            (n, Some(since)) if n > 0 => Some(Failing {
                failures: n,
                since: ms_text(since),
                since_ms: since,
                last_error: self.last_error.unwrap_or_default(),
            }),
            _ => None,
        };
        Destination {
            id: self.id,
            target: target(&self.kind, self.url, self.recipients.as_deref()),
            forms: parse_list(self.forms.as_deref()),
            events: parse_list(Some(&self.events)).unwrap_or_default(),
            created_at: ms_text(self.created_ms),
            pending: self.pending,
            delivered: self.delivered,
            dead: self.dead,
            last_delivered_at: self.last_delivered_ms.map(ms_text),
            failing,
        }
    }
}

/// The columns a delivery is listed from, in this order, for `SELECT … FROM forwards f`.
pub(super) const DELIVERY_COLUMNS: &str =
    "f.id, f.destination_id, f.event, f.lead_id, f.webhook_id, f.state, f.attempts, \
     f.created_ms, f.updated_ms, f.next_attempt_ms, f.last_status, f.last_error, f.delivered_ms";

/// The values of [`DELIVERY_COLUMNS`].
pub(super) struct DeliveryColumns {
    pub id: i64,
    pub destination_id: i64,
    pub event: String,
    pub lead_id: Option<i64>,
    pub webhook_id: String,
    pub state: String,
    pub attempts: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub next_attempt_ms: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_ms: Option<i64>,
}

impl DeliveryColumns {
    pub fn into_record(self) -> DeliveryRecord {
        let state = DeliveryState::parse(&self.state).unwrap_or(DeliveryState::Pending);
        DeliveryRecord {
            id: self.id,
            destination_id: self.destination_id,
            event: self.event,
            lead_id: self.lead_id,
            webhook_id: self.webhook_id,
            state,
            attempts: self.attempts,
            created_at: ms_text(self.created_ms),
            updated_at: ms_text(self.updated_ms),
            next_attempt_at: (state == DeliveryState::Pending)
                .then(|| ms_text(self.next_attempt_ms)),
            last_status: self.last_status,
            last_error: self.last_error,
            delivered_at: self.delivered_ms.map(ms_text),
        }
    }
}

/// The columns a due delivery is claimed with, in this order: the delivery's and its
/// destination's, for `… FROM forwards f JOIN destinations d ON d.id = f.destination_id`.
pub(super) const DUE_COLUMNS: &str =
    "f.id, f.destination_id, f.event, f.lead_id, f.webhook_id, f.payload, f.attempts, \
     f.created_ms, d.kind, d.url, d.recipients, d.secret";

/// The values of [`DUE_COLUMNS`].
pub(super) struct DueColumns {
    pub id: i64,
    pub destination_id: i64,
    pub event: String,
    pub lead_id: Option<i64>,
    pub webhook_id: String,
    pub payload: String,
    pub attempts: i64,
    pub created_ms: i64,
    pub kind: String,
    pub url: Option<String>,
    pub recipients: Option<String>,
    pub secret: Option<String>,
}

impl DueColumns {
    pub fn into_due(self) -> DueDelivery {
        DueDelivery {
            id: self.id,
            destination_id: self.destination_id,
            event: self.event,
            lead_id: self.lead_id,
            webhook_id: self.webhook_id,
            payload: self.payload,
            attempts: self.attempts,
            created_ms: self.created_ms,
            target: target(&self.kind, self.url, self.recipients.as_deref()),
            secret: self.secret.map(Secret::new),
        }
    }
}

/// A destination's filter, as the save path reads it: `SELECT id, forms, events FROM
/// destinations`.
pub(super) struct Route {
    pub id: i64,
    pub forms: Option<Vec<String>>,
    pub events: Vec<String>,
}

impl Route {
    pub fn new(id: i64, forms: Option<String>, events: String) -> Route {
        Route {
            id,
            forms: parse_list(forms.as_deref()),
            events: parse_list(Some(&events)).unwrap_or_default(),
        }
    }
}

/// A delivery to insert with the event it is about.
pub(super) struct NewDelivery {
    pub destination_id: i64,
    pub lead_id: i64,
    pub event: &'static str,
    pub payload: std::sync::Arc<str>,
}

/// The deliveries `event` about each of `leads` makes, one per destination in `routes` that
/// wants it. The body is made once per lead, and only when some destination wants it.
pub(super) fn deliveries_for(
    routes: &[Route],
    event: EventType,
    leads: &[Lead],
    timestamp: impl Fn(&Lead) -> String,
) -> Vec<NewDelivery> {
    let mut out = Vec::new();
    for lead in leads {
        let mut body: Option<std::sync::Arc<str>> = None;
        for r in routes {
            if wants(
                r.forms.as_deref(),
                &r.events,
                event,
                lead.form_id.as_deref(),
            ) {
                let payload = body
                    .get_or_insert_with(|| event_body(event, &timestamp(lead), lead).into())
                    .clone();
                out.push(NewDelivery {
                    destination_id: r.id,
                    lead_id: lead.id,
                    event: event.as_str(),
                    payload,
                });
            }
        }
    }
    out
}
