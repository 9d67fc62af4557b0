//! The typed values the rest of the crate passes around: a saved [`Lead`], one answer
//! ([`FieldData`]), the filter every listing and export shares ([`LeadFilter`]), and what a
//! sync did ([`SyncReport`]), and what forwarding sends where ([`forward`]).
//!
//! Everything here is already validated; parsing Meta's JSON into these happens at the edge
//! (`ingest::payload`, `meta::graph`) and parsing query strings happens in
//! [`LeadQuery::parse`].

mod filter;
pub mod forward;
mod ids;
mod lead;
mod speed;
mod sync;
mod team;
mod time;

pub use filter::{
    parse_time_param, LeadFilter, LeadQuery, OwnerFilter, SortKey, DEFAULT_LIMIT, MAX_LIMIT,
};
pub use ids::is_meta_id;
pub use lead::{flatten_fields, FieldData, Lead, LeadSource, LeadgenChange, NewLead};
pub use speed::{FormSpeed, Speed, SpeedBuilder, SpeedWindow, Waiting, SPEED_WINDOWS};
pub use sync::{LastSync, SyncReport};
pub use team::{
    check_password, check_user_name, Changed, Edit, Event, EventKind, HistoryEntry, LeadChange,
    LeadDetail, LeadStatus, Note, Role, User, MAX_NOTE_CHARS, TOKEN_USER,
};
pub use time::{format_millis, format_seconds, format_unix_ms, now_ms, parse_graph_time};
