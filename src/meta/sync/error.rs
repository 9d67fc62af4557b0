//! Why a sync stopped, in the words a person reads on the dashboard and in the answer of
//! `POST /api/leads/sync`.

use std::time::Duration;

use crate::meta::graph::{ErrorClass, GraphError};
use crate::meta::status::problem_words;
use crate::model::SyncReport;

/// What a Graph error was about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// Listing the forms of this page.
    Page(String),
    /// Reading the leads of this form.
    Form { id: String, name: Option<String> },
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Page(id) => write!(f, "page {id}"),
            Place::Form { id, name: Some(n) } => write!(f, "form \"{n}\" ({id})"),
            Place::Form { id, name: None } => write!(f, "form {id}"),
        }
    }
}

/// Why a sync stopped early (or did not start).
#[derive(Debug, Clone, PartialEq)]
pub enum SyncError {
    /// META_PAGE_ID is empty: there is nothing to read.
    NotConfigured,
    /// Meta rate-limited us a moment ago; no Graph call before this much time has passed.
    Paused(Duration),
    /// Meta refused. What was read before is saved.
    Graph {
        // Boxed: Meta's error object is large and this travels through every Result.
        error: Box<GraphError>,
        place: Place,
        partial: SyncReport,
        /// When the sync tries again by itself; `None` when only a person can help.
        retry_in: Option<Duration>,
    },
    Store(String),
    /// The sync another instance ran, and joined from here, failed: its words.
    Elsewhere(String),
    /// leadstream shut down while the sync ran; what was read is saved.
    Interrupted,
}

impl SyncError {
    pub fn class(&self) -> Option<ErrorClass> {
        match self {
            SyncError::Graph { error, .. } => Some(error.class()),
            SyncError::Paused(_) => Some(ErrorClass::RateLimited),
            _ => None,
        }
    }

    /// When this sync (or the request for one) may be tried again, if it will be by itself.
    pub fn retry_in(&self) -> Option<Duration> {
        match self {
            SyncError::Paused(d) => Some(*d),
            SyncError::Graph { retry_in, .. } => *retry_in,
            _ => None,
        }
    }

    /// The sentence a person reads: the answer of `POST /api/leads/sync`, and the last sync's
    /// error on `/api/status` and the dashboard.
    pub fn words(&self) -> String {
        match self {
            SyncError::NotConfigured => "no page to sync: set META_PAGE_ID to your page id(s), \
                                         comma-separated, and restart leadstream"
                .into(),
            SyncError::Paused(left) => format!(
                "Meta's rate limit was reached: leadstream makes no calls to Meta for another {}, \
                 then catches up by itself",
                about(*left)
            ),
            SyncError::Interrupted => {
                "leadstream shut down during the sync; the next start catches up".into()
            }
            SyncError::Store(e) => format!("the sync could not write to the database: {e}"),
            SyncError::Elsewhere(words) => words.clone(),
            SyncError::Graph {
                error,
                place,
                partial,
                retry_in,
            } => {
                let saved = format!(
                    "{} read, {} fetched, {} new, all saved",
                    plural(partial.forms, "form", "forms"),
                    partial.fetched,
                    partial.new
                );
                match (error.class(), problem_words(error)) {
                    (ErrorClass::RateLimited, _) => match retry_in {
                        Some(wait) => format!(
                            "Meta's rate limit was reached at {place} ({saved}): leadstream \
                             waits {}, then finishes the sync by itself",
                            about(*wait)
                        ),
                        None => format!(
                            "Meta's rate limit was reached at {place} ({saved}): wait a few \
                             minutes, then sync again"
                        ),
                    },
                    (ErrorClass::Permission, Some(words)) => format!("{place}: {words}"),
                    (_, Some(words)) => words,
                    (class, None) => {
                        let mut s = format!("{place}: {error} ({saved})");
                        if let Some(w) = retry_in {
                            s.push_str(&format!("; leadstream tries again in {}", about(*w)));
                        } else if class == ErrorClass::Permanent && matches!(place, Place::Page(_))
                        {
                            s.push_str(
                                "; check that META_PAGE_ID holds this page's id and that \
                                 META_PAGE_ACCESS_TOKEN is a token of this page",
                            );
                        }
                        s
                    }
                }
            }
        }
    }
}

/// For logs: the technical detail (codes, fbtrace_id) as well.
impl std::fmt::Display for SyncError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncError::Graph {
                error,
                place,
                partial,
                ..
            } => write!(
                f,
                "{place}: {error} (after {} forms, {} leads fetched, {} new)",
                partial.forms, partial.fetched, partial.new
            ),
            other => f.write_str(&other.words()),
        }
    }
}

/// "45 s", "3 min".
fn about(d: Duration) -> String {
    let s = d.as_secs_f64().ceil() as u64;
    if s >= 120 {
        format!("about {} min", s.div_ceil(60))
    } else {
        format!("{} s", s.max(1))
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
