//! What a catch-up sync with Meta did, as answered to `POST /api/leads/sync` and kept for
//! `/api/status`.

use serde::{Deserialize, Serialize};

/// `{"forms","fetched","new"}` of `POST /api/leads/sync`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    /// Forms whose leads were read to the end.
    pub forms: u64,
    /// Leads Graph returned.
    pub fetched: u64,
    /// Of those, leads saved for the first time.
    pub new: u64,
}

/// The last sync, as the store keeps it and `/api/status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastSync {
    pub at: String,
    pub ok: bool,
    #[serde(flatten)]
    pub report: SyncReport,
    pub error: Option<String>,
}
