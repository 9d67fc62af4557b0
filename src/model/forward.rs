//! Forwarding's values: where leads go besides the dashboard ([`Destination`]), what is sent
//! there ([`EventType`], [`event_body`]), and one event on its way to one destination (a
//! delivery: [`DeliveryRecord`] as listed, [`DueDelivery`] as the worker sends it).

use serde::Serialize;

use super::Lead;
use crate::config::Secret;

/// What happened, as the `type` of the body sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// A lead was saved.
    LeadCreated,
    /// A saved lead was changed (status, owner, a note).
    LeadUpdated,
    /// An admin pressed "Send test": a sample lead, sent once, never retried.
    Test,
}

impl EventType {
    /// The events a destination can take, in the order they are listed.
    pub const SUBSCRIBABLE: [EventType; 2] = [EventType::LeadCreated, EventType::LeadUpdated];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::LeadCreated => "lead.created",
            EventType::LeadUpdated => "lead.updated",
            EventType::Test => "test",
        }
    }

    /// A subscribable event by its name.
    pub fn subscribable(name: &str) -> Option<EventType> {
        Self::SUBSCRIBABLE.into_iter().find(|e| e.as_str() == name)
    }
}

/// Where a destination sends, as stored and served (`{"kind":"webhook","url":…}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Target {
    /// A `POST` of each event's body, signed the Standard Webhooks way.
    Webhook { url: String },
    /// One mail per new lead to every address.
    Email { to: Vec<String> },
}

impl Target {
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Webhook { .. } => "webhook",
            Target::Email { .. } => "email",
        }
    }

    /// The destination in words, for `/api/status` and the log: a webhook by its origin only
    /// (a path or query often holds the receiver's own secret, as a catch-hook URL does).
    pub fn describe(&self) -> String {
        match self {
            Target::Webhook { url } => {
                let origin = url::Url::parse(url)
                    .map(|u| u.origin().ascii_serialization())
                    .unwrap_or_else(|_| "an unreadable URL".into());
                format!("Webhook to {origin}")
            }
            Target::Email { to } => format!("E-mail to {}", to.join(", ")),
        }
    }
}

/// A destination to create, checked (`forward::destination::parse` makes one).
#[derive(Debug, Clone)]
pub struct NewDestination {
    pub target: Target,
    /// The webhook's signing secret (`whsec_…`); none for e-mail.
    pub secret: Option<Secret>,
    /// Only leads of these forms; `None`: every form.
    pub forms: Option<Vec<String>>,
    pub events: Vec<EventType>,
}

/// A destination as served: never with its secret.
#[derive(Debug, Clone, Serialize)]
pub struct Destination {
    pub id: i64,
    #[serde(flatten)]
    pub target: Target,
    pub forms: Option<Vec<String>>,
    pub events: Vec<String>,
    pub created_at: String,
    /// Deliveries waiting to be sent or retried.
    pub pending: i64,
    pub delivered: i64,
    /// Deliveries set aside after their retries ran out; an admin can retry them.
    pub dead: i64,
    pub last_delivered_at: Option<String>,
    /// Set while the latest tries failed, until one succeeds.
    pub failing: Option<Failing>,
}

/// A destination whose latest tries failed: how many in a row, since when, and the last why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failing {
    pub failures: i64,
    pub since: String,
    /// Unix ms of `since`, for the words of `/api/status`.
    #[serde(skip)]
    pub since_ms: i64,
    pub last_error: String,
}

