//! A small pool of read-only connections, used on the blocking pool so rusqlite never runs
//! on the async runtime.

use std::path::PathBuf;
use std::sync::Mutex;

use rusqlite::Connection;

use super::schema::open_reader;

/// Idle reader connections kept open; more are opened under load and closed afterwards.
const IDLE_READERS: usize = 8;

pub(super) struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReaderPool {
    pub fn new(path: PathBuf) -> ReaderPool {
        ReaderPool {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub fn get(&self) -> rusqlite::Result<Connection> {
        if let Some(c) = self.idle.lock().expect("pool lock").pop() {
            return Ok(c);
        }
        open_reader(&self.path)
    }

    pub fn put(&self, c: Connection) {
        let mut idle = self.idle.lock().expect("pool lock");
        if idle.len() < IDLE_READERS {
            idle.push(c);
        }
    }
}
