//! Everything that asks Meta: the Graph client, the catch-up sync, and what the process
//! knows of Meta's health (token problems, the rate-limit pause). Webhooks, which Meta sends
//! us, are `ingest`'s.

pub mod graph;
pub mod status;
pub mod sync;