/// A delivery's state: waiting (to be sent or retried), delivered, or set aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    Pending,
    Delivered,
    Dead,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryState> {
        [
            DeliveryState::Pending,
            DeliveryState::Delivered,
            DeliveryState::Dead,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

/// One event to one destination, as `/api/destinations/{id}/deliveries` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRecord {
    pub id: i64,
    pub destination_id: i64,
    pub event: String,
    /// The lead it is about; `None` for a test.
    pub lead_id: Option<i64>,
    /// The `webhook-id` header of every try.
    pub webhook_id: String,
    pub state: DeliveryState,
    pub attempts: i64,
    pub created_at: String,
    pub updated_at: String,
    /// When the next try is due (pending only).
    pub next_attempt_at: Option<String>,
    /// The HTTP status (or SMTP reply code) of the last try, when there was an answer.
    pub last_status: Option<i64>,
    /// Why the last try failed: the status and a short, escaped piece of the answer, or the
    /// connection's trouble.
    pub last_error: Option<String>,
    pub delivered_at: Option<String>,
}

/// A due delivery, claimed for sending, with everything the send needs.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: i64,
    pub destination_id: i64,
    pub event: String,
    pub lead_id: Option<i64>,
    pub webhook_id: String,
    /// The body, made when the event happened: sent byte for byte on every try.
    pub payload: String,
    /// Tries so far.
    pub attempts: i64,
    /// When the delivery was made (unix ms); retrying stops a retry period after it.
    pub created_ms: i64,
    pub target: Target,
    pub secret: Option<Secret>,
}

impl DueDelivery {
    /// A test is tried once: its outcome is what the admin wants to see.
    pub fn is_test(&self) -> bool {
        self.event == EventType::Test.as_str()
    }
}

/// How a try of a delivery ended, to be written down.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered {
        status: Option<i64>,
    },
    /// Another try at `next_attempt_ms`.
    RetryLater {
        next_attempt_ms: i64,
        status: Option<i64>,
        error: String,
    },
    /// Set aside (retries ran out, or a test, or a refusal that cannot change).
    SetAside {
        status: Option<i64>,
        error: String,
    },
}

/// The body of an event about `lead` at `timestamp` (RFC 3339):
/// `{"type":"lead.created","timestamp":"…","data":{Lead JSON}}`. Made once, when the event
/// happens, and sent as it is on every try.
pub fn event_body(event: EventType, timestamp: &str, lead: &Lead) -> String {
    #[derive(Serialize)]
    struct Body<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        timestamp: &'a str,
        data: &'a Lead,
    }
    serde_json::to_string(&Body {
        kind: event.as_str(),
        timestamp,
        data: lead,
    })
    .expect("a lead serialises")
}

/// Whether a destination taking `forms` (all when `None`) and `events` wants `event` about a
/// lead of `form_id`.
pub fn wants(
    forms: Option<&[String]>,
    events: &[String],
    event: EventType,
    form_id: Option<&str>,
) -> bool {
    let form_ok = match forms {
        None => true,
        Some(forms) => form_id.is_some_and(|f| forms.iter().any(|x| x == f)),
    };
    form_ok && events.iter().any(|e| e == event.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_limited_to_forms_wants_only_their_leads_and_only_its_events() {
        let created = vec!["lead.created".to_string()];
        let forms = vec!["1".to_string(), "2".to_string()];
        assert!(wants(None, &created, EventType::LeadCreated, None));
        assert!(wants(
            Some(&forms),
            &created,
            EventType::LeadCreated,
            Some("2")
        ));
        assert!(!wants(
            Some(&forms),
            &created,
            EventType::LeadCreated,
            Some("3")
        ));
        assert!(!wants(Some(&forms), &created, EventType::LeadCreated, None));
        assert!(!wants(None, &created, EventType::LeadUpdated, Some("1")));
    }

    #[test]
    fn a_webhook_is_described_by_its_origin_only() {
        let t = Target::Webhook {
            url: "https://hooks.example.com:8443/catch/123/s3cret?key=abc".into(),
        };
        assert_eq!(t.describe(), "Webhook to https://hooks.example.com:8443");
        let t = Target::Email {
            to: vec!["a@example.com".into(), "b@example.com".into()],
        };
        assert_eq!(t.describe(), "E-mail to a@example.com, b@example.com");
    }

    #[test]
    fn the_body_carries_the_type_the_time_and_the_lead() {
        let body = event_body(
            EventType::LeadCreated,
            "2026-11-28T14:02:12.345Z",
            &Lead::sample(7),
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["type"], "lead.created");
        assert_eq!(v["timestamp"], "2026-11-28T14:02:12.345Z");
        assert_eq!(v["data"]["id"], 7);
        assert_eq!(v["data"]["leadgen_id"], "1000007");
    }
}
