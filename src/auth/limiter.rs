//! Slows down guessing the dashboard token, at the login form and as a bearer header alike:
//! both guess the same secret, so they share one count per client address.
//!
//! - After `limit` failed attempts within a window from one address, every further attempt
//!   from it is refused (429) for the rest of that window, *without looking at the token*: a
//!   limit that still let the right token through would tell a guesser when it had won. So the
//!   right token from a limited address waits too, until the window ends (a minute by
//!   default). Other addresses and sessions made before are not affected, so a stranger can
//!   lock out only the address it guesses from (behind a reverse proxy that is the proxy's,
//!   unless the proxy's header is trusted: see [`ProxyTrust`](super::ProxyTrust)).
//! - IPv6 addresses count per /64, the block one host is usually given: otherwise a single
//!   machine could pick a fresh address per guess.
//! - The log gets at most one line per address per window, written when the window ends,
//!   with the counts: a guesser cannot flood the log either.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed attempts allowed per address per window, and the window (docs/settings.md).
pub const GUESS_LIMIT: u32 = 10;
pub const GUESS_WINDOW: Duration = Duration::from_secs(60);

/// Addresses tracked at once. Beyond this (a very wide attack) new addresses are not limited
/// until windows end: memory stays bounded, and nobody else is locked out by the attack.
const MAX_TRACKED: usize = 10_000;

/// Which door a guess came through, for the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// The login form, or the `?token=` of the start-up URL.
    Login,
    /// An `Authorization: Bearer` header.
    Bearer,
}

pub struct GuessLimiter {
    limit: u32,
    window: Duration,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

/// One address's window: since when, and what happened in it.
struct Bucket {
    start: Instant,
    /// Failures that count towards the limit (a successful login forgets them).
    failures: u32,
    /// For the log line: failed logins, failed bearer tokens, attempts refused as limited.
    logins: u32,
    bearers: u32,
    refused: u32,
}

impl Default for GuessLimiter {
    fn default() -> Self {
        GuessLimiter::new(GUESS_LIMIT, GUESS_WINDOW)
    }
}

/// The address a client is counted by (a guess here, a connection in `http::limits`): IPv4
/// as is (also when mapped into IPv6), IPv6 by its /64 network, the block one host is
/// usually given.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

impl GuessLimiter {
    pub fn new(limit: u32, window: Duration) -> GuessLimiter {
        GuessLimiter {
            limit,
            window,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// `None` when an attempt from `ip` may be checked; otherwise how long until it may (the
    /// attempt is then counted as refused). An unknown address (no peer) is never limited.
    pub fn admit(&self, ip: Option<IpAddr>) -> Option<Duration> {
        let ip = client_key(ip?);
        let mut buckets = self.buckets.lock().expect("limiter lock");
        let bucket = buckets.get_mut(&ip)?;
        let age = bucket.start.elapsed();
        if age >= self.window || bucket.failures < self.limit {
            return None;
        }
        bucket.refused += 1;
        Some(self.window - age)
    }

    /// Like [`GuessLimiter::admit`], without counting a refusal: for a caller that hands a
    /// refused request on to one that admits it.
    pub fn is_limited(&self, ip: Option<IpAddr>) -> bool {
        let Some(ip) = ip.map(client_key) else {
            return false;
        };
        let buckets = self.buckets.lock().expect("limiter lock");
        buckets
            .get(&ip)
            .is_some_and(|b| b.start.elapsed() < self.window && b.failures >= self.limit)
    }

    /// A wrong token came from `ip` through `door`. Returns the log lines of windows that
    /// ended, when room had to be made for this one.
    pub fn failed(&self, ip: Option<IpAddr>, door: Door) -> Vec<String> {
        let Some(ip) = ip.map(client_key) else {
            return Vec::new();
        };
        let mut ended = Vec::new();
        let mut buckets = self.buckets.lock().expect("limiter lock");
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&ip) {
            ended = self.take_ended(&mut buckets);
            if buckets.len() >= MAX_TRACKED {
                return ended;
            }
        }
        let bucket = buckets
            .entry(ip)
            .or_insert_with(|| Bucket::new(Instant::now()));
        if bucket.start.elapsed() >= self.window {
            // The address's last window ended unreported: say it now, then start afresh.
            ended.extend(bucket.line(ip, self.window));
            *bucket = Bucket::new(Instant::now());
        }
        bucket.failures += 1;
        match door {
            Door::Login => bucket.logins += 1,
            Door::Bearer => bucket.bearers += 1,
        }
        ended
    }

    /// The right token came through the login form from `ip`: its earlier typos no longer
    /// count towards the limit (they are still reported).
    pub fn logged_in(&self, ip: Option<IpAddr>) {
        if let Some(ip) = ip.map(client_key) {
            if let Some(b) = self.buckets.lock().expect("limiter lock").get_mut(&ip) {
                b.failures = 0;
            }
        }
    }

    /// The log lines of every window that has ended, each address's once; those windows are
    /// forgotten. Called on a tick, and at shutdown with `all` to report open windows too.
    pub fn report(&self, all: bool) -> Vec<String> {
        let mut buckets = self.buckets.lock().expect("limiter lock");
        if all {
            let lines = buckets
                .iter()
                .filter_map(|(ip, b)| b.line(*ip, b.start.elapsed()))
                .collect();
            buckets.clear();
            return lines;
        }
        self.take_ended(&mut buckets)
    }

    fn take_ended(&self, buckets: &mut HashMap<IpAddr, Bucket>) -> Vec<String> {
        let mut lines = Vec::new();
        buckets.retain(|ip, b| {
            if b.start.elapsed() < self.window {
                return true;
            }
            lines.extend(b.line(*ip, self.window));
            false
        });
        lines
    }
}

impl Bucket {
    fn new(start: Instant) -> Bucket {
        Bucket {
            start,
            failures: 0,
            logins: 0,
            bearers: 0,
            refused: 0,
        }
    }

