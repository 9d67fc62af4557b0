//! What can go wrong when we ask Graph, sorted once into the classes that decide what happens
//! next ([`GraphError::class`]): Meta's error `code` decides (its HTTP status is nearly always
//! 400, rate limits included), and our own limits on what we read add a few.

use serde::Deserialize;

use super::MAX_ANSWER;

/// What to do about a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Try again later with backoff: transport errors, 5xx, codes 1, 2, 341, 368.
    Transient,
    /// Meta says slow down: codes 4, 17, 32, 613, 80001, 80005. Back off and stop calling.
    RateLimited,
    /// The token is expired or invalid (190): nothing works until a person sets a new one.
    Token,
    /// Missing permission (10, 200–299): a person must grant it.
    Permission,
    /// Will fail the same way again (100 and other client errors): set aside.
    Permanent,
}

impl ErrorClass {
    pub fn is_retried(self) -> bool {
        matches!(self, ErrorClass::Transient | ErrorClass::RateLimited)
    }
}

/// Meta's error object: `{"error":{"message","type","code","error_subcode","fbtrace_id"}}`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ApiError {
    #[serde(default)]
    pub message: String,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub code: Option<i64>,
    #[serde(default)]
    pub error_subcode: Option<i64>,
    #[serde(default)]
    pub fbtrace_id: Option<String>,
    #[serde(default)]
    pub is_transient: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum GraphError {
    /// Connection refused, timeout, reset… (message has no URL).
    Transport(String),
    /// Meta answered with its error JSON.
    Api { status: u16, error: ApiError },
    /// A non-2xx answer without Meta's error JSON (a proxy's 502 page, say).
    Http { status: u16 },
    /// A 2xx answer we could not read.
    Decode(String),
    /// A `paging.next` pointing outside the configured Graph URL; not followed, since it would
    /// carry our token elsewhere.
    ForeignNext,
    /// An answer longer than [`MAX_ANSWER`]; reading stopped there.
    TooLarge,
    /// A `paging.next` that leads back to a page this listing already read, after this many
    /// pages: followed, it would loop for ever.
    PagingLoop { pages: usize },
    /// A listing that still had a `paging.next` after this many pages (the most a sync reads
    /// of one listing).
    TooManyPages { pages: usize },
}

impl GraphError {
    pub fn class(&self) -> ErrorClass {
        match self {
            GraphError::Transport(_) => ErrorClass::Transient,
            GraphError::Http { status } if *status >= 500 => ErrorClass::Transient,
            // A proxy or Meta's edge saying "too many requests" without Meta's JSON.
            GraphError::Http { status: 429 } => ErrorClass::RateLimited,
            GraphError::Http { .. } => ErrorClass::Permanent,
            // A truncated or garbled 200 is most likely a proxy hiccup: worth another try.
            GraphError::Decode(_) => ErrorClass::Transient,
            GraphError::ForeignNext => ErrorClass::Permanent,
            // Most likely a proxy's error page or a hiccup: worth another try, later.
            GraphError::TooLarge => ErrorClass::Transient,
            // Reading it again would go the same way: the listing is set aside for this sync.
            GraphError::PagingLoop { .. } | GraphError::TooManyPages { .. } => {
                ErrorClass::Permanent
            }
            GraphError::Api { status, error } => match error.code {
                Some(1 | 2 | 341 | 368) => ErrorClass::Transient,
                Some(4 | 17 | 32 | 613 | 80001 | 80005) => ErrorClass::RateLimited,
                Some(190) => ErrorClass::Token,
                Some(10) | Some(200..=299) => ErrorClass::Permission,
                Some(100) => ErrorClass::Permanent,
                _ if error.is_transient == Some(true) || *status >= 500 => ErrorClass::Transient,
                _ => ErrorClass::Permanent,
            },
        }
    }

    pub fn code(&self) -> Option<i64> {
        match self {
            GraphError::Api { error, .. } => error.code,
            _ => None,
        }
    }
}

impl std::fmt::Display for GraphError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GraphError::Transport(m) => write!(f, "Graph unreachable: {m}"),
            GraphError::Api { status, error } => {
                write!(f, "Graph error")?;
                if let Some(c) = error.code {
                    write!(f, " code {c}")?;
                }
                if let Some(s) = error.error_subcode {
                    write!(f, "/{s}")?;
                }
                write!(f, " (HTTP {status}): {}", error.message)?;
                if let Some(t) = &error.fbtrace_id {
                    write!(f, " [fbtrace_id {t}]")?;
                }
                Ok(())
            }
            GraphError::Http { status } => write!(f, "Graph answered HTTP {status}"),
            GraphError::Decode(m) => write!(f, "Graph answer unreadable: {m}"),
            GraphError::ForeignNext => write!(f, "Graph paging.next points outside META_GRAPH_URL"),
            GraphError::TooLarge => write!(
                f,
                "Graph answer larger than {} MiB; stopped reading it",
                MAX_ANSWER / (1024 * 1024)
            ),
            GraphError::PagingLoop { pages } => write!(
                f,
                "Graph's paging.next led back to a page already read, after {pages} pages; \
                 stopped reading this listing"
            ),
            GraphError::TooManyPages { pages } => write!(
                f,
                "Graph's listing went on past {pages} pages; stopped reading it"
            ),
        }
    }
}

impl std::error::Error for GraphError {}
