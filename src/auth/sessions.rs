//! Dashboard sessions: random 256-bit values of which only a SHA-256 is kept (here, to check
//! without a query, and in the store, so sessions survive a restart), ended by logout or by
//! expiry. A copy of the database logs nobody in.
//!
//! Whatever a session opened ends with it: each live session has a [`SessionEnd`] flag that
//! the requests it authorised may keep (an open stream does), and the [`EndedSink`] hears when
//! any flag was raised, so a stream that waits for leads is woken to look at its own.
//!
//! A session belongs to a [`Principal`] and remembers the [`Credential`] that made it, so the
//! credential can end it: [`Sessions::end_made_with_other`] ends every session the previous
//! dashboard token made (at start-up: a changed `DASHBOARD_TOKEN` logs everyone out).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use super::credential::{Credential, Principal};
use crate::config::random_token;
use crate::model::now_ms;
use crate::shutdown::Shutdown;
use crate::store::{Store, StoreError, StoredSession};

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "leadstream_session";

fn hash(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// Raised once when its session ends (logout, expiry). Cheap to clone and to read.
#[derive(Clone, Debug, Default)]
pub struct SessionEnd(Arc<AtomicBool>);

impl SessionEnd {
    pub fn is_ended(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    pub(crate) fn raise(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Hears that one or more sessions have ended; whoever holds their [`SessionEnd`] may look.
pub trait EndedSink: Send + Sync {
    fn sessions_ended(&self);
}

struct Live {
    /// unix ms
    expires: i64,
    end: SessionEnd,
    principal: Principal,
    credential: Credential,
}

/// What a live session cookie opens: for whom, and the flag raised when the session ends.
#[derive(Debug, Clone)]
pub struct Admitted {
    pub principal: Principal,
    pub end: SessionEnd,
}

pub struct Sessions {
    store: Store,
    ttl: Duration,
    /// token hash → the live session; a mirror of the table so checks need no query.
    live: Mutex<HashMap<String, Live>>,
    sink: Arc<dyn EndedSink>,
    /// A session was added: the sweeper looks at the earliest expiry again.
    added: Notify,
}

impl Sessions {
    /// Loads the unexpired sessions and forgets the expired ones. New sessions last `ttl`.
    pub async fn load(
        store: Store,
        ttl: Duration,
        sink: Arc<dyn EndedSink>,
    ) -> Result<Sessions, StoreError> {
        let now = now_ms();
        let rows = store.load_sessions(now).await?;
        let live = rows
            .into_iter()
            .map(|(h, s)| {
                let live = Live {
                    expires: s.expires_ms,
                    end: SessionEnd::default(),
                    principal: Principal::named(s.principal),
                    credential: Credential {
                        kind: s.credential_kind,
                        fingerprint: s.credential_fp,
                    },
                };
                (h, live)
            })
            .collect();
        Ok(Sessions {
            store,
            ttl,
            live: Mutex::new(live),
            sink,
            added: Notify::new(),
        })
    }

    fn live(&self) -> MutexGuard<'_, HashMap<String, Live>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How long a new session lasts (the cookie's `Max-Age`).
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Creates a session for `principal`, made with `credential`; returns the cookie value.
    pub async fn create(
        &self,
        principal: Principal,
        credential: Credential,
    ) -> Result<String, StoreError> {
        let token = random_token(32);
        let h = hash(&token);
        let expires = now_ms() + self.ttl.as_millis() as i64;
        let stored = StoredSession {
            principal: principal.name().to_string(),
            credential_kind: credential.kind.clone(),
            credential_fp: credential.fingerprint.clone(),
            expires_ms: expires,
        };
        self.store.add_session(h.clone(), stored).await?;
        let live = Live {
            expires,
            end: SessionEnd::default(),
            principal,
            credential,
        };
        self.live().insert(h, live);
        self.added.notify_one();
        Ok(token)
    }

    /// What a known, unexpired session cookie opens. Looking up the hash of the presented
    /// value in a map does not reveal anything about other sessions' values.
    pub fn check(&self, cookie: &str) -> Option<Admitted> {
        if cookie.is_empty() || cookie.len() > 128 {
            return None;
        }
        let h = hash(cookie);
        let live = self.live();
        live.get(&h)
            .filter(|s| s.expires > now_ms())
            .map(|s| Admitted {
                principal: s.principal.clone(),
                end: s.end.clone(),
            })
    }

    /// Ends every session made with a credential `current` replaces (of its kind, but not
    /// it: the token changed since they were made), here, in the database and for whatever
    /// they opened; returns how many ended.
    pub async fn end_made_with_other(&self, current: &Credential) -> Result<usize, StoreError> {
        // Out of the mirror first: from here on they open nothing, even if the store is slow.
        let mut ended = 0;
        self.live().retain(|_, s| {
            let stale = current.replaces(&s.credential);
            if stale {
                s.end.raise();
                ended += 1;
            }
            !stale
        });
        if ended > 0 {
            self.sink.sessions_ended();
        }
        self.store
            .remove_sessions_made_with_other(current.kind.clone(), current.fingerprint.clone())
            .await
    }

    /// Logout: the session ends here, in the database, and for whatever it opened.
    pub async fn end(&self, cookie: &str) -> Result<(), StoreError> {
        let h = hash(cookie);
        let ended = self.live().remove(&h);
        if let Some(s) = ended {
            s.end.raise();
            self.sink.sessions_ended();
        }
        self.store.remove_session(h).await
    }

    /// Ends every session that has expired by now; returns the earliest expiry left.
    fn end_expired(&self) -> Option<i64> {
        let now = now_ms();
        let mut ended = 0;
        let mut live = self.live();
        live.retain(|_, s| {
            let keep = s.expires > now;
            if !keep {
                s.end.raise();
                ended += 1;
            }
            keep
        });
        let next = live.values().map(|s| s.expires).min();
        drop(live);
        if ended > 0 {
            log::info!("{ended} dashboard session(s) expired");
            self.sink.sessions_ended();
        }
        next
    }

    /// Ends sessions as they expire, until shutdown. Checks already refuse an expired cookie;
    /// this is for what a session opened and keeps open (a stream), which is not asked again.
    pub async fn sweep(self: Arc<Self>, stop: Shutdown) {
        loop {
            let wait = match self.end_expired() {
                // A little after the expiry: `end_expired` then finds it over.
                Some(at) => Duration::from_millis((at - now_ms()).max(0) as u64 + 5),
                // Nothing to expire until a session is made.
                None => Duration::MAX,
            };
            let added = self.added.notified();
            tokio::select! {
                _ = tokio::time::sleep(wait.min(Duration::from_secs(24 * 3600))) => {}
                // Sessions live `ttl` from their creation, so a new one never expires before
                // those already here, but the first one after none needs a wake-up.
                _ = added => {}
                _ = stop.started() => return,
            }
        }
    }
}
