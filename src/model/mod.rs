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
mod sync;
mod time;

pub use filter::{parse_time_param, LeadFilter, LeadQuery, SortKey, DEFAULT_LIMIT, MAX_LIMIT};
pub use ids::is_meta_id;
pub use lead::{flatten_fields, FieldData, Lead, LeadSource, LeadgenChange, NewLead};
pub use sync::{LastSync, SyncReport};
pub use time::{format_millis, format_seconds, now_ms, parse_graph_time};
