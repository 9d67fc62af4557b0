//! Dashboard sessions: random 256-bit values of which only a SHA-256 is kept (here, to check
//! without a query, and in the store, so sessions survive a restart), ended by logout. A copy
//! of the database logs nobody in.
//!
//! A session belongs to a [`Principal`] and remembers the [`Credential`] that made it: today
//! the dashboard token, which acts as the principal `admin`. Whatever credential made a session
//! can end it: when the token changes, [`Sessions::end_made_with_other`] ends every session
//! the old token made (at start-up, so a changed `DASHBOARD_TOKEN` logs everyone out). A
//! user's password fits the same shape: its own kind, its own fingerprint.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::config::random_token;
use crate::model::now_ms;
use crate::store::{Store, StoreError, StoredSession};

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "leadstream_session";
/// How long a session lasts without logging in again.
pub const SESSION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

fn hash(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// Who a session (or a request) acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal(String);

impl Principal {
    /// The dashboard token acts as the administrator `admin`.
    pub fn admin() -> Principal {
        Principal("admin".into())
    }

    pub fn name(&self) -> &str {
        &self.0
    }
}

/// The credential a session was made with: its kind (`token`) and a fingerprint of the secret,
/// an HMAC-SHA256 keyed with a random salt kept in the database. The fingerprint tells one
/// token from another without storing the token; a copy of the database still lets a token be
/// tested offline at SHA-256 speed, which is why the token should be long and random.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    kind: String,
    fingerprint: String,
}

impl Credential {
    /// The dashboard token's credential, fingerprinted with `salt`.
    pub fn token(secret: &str, salt: &str) -> Credential {
        let mut mac = Hmac::<Sha256>::new_from_slice(salt.as_bytes())
            .expect("HMAC accepts keys of any length");
        mac.update(secret.as_bytes());
        Credential {
            kind: "token".into(),
            fingerprint: hex::encode(mac.finalize().into_bytes()),
        }
    }
}

/// What the gate knows of a live session.
struct Live {
    principal: Principal,
    credential: Credential,
    expires_ms: i64,
}

pub struct Sessions {
    store: Store,
    /// Cookie hash → the session; a mirror of the table so checks need no query.
    live: Mutex<HashMap<String, Live>>,
}

impl Sessions {
    /// Loads the unexpired sessions and forgets the expired ones.
    pub async fn load(store: Store) -> Result<Sessions, StoreError> {
        let rows = store.load_sessions(now_ms()).await?;
        let live = rows
            .into_iter()
            .map(|(h, s)| {
                let live = Live {
                    principal: Principal(s.principal),
                    credential: Credential {
                        kind: s.credential_kind,
                        fingerprint: s.credential_fp,
                    },
                    expires_ms: s.expires_ms,
                };
                (h, live)
            })
            .collect();
        Ok(Sessions {
            store,
            live: Mutex::new(live),
        })
    }

    /// Ends every session made with a credential of the same kind as `current` that is not
    /// `current` (the token changed since they were made); returns how many ended.
    pub async fn end_made_with_other(&self, current: &Credential) -> Result<usize, StoreError> {
        // Out of the mirror first: from here on they open nothing, even if the store is slow.
        self.live.lock().expect("sessions lock").retain(|_, s| {
            s.credential.kind != current.kind || s.credential.fingerprint == current.fingerprint
        });
        self.store
            .remove_sessions_made_with_other(current.kind.clone(), current.fingerprint.clone())
            .await
    }

    /// Creates a session for `principal`, made with `credential`; returns the cookie value.
    pub async fn create(
        &self,
        principal: Principal,
        credential: Credential,
    ) -> Result<String, StoreError> {
        let token = random_token(32);
        let h = hash(&token);
        let expires_ms = now_ms() + SESSION_TTL.as_millis() as i64;
        let stored = StoredSession {
            principal: principal.0.clone(),
            credential_kind: credential.kind.clone(),
            credential_fp: credential.fingerprint.clone(),
            expires_ms,
        };
        self.store.add_session(h.clone(), stored).await?;
        self.live.lock().expect("sessions lock").insert(
            h,
            Live {
                principal,
                credential,
                expires_ms,
            },
        );
        Ok(token)
    }

    /// The principal of a known, unexpired session cookie. Looking up the hash of the
    /// presented value in a map does not reveal anything about other sessions' values.
    pub fn principal(&self, cookie: &str) -> Option<Principal> {
        if cookie.is_empty() || cookie.len() > 128 {
            return None;
        }
        let h = hash(cookie);
        let live = self.live.lock().expect("sessions lock");
        live.get(&h)
            .filter(|s| s.expires_ms > now_ms())
            .map(|s| s.principal.clone())
    }

    /// True for a known, unexpired session cookie.
    pub fn is_valid(&self, cookie: &str) -> bool {
        self.principal(cookie).is_some()
    }

    pub async fn end(&self, cookie: &str) -> Result<(), StoreError> {
        let h = hash(cookie);
        self.live.lock().expect("sessions lock").remove(&h);
        self.store.remove_session(h).await
    }
}
