//! Everything the integration tests share: the in-process server ([`TestApp`]), the fake
//! Graph, an SSE reader, raw TCP, request bodies, a look into the database (SQLite or
//! PostgreSQL, [`pg`]), and the real binary as a child process.

pub mod app;
pub mod bodies;
pub mod db;
pub mod disk;
pub mod fake_graph;
pub mod logs;
pub mod pg;
pub mod process;
pub mod raw;
pub mod receiver;
pub mod smtp;
pub mod sse;

pub use app::*;
pub use bodies::*;
pub use fake_graph::{Failure, FakeGraph};
pub use sse::SseClient;
