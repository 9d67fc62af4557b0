//! Dashboard sessions: random 256-bit values of which only a SHA-256 is kept (here, to check
//! without a query, and in the store, so sessions survive a restart), ended by logout. A copy
//! of the database logs nobody in.
//!
//! With one process (SQLite) the map here mirrors the table and is the whole truth. With
//! several instances (PostgreSQL) a session may have been made or ended on another one, so
//! the map is a short read cache: an unknown or stale entry is read from the database, and a
//! logout anywhere evicts the session here at once (the store hears it through LISTEN).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::config::random_token;
use crate::model::now_ms;
use crate::store::{Store, StoreError, ALL_SESSIONS};

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "leadstream_session";
/// How long a session lasts without logging in again.
pub const SESSION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// With several instances: how long a session read from the database is trusted before it
/// is read again (a logout elsewhere evicts it sooner; this covers a missed notification).
const SHARED_CACHE_TTL: Duration = Duration::from_secs(5);

fn hash(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// A known session: its expiry (unix ms) and when that was read from the database.
#[derive(Clone, Copy)]
struct Known {
    expires_ms: i64,
    read_at: Instant,
}

pub struct Sessions {
    store: Store,
    /// token hash → what is known of it; the whole table with SQLite, a cache with PostgreSQL.
    live: Mutex<HashMap<String, Known>>,
    shared: bool,
}

impl Sessions {
    /// Loads the unexpired sessions and forgets the expired ones; with several instances,
    /// also starts evicting the sessions other instances end.
    pub async fn load(store: Store) -> Result<Arc<Sessions>, StoreError> {
        let now = now_ms();
        let read_at = Instant::now();
        let rows = store
            .load_sessions(now)
            .await?
            .into_iter()
            .map(|(h, expires_ms)| {
                (
                    h,
                    Known {
                        expires_ms,
                        read_at,
                    },
                )
            })
            .collect();
        let sessions = Arc::new(Sessions {
            shared: store.is_shared(),
            store,
            live: Mutex::new(rows),
        });
        if let Some(ends) = sessions.store.session_ends() {
            tokio::spawn(evict_ended(Arc::downgrade(&sessions), ends));
        }
        Ok(sessions)
    }

    /// Creates a session; returns the cookie value.
    pub async fn create(&self) -> Result<String, StoreError> {
        let token = random_token(32);
        let h = hash(&token);
        let expires_ms = now_ms() + SESSION_TTL.as_millis() as i64;
        self.store.add_session(h.clone(), expires_ms).await?;
        self.live.lock().expect("sessions lock").insert(
            h,
            Known {
                expires_ms,
                read_at: Instant::now(),
            },
        );
        Ok(token)
    }

    /// True for a known, unexpired session cookie. Looking up the hash of the presented value
    /// in a map does not reveal anything about other sessions' values.
    pub async fn is_valid(&self, cookie: &str) -> bool {
        // Our cookies are 64 hex digits: anything else is not worth a database read.
        if cookie.is_empty() || cookie.len() > 128 || !cookie.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return false;
        }
        let h = hash(cookie);
        let known = self.live.lock().expect("sessions lock").get(&h).copied();
        match known {
            Some(k) if !self.shared || k.read_at.elapsed() < SHARED_CACHE_TTL => {
                k.expires_ms > now_ms()
            }
            _ if !self.shared => false,
            // Made on another instance, or read too long ago: ask the database.
            _ => match self.store.session_expiry(h.clone()).await {
                Ok(Some(expires_ms)) => {
                    let read_at = Instant::now();
                    self.live.lock().expect("sessions lock").insert(
                        h,
                        Known {
                            expires_ms,
                            read_at,
                        },
                    );
                    expires_ms > now_ms()
                }
                Ok(None) => {
                    self.live.lock().expect("sessions lock").remove(&h);
                    false
                }
                // No database: a session known before stands (no logout can have happened
                // meanwhile, it needs the database too), an unknown one is refused.
                Err(e) => {
                    log::warn!("cannot check a session: {e}");
                    known.is_some_and(|k| k.expires_ms > now_ms())
                }
            },
        }
    }

    pub async fn end(&self, cookie: &str) -> Result<(), StoreError> {
        let h = hash(cookie);
        self.live.lock().expect("sessions lock").remove(&h);
        self.store.remove_session(h).await
    }

    /// Forgets a session another instance ended (or every session, after notifications may
    /// have been missed: they are read again on their next use).
    ///
    /// This is where a stream of that session would be told to end too, once streams carry
    /// the session they were opened with.
    fn ended_elsewhere(&self, token_hash: &str) {
        let mut live = self.live.lock().expect("sessions lock");
        if token_hash == ALL_SESSIONS {
            live.clear();
        } else {
            live.remove(token_hash);
        }
    }
}

/// Evicts the sessions other instances end, for as long as `sessions` lives.
async fn evict_ended(sessions: Weak<Sessions>, mut ends: tokio::sync::broadcast::Receiver<String>) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let ended = match ends.recv().await {
            Ok(hash) => hash,
            // Missed some: forget them all, they are read again when used.
            Err(RecvError::Lagged(_)) => ALL_SESSIONS.to_string(),
            Err(RecvError::Closed) => return,
        };
        let Some(sessions) = sessions.upgrade() else {
            return;
        };
        sessions.ended_elsewhere(&ended);
    }
}
