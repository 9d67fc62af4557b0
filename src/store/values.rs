//! What the store's methods take and give back, the same for both engines.

use std::fmt;

/// What storing a delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub delivery_id: i64,
    /// Jobs created; redelivered and already-saved leads add none.
    pub new_jobs: usize,
}

/// A due job, as the worker sees it.
#[derive(Debug, Clone)]
pub struct Job {
    pub leadgen_id: String,
    pub page_id: Option<String>,
    pub form_id: Option<String>,
    pub ad_id: Option<String>,
    pub adgroup_id: Option<String>,
    /// Tries so far.
    pub attempts: i64,
    /// When the job was created (unix ms); retrying stops a retry period after it.
    pub first_seen_ms: i64,
}

/// Due jobs, and when the next of the others is due.
#[derive(Debug, Clone, Default)]
pub struct DueJobs {
    /// Oldest due first.
    pub jobs: Vec<Job>,
    /// Unix ms of the next pending job that is not due yet.
    pub next_due_ms: Option<i64>,
}

/// Due deliveries of forwarding, and when the next of the others is due.
#[derive(Debug, Clone, Default)]
pub struct DueDeliveries {
    pub deliveries: Vec<crate::model::forward::DueDelivery>,
    /// Unix ms of the next pending delivery that is not due yet.
    pub next_due_ms: Option<i64>,
}

/// A dead letter, for `/api/dead-letters` and the dashboard.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadLetter {
    pub leadgen_id: String,
    pub form_id: Option<String>,
    pub attempts: i64,
    pub error: Option<String>,
    pub error_code: Option<i64>,
    pub updated_ms: i64,
}

/// A form as Meta describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormInfo {
    pub form_id: String,
    pub name: Option<String>,
    pub status: Option<String>,
}

/// Statistics of the leads matching a filter (dates in UTC).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stats {
    pub today: i64,
    pub last_7_days: i64,
    pub total: i64,
    pub per_form: Vec<FormCount>,
    /// The last 30 days, oldest first, days without leads included.
    pub per_day: Vec<DayCount>,
    /// Minutes from receipt to first contact, over the last 7 and 30 days.
    pub speed_to_lead: Vec<crate::model::SpeedWindow>,
    /// The leads nobody has contacted yet.
    pub waiting: crate::model::Waiting,
}

/// How many leads there are, and the newest ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub count: i64,
    /// The newest lead's id (0 without leads).
    pub last_id: i64,
    /// The newest event's id: where a stream opened now would start.
    pub last_event_id: i64,
}

/// What logging in as a user needs: the name as it was given, the role, and the hash to
/// check the password against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserLogin {
    pub name: String,
    pub role: crate::model::Role,
    /// Argon2id, in the PHC string format.
    pub password_hash: String,
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

#[derive(Debug, Clone, serde::Serialize)]
pub struct PageCount {
    pub page_id: String,
    pub count: i64,
}

/// What `/api/status` reads from the database, in one go.
#[derive(Debug, Clone)]
pub struct Overview {
    pub jobs_waiting: i64,
    pub dead_letters: i64,
    /// When the last webhook was stored, unix ms.
    pub last_webhook_ms: Option<i64>,
    pub last_sync: Option<crate::model::LastSync>,
    pub leads: i64,
}

/// A session as stored, keyed by the hash of its cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub principal: String,
    /// `admin` or `member`, as when the session was made.
    pub role: String,
    pub credential_kind: String,
    pub credential_fp: String,
    /// Unix ms.
    pub expires_ms: i64,
}

/// Meta's health as every instance shares it (PostgreSQL only: one SQLite process keeps it
/// in memory).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedHealth {
    /// No Graph calls before this (unix ms); 0 when there is no pause.
    pub graph_paused_until_ms: i64,
    /// A problem with the token or permissions, in words a person can act on.
    pub meta_problem: Option<String>,
}

/// Why a walk over the leads ([`super::Store::each_lead`]) stopped early.
#[derive(Debug)]
pub enum WalkError<E> {
    Store(super::StoreError),
    /// The visitor said stop (an export whose reader went away).
    Visitor(E),
}

/// A walk whose visitor cannot fail stopped for the store's reason.
impl From<WalkError<std::convert::Infallible>> for super::StoreError {
    fn from(e: WalkError<std::convert::Infallible>) -> Self {
        match e {
            WalkError::Store(e) => e,
            WalkError::Visitor(never) => match never {},
        }
    }
}

impl<E: fmt::Display> fmt::Display for WalkError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalkError::Store(e) => e.fmt(f),
            WalkError::Visitor(e) => e.fmt(f),
        }
    }
}
