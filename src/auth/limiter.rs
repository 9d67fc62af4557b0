//! Slows down guessing at the login form.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    fn the_limiter_blocks_an_address_after_ten_failures() {
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
}
