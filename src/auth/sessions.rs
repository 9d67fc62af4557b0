//! Dashboard sessions: random 256-bit values of which only a SHA-256 is kept (here, to check
//! without a query, and in the store, so sessions survive a restart), ended by logout. A copy
//! of the database logs nobody in.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::config::random_token;
use crate::model::now_ms;
use crate::store::{Store, StoreError};

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "leadstream_session";
/// How long a session lasts without logging in again.
pub const SESSION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

fn hash(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

pub struct Sessions {
    store: Store,
    /// token hash → expiry (unix ms); a mirror of the table so checks need no query.
    live: Mutex<HashMap<String, i64>>,
}

impl Sessions {
    /// Loads the unexpired sessions and forgets the expired ones.
    pub async fn load(store: Store) -> Result<Sessions, StoreError> {
        let now = now_ms();
        let rows = store.load_sessions(now).await?;
        Ok(Sessions {
            store,
            live: Mutex::new(rows),
        })
    }

    /// Creates a session; returns the cookie value.
    pub async fn create(&self) -> Result<String, StoreError> {
        let token = random_token(32);
        let h = hash(&token);
        let expires = now_ms() + SESSION_TTL.as_millis() as i64;
        self.store.add_session(h.clone(), expires).await?;
        self.live.lock().expect("sessions lock").insert(h, expires);
        Ok(token)
    }

    /// True for a known, unexpired session cookie. Looking up the hash of the presented value
    /// in a map does not reveal anything about other sessions' values.
    pub fn is_valid(&self, cookie: &str) -> bool {
        if cookie.is_empty() || cookie.len() > 128 {
            return false;
        }
        let h = hash(cookie);
        let live = self.live.lock().expect("sessions lock");
        live.get(&h).is_some_and(|&exp| exp > now_ms())
    }

    pub async fn end(&self, cookie: &str) -> Result<(), StoreError> {
        let h = hash(cookie);
        self.live.lock().expect("sessions lock").remove(&h);
        self.store.remove_session(h).await
    }
}
