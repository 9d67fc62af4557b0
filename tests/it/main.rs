//! Integration tests: the real server on a random port, a real SQLite file, a fake Graph.
//! One test binary (faster to link than one per file); one module per topic, and the helpers
//! they share in one place.

// Not every test module uses every helper.
#[allow(dead_code)]
mod helpers;

mod backup;
mod crash;
mod demo;
mod forwarding;
mod health;
mod ingest;
mod instances;
mod limits;
mod listing;
mod meta_bounds;
mod operations;
mod reports;
mod retries;
mod security;
mod server;
mod service;
mod settings;
mod stream;
mod sync;
mod team;
