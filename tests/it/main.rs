//! Integration tests: the real server on a random port, a real SQLite file, a fake Graph.
//! One test binary (faster to link than one per file); one module per area.

// Not every test module uses every helper.
#[allow(dead_code)]
mod fake_graph;
#[allow(dead_code)]
mod helpers;

mod demo;
mod ingest;
mod reports;
mod security;
mod server;
mod stream;
mod sync;
