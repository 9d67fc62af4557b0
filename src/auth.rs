//! Who may read leads: the dashboard token (as `Authorization: Bearer …`) or a session cookie
//! obtained by trading the token at `/login`.
//!
//! Sessions are random 256-bit values; only their SHA-256 is stored (in memory and in the
//! `sessions` table), so they survive a restart, logout ends them, and a copy of the database
//! logs nobody in. Every comparison with a secret is constant time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{random_token, Secret};
use crate::model::now_ms;
use crate::store::{Store, StoreError};

pub const SESSION_COOKIE: &str = "leadstream_session";
/// How long a session lasts without logging in again.
pub const SESSION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Constant-time equality of two secrets. Both are hashed first, so the comparison runs over
/// 32 bytes whatever was sent: not even the token's length shows in the timing (a plain
/// `ct_eq` of the strings returns at once when the lengths differ).
pub fn secret_eq(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes())
        .ct_eq(&Sha256::digest(b.as_bytes()))
        .into()
}

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

/// The credentials a request carried.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Credentials {
    pub authorization: Option<String>,
    pub session: Option<String>,
}

/// Checks a request's credentials against the token and the sessions.
pub fn is_authorised(creds: &Credentials, token: &Secret, sessions: &Sessions) -> bool {
    if let Some(t) = creds.authorization.as_deref().and_then(bearer_token) {
        return secret_eq(t, token.expose());
    }
    creds
        .session
        .as_deref()
        .is_some_and(|s| sessions.is_valid(s))
}

/// The token of an `Authorization: Bearer <token>` header. The scheme is case-insensitive
/// (RFC 9110); a header with another scheme, or none, is no credential, so a session cookie
/// sent along may still count.
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Failed logins allowed per address per window, and the window.
const LOGIN_FAILURES: u32 = 10;
const LOGIN_WINDOW: Duration = Duration::from_secs(60);

/// Slows down guessing: after 10 failed logins in a minute from one address, further tries
/// from it are refused until the minute is over. IPv6 addresses count per /64, the block one
/// host is usually given: otherwise a single machine could pick a fresh address per guess.
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// The address a failure is counted against: IPv4 as is (also when mapped into IPv6), IPv6
/// by its /64 network.
fn limiter_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

impl LoginLimiter {
    pub fn allowed(&self, ip: Option<IpAddr>) -> bool {
        let Some(ip) = ip.map(limiter_key) else {
            return true;
        };
        let map = self.failures.lock().expect("limiter lock");
        match map.get(&ip) {
            Some((start, n)) if start.elapsed() < LOGIN_WINDOW => *n < LOGIN_FAILURES,
            _ => true,
        }
    }

    pub fn failed(&self, ip: Option<IpAddr>) {
        let Some(ip) = ip.map(limiter_key) else {
            return;
        };
        let mut map = self.failures.lock().expect("limiter lock");
        // Bounded memory under a distributed attack: forget stale entries when the map grows.
        if map.len() > 10_000 {
            map.retain(|_, (start, _)| start.elapsed() < LOGIN_WINDOW);
        }
        let entry = map.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= LOGIN_WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }

    pub fn succeeded(&self, ip: Option<IpAddr>) {
        if let Some(ip) = ip.map(limiter_key) {
            self.failures.lock().expect("limiter lock").remove(&ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_blocks_after_ten_failures() {
        let l = LoginLimiter::default();
        let ip = Some("127.0.0.1".parse().unwrap());
        for _ in 0..LOGIN_FAILURES {
            assert!(l.allowed(ip));
            l.failed(ip);
        }
        assert!(!l.allowed(ip));
        assert!(l.allowed(Some("127.0.0.2".parse().unwrap())));
    }

    #[test]
    fn ipv6_addresses_of_one_64_share_a_limit_and_mapped_ipv4_is_ipv4() {
        let l = LoginLimiter::default();
        for i in 0..LOGIN_FAILURES {
            // A fresh address for every guess, all in 2001:db8:1:2::/64.
            l.failed(Some(format!("2001:db8:1:2::{:x}", i + 1).parse().unwrap()));
        }
        assert!(!l.allowed(Some("2001:db8:1:2:ffff::1".parse().unwrap())));
        assert!(l.allowed(Some("2001:db8:1:3::1".parse().unwrap())));

        let l = LoginLimiter::default();
        for _ in 0..LOGIN_FAILURES {
            l.failed(Some("::ffff:192.0.2.7".parse().unwrap()));
        }
        assert!(!l.allowed(Some("192.0.2.7".parse().unwrap())));
        assert!(l.allowed(Some("192.0.2.8".parse().unwrap())));
        l.succeeded(Some("192.0.2.7".parse().unwrap()));
        assert!(l.allowed(Some("::ffff:192.0.2.7".parse().unwrap())));
    }

    #[test]
    fn bearer_must_match_exactly() {
        assert!(secret_eq("abc", "abc"));
        assert!(secret_eq("", ""));
        assert!(!secret_eq("abc", "ab"));
        assert!(!secret_eq("abc", "abd"));
        assert!(!secret_eq("abc", "abc\0"));
        assert!(!secret_eq("", "a"));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_other_schemes_are_no_credential() {
        for (header, token) in [
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("BEARER   abc  ", Some("abc")),
            ("Bearer ", Some("")),
            ("Bearer", None),
            ("Basic abc", None),
            ("abc", None),
            ("Bearerabc", None),
        ] {
            assert_eq!(bearer_token(header), token, "{header:?}");
        }
    }
}