    /// "wrong dashboard token from 192.0.2.7 (IPv6: its /64) in 60 s: 3 logins, 12 bearer
    /// headers; 40 more attempts refused (too many)".
    fn line(&self, ip: IpAddr, span: Duration) -> Option<String> {
        if self.logins + self.bearers + self.refused == 0 {
            return None;
        }
        let who = match ip {
            IpAddr::V4(_) => ip.to_string(),
            IpAddr::V6(_) => format!("{ip}/64"),
        };
        let mut line = format!(
            "wrong dashboard token from {who} in {} s: {} at the login, {} as a bearer token",
            span.as_secs_f64().ceil() as u64,
            self.logins,
            self.bearers
        );
        if self.refused > 0 {
            line.push_str(&format!(
                "; {} more attempts refused after {} failures",
                self.refused,
                self.logins + self.bearers
            ));
        }
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn an_address_is_limited_after_ten_failures_through_either_door() {
        let l = GuessLimiter::default();
        for i in 0..GUESS_LIMIT {
            assert_eq!(l.admit(ip("127.0.0.1")), None);
            let door = if i % 2 == 0 {
                Door::Login
            } else {
                Door::Bearer
            };
            l.failed(ip("127.0.0.1"), door);
        }
        assert!(l.is_limited(ip("127.0.0.1")));
        let wait = l.admit(ip("127.0.0.1")).expect("limited");
        assert!(wait <= GUESS_WINDOW && wait > GUESS_WINDOW / 2);
        assert_eq!(l.admit(ip("127.0.0.2")), None);
        assert_eq!(l.admit(None), None);
    }

    #[test]
    fn ipv6_addresses_of_one_64_share_a_limit_and_mapped_ipv4_is_ipv4() {
        let l = GuessLimiter::default();
        for i in 0..GUESS_LIMIT {
            // A fresh address for every guess, all in 2001:db8:1:2::/64.
            l.failed(ip(&format!("2001:db8:1:2::{:x}", i + 1)), Door::Login);
        }
        assert!(l.admit(ip("2001:db8:1:2:ffff::1")).is_some());
        assert!(l.admit(ip("2001:db8:1:3::1")).is_none());

        let l = GuessLimiter::default();
        for _ in 0..GUESS_LIMIT {
            l.failed(ip("::ffff:192.0.2.7"), Door::Bearer);
        }
        assert!(l.admit(ip("192.0.2.7")).is_some());
        assert!(l.admit(ip("192.0.2.8")).is_none());
        l.logged_in(ip("192.0.2.7"));
        assert!(l.admit(ip("::ffff:192.0.2.7")).is_none());
    }

    #[test]
    fn a_window_ends_by_itself_and_is_reported_once_with_its_counts() {
        let l = GuessLimiter::new(2, Duration::from_millis(50));
        for door in [Door::Login, Door::Bearer, Door::Bearer] {
            l.failed(ip("198.51.100.4"), door);
        }
        assert!(l.admit(ip("198.51.100.4")).is_some());
        assert!(l.report(false).is_empty(), "the window is still open");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(l.admit(ip("198.51.100.4")), None, "a new window");
        let lines = l.report(false);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains("198.51.100.4")
                && lines[0].contains("1 at the login, 2 as a bearer token")
                && lines[0].contains("1 more attempts refused"),
            "{lines:?}"
        );
        assert!(l.report(false).is_empty(), "reported once");
    }
}
