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
//!
//! With one process (SQLite) the map here mirrors the table and is the whole truth. With
//! several instances (PostgreSQL) a session may be made or ended on another one, so the map is
//! a short read cache: an unknown or stale entry is read from the database, and a logout on
//! any instance ends the session here at once, streams included (the store hears it through
//! LISTEN and passes it on).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use super::credential::{Credential, Principal};
use crate::config::random_token;
use crate::model::now_ms;
use crate::shutdown::Shutdown;
use crate::store::{Store, StoreError, StoredSession, ALL_SESSIONS};

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "leadstream_session";
/// With several instances: how long a session read from the database is trusted before it is
/// read again (a logout elsewhere ends it sooner; this covers a missed notification).
const SHARED_CACHE_TTL: Duration = Duration::from_secs(5);

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
    /// When this was read from (or written to) the database.
    read_at: Instant,
}

impl Live {
    fn stored(s: StoredSession) -> Live {
        Live {
            expires: s.expires_ms,
            end: SessionEnd::default(),
            principal: Principal::named(s.principal),
            credential: Credential {
                kind: s.credential_kind,
                fingerprint: s.credential_fp,
            },
            read_at: Instant::now(),
        }
    }

    fn admitted(&self) -> Option<Admitted> {
        (self.expires > now_ms()).then(|| Admitted {
            principal: self.principal.clone(),
            end: self.end.clone(),
        })
    }
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
    /// Other instances may make and end sessions too (PostgreSQL).
    shared: bool,
}

impl Sessions {
    /// Loads the unexpired sessions and forgets the expired ones. New sessions last `ttl`.
    /// With several instances, also starts hearing of the sessions others end.
    pub async fn load(
        store: Store,
        ttl: Duration,
        sink: Arc<dyn EndedSink>,
    ) -> Result<Arc<Sessions>, StoreError> {
        let now = now_ms();
        let rows = store.load_sessions(now).await?;
        let live = rows
            .into_iter()
            .map(|(h, s)| (h, Live::stored(s)))
            .collect();
        let sessions = Arc::new(Sessions {
            shared: store.is_shared(),
            store,
            ttl,
            live: Mutex::new(live),
            sink,
            added: Notify::new(),
        });
        if let Some(ends) = sessions.store.session_ends() {
            tokio::spawn(hear_ends(Arc::downgrade(&sessions), ends));
        }
        Ok(sessions)
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
            read_at: Instant::now(),
        };
        self.live().insert(h, live);
        self.added.notify_one();
        Ok(token)
    }

    /// What a known, unexpired session cookie opens. Looking up the hash of the presented
    /// value in a map does not reveal anything about other sessions' values.
    pub async fn check(&self, cookie: &str) -> Option<Admitted> {
        if cookie.is_empty() || cookie.len() > 128 {
            return None;
        }
        let h = hash(cookie);
        {
            let live = self.live();
            match live.get(&h) {
                Some(s) if !self.shared || s.read_at.elapsed() < SHARED_CACHE_TTL => {
                    return s.admitted();
                }
                _ if !self.shared => return None,
                _ => {}
            }
        }
        // Made on another instance, or read too long ago: ask the database. Our cookies are
        // hex: anything else is not worth a query.
        if !cookie.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        match self.store.session(h.clone()).await {
            Ok(Some(stored)) => {
                let mut live = self.live();
                let known = live.contains_key(&h);
                let s = live
                    .entry(h)
                    .or_insert_with(|| Live::stored(stored.clone()));
                s.expires = stored.expires_ms;
                s.read_at = Instant::now();
                let admitted = s.admitted();
                drop(live);
                if !known {
                    self.added.notify_one();
                }
                admitted
            }
            Ok(None) => {
                // Ended elsewhere, and the word was missed.
                self.ended_elsewhere(&h);
                None
            }
            // No database: a session known before stands (no logout can have happened
            // meanwhile: it needs the database too); an unknown one is refused.
            Err(e) => {
                log::warn!("cannot check a session: {e}");
                self.live().get(&h).and_then(Live::admitted)
            }
        }
    }

    /// A session another instance ended: it ends here too, and what it opened.
    fn ended_elsewhere(&self, token_hash: &str) {
        let ended = self.live().remove(token_hash);
        if let Some(s) = ended {
            s.end.raise();
            self.sink.sessions_ended();
        }
    }

    /// After ends may have gone by unheard: the sessions known here that are gone from the
    /// database end.
    async fn recheck_all(&self) {
        let Ok(rows) = self.store.load_sessions(now_ms()).await else {
            return;
        };
        let gone: Vec<String> = self
            .live()
            .keys()
            .filter(|h| !rows.contains_key(*h))
            .cloned()
            .collect();
        for h in gone {
            self.ended_elsewhere(&h);
        }
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

/// Ends here the sessions other instances end, for as long as `sessions` lives.
async fn hear_ends(sessions: Weak<Sessions>, mut ends: tokio::sync::broadcast::Receiver<String>) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let ended = match ends.recv().await {
            Ok(hash) => hash,
            // Missed some: look at them all.
            Err(RecvError::Lagged(_)) => ALL_SESSIONS.to_string(),
            Err(RecvError::Closed) => return,
        };
        let Some(sessions) = sessions.upgrade() else {
            return;
        };
        if ended == ALL_SESSIONS {
            sessions.recheck_all().await;
        } else {
            sessions.ended_elsewhere(&ended);
        }
    }
}
