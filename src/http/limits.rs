//! What one process lets its clients hold: connections (in all, and per address), and the
//! request bodies buffered in memory at once. The timeouts are applied where the waiting is:
//! `h1`, `h2` and the stream's socket writer.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Limits;

/// File descriptors kept back from the connection cap for everything else the process opens:
/// the database (a few files per connection), Graph calls, the refusals themselves.
const FD_RESERVE: u64 = 512;

/// Raises the soft open-files limit to the hard limit (every connection is a descriptor, and
/// systemd's usual soft limit is 1024). Returns the limit in force, if it can be read.
#[cfg(unix)]
pub fn raise_fd_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    // rlim_t is u64 on Linux, not on every unix.
    #[allow(clippy::unnecessary_cast)]
    Some(lim.rlim_cur as u64)
}

#[cfg(not(unix))]
pub fn raise_fd_limit() -> Option<u64> {
    None
}

/// The connection cap that fits `fd_limit` descriptors: all but a reserve (half of a small
/// limit).
pub fn cap_for_fd_limit(fd_limit: u64) -> usize {
    let reserve = FD_RESERVE.min(fd_limit / 2);
    fd_limit.saturating_sub(reserve).max(1) as usize
}

/// Refused connections answered at once, at most (each holds a descriptor for a moment).
const MAX_REFUSALS: usize = 256;

/// How many refused connections may be answered at once under `fd_limit`: half the reserve
/// at most, so the database and Graph calls keep the other half however hard the cap is hit.
pub fn refusals_for_fd_limit(fd_limit: Option<u64>) -> usize {
    fd_limit.map_or(MAX_REFUSALS, |fds| {
        let half = (FD_RESERVE.min(fds / 2) / 2) as usize;
        half.clamp(1, MAX_REFUSALS)
    })
}

/// Counts open connections, in all and per peer address.
pub struct ConnectionCap {
    max: usize,
    /// Refusals answered at once, at most.
    refusals: usize,
    /// 0: no limit.
    per_ip: usize,
    limit_loopback: bool,
    open: AtomicUsize,
    by_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Full,
    TooManyFromAddress,
}

/// One admitted connection; counted until dropped.
pub struct Admitted {
    cap: Arc<ConnectionCap>,
    /// Counted per address (`None`: not counted, e.g. loopback).
    ip: Option<IpAddr>,
}

impl ConnectionCap {
    /// A cap of `max` connections in all; `limits` gives the per-address rule.
    pub fn new(max: usize, limits: &Limits) -> ConnectionCap {
        ConnectionCap {
            max,
            refusals: MAX_REFUSALS,
            per_ip: limits.max_connections_per_ip,
            limit_loopback: limits.limit_loopback,
            open: AtomicUsize::new(0),
            by_ip: Mutex::new(HashMap::new()),
        }
    }

    /// At most `n` refusals answered at once (see [`refusals_for_fd_limit`]).
    pub fn with_refusals(mut self, n: usize) -> ConnectionCap {
        self.refusals = n.max(1);
        self
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Refused connections that may be answered at once; more are just closed.
    pub fn refusals(&self) -> usize {
        self.refusals
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Admits a connection from `ip`, or says why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Refused> {
        // An IPv4 client of a dual-stack socket arrives as ::ffff:a.b.c.d; an IPv6 host has a
        // whole /64 to pick source addresses from, so that is what is counted.
        let loopback = ip.to_canonical().is_loopback();
        let ip = crate::auth::client_key(ip);
        if self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_err()
        {
            return Err(Refused::Full);
        }
        let counted = self.per_ip > 0 && (self.limit_loopback || !loopback);
        if counted {
            let mut by_ip = self.by_ip.lock().unwrap_or_else(PoisonError::into_inner);
            let n = by_ip.entry(ip).or_insert(0);
            if *n >= self.per_ip {
                drop(by_ip);
                self.open.fetch_sub(1, Ordering::AcqRel);
                return Err(Refused::TooManyFromAddress);
            }
            *n += 1;
        }
        Ok(Admitted {
            cap: self.clone(),
            ip: counted.then_some(ip),
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.cap.open.fetch_sub(1, Ordering::AcqRel);
        if let Some(ip) = self.ip {
            let mut by_ip = self
                .cap
                .by_ip
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(n) = by_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    by_ip.remove(&ip);
                }
            }
        }
    }
}

/// The bytes of request bodies that may be held in memory at once, over all connections: a
/// body takes room as its bytes arrive, and gives it back when it is dropped. So stalled
/// bodies cost at most the budget in all, however many there are and whatever length they
/// declare.
#[derive(Clone)]
pub struct BodyBudget(Arc<Semaphore>);

/// Room taken in the budget; given back when dropped.
#[derive(Debug)]
pub struct BudgetRoom(Option<OwnedSemaphorePermit>);

impl BudgetRoom {
    /// Adds `other` to this room.
    pub fn merge(&mut self, other: BudgetRoom) {
        match (&mut self.0, other.0) {
            (Some(held), Some(more)) => held.merge(more),
            (none @ None, more) => *none = more,
            (Some(_), None) => {}
        }
    }
}

impl BodyBudget {
    pub fn new(bytes: usize) -> BodyBudget {
        BodyBudget(Arc::new(Semaphore::new(
            bytes.clamp(1, Semaphore::MAX_PERMITS),
        )))
    }

    /// No room yet; grows with [`Self::take`].
    pub fn none() -> BudgetRoom {
        BudgetRoom(None)
    }

    /// Adds `n` bytes to `room`, waiting until the budget has them. Cancel-safe: waiting is
    /// given up by dropping the future.
    pub async fn take(&self, room: &mut BudgetRoom, n: usize) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        // The semaphore is never closed.
        let Ok(permit) = self.0.clone().acquire_many_owned(n).await else {
            return;
        };
        match &mut room.0 {
            Some(held) => held.merge(permit),
            none => *none = Some(permit),
        }
    }

    /// Room for `n` bytes as a value of its own, once the budget has it.
    pub async fn room(self, n: usize) -> BudgetRoom {
        let mut room = BodyBudget::none();
        self.take(&mut room, n).await;
        room
    }

    /// Bytes free now.
    pub fn available(&self) -> usize {
        self.0.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_ip: usize, limit_loopback: bool) -> Limits {
        Limits {
            max_connections_per_ip: per_ip,
            limit_loopback,
            ..Limits::default()
        }
    }

    #[test]
    fn the_cap_counts_in_all_and_per_address_and_gives_back_on_drop() {
        let cap = Arc::new(ConnectionCap::new(3, &limits(2, false)));
        let a: IpAddr = "203.0.113.5".parse().unwrap();
        let b: IpAddr = "203.0.113.6".parse().unwrap();
        let a1 = cap.admit(a).unwrap();
        let _a2 = cap.admit(a).unwrap();
        assert_eq!(cap.admit(a).err(), Some(Refused::TooManyFromAddress));
        let _b1 = cap.admit(b).unwrap();
        assert_eq!(cap.admit(b).err(), Some(Refused::Full));
        assert_eq!(cap.open(), 3);
        drop(a1);
        assert_eq!(cap.open(), 2);
        let _a3 = cap.admit(a).unwrap();
    }

    #[test]
    fn loopback_is_counted_per_address_only_when_asked_and_mapped_addresses_are_one() {
        let proxy = Arc::new(ConnectionCap::new(100, &limits(1, false)));
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let held: Vec<_> = (0..5).map(|_| proxy.admit(lo).unwrap()).collect();
        assert_eq!(held.len(), 5);

        let direct = Arc::new(ConnectionCap::new(100, &limits(1, true)));
        let _one = direct.admit(lo).unwrap();
        assert_eq!(direct.admit(lo).err(), Some(Refused::TooManyFromAddress));
        let v6: IpAddr = "::1".parse().unwrap();
        let held: Vec<_> = (0..5).map(|_| proxy.admit(v6).unwrap()).collect();
        assert_eq!(held.len(), 5);
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(
            direct.admit(mapped).err(),
            Some(Refused::TooManyFromAddress)
        );
    }

    #[test]
    fn ipv6_addresses_of_one_64_share_the_per_address_cap() {
        let cap = Arc::new(ConnectionCap::new(100, &limits(2, false)));
        // One host picking a fresh source address for every connection.
        let _a = cap.admit("2001:db8:1:2::1".parse().unwrap()).unwrap();
        let _b = cap.admit("2001:db8:1:2::2".parse().unwrap()).unwrap();
        assert_eq!(
            cap.admit("2001:db8:1:2:ffff::3".parse().unwrap()).err(),
            Some(Refused::TooManyFromAddress)
        );
        // Another /64 is another client.
        let _c = cap.admit("2001:db8:1:3::1".parse().unwrap()).unwrap();
    }

    #[test]
    fn a_small_fd_limit_keeps_half_back_and_a_large_one_a_fixed_reserve() {
        assert_eq!(cap_for_fd_limit(1024), 512);
        assert_eq!(cap_for_fd_limit(20_000), 19_488);
        assert_eq!(cap_for_fd_limit(1), 1);
    }

    #[test]
    fn refusals_take_at_most_half_of_the_reserve() {
        // At 512 descriptors the reserve is 256: refusals answered at once may not take all of
        // it (the database and Graph calls would then get EMFILE, and so would accept).
        assert_eq!(refusals_for_fd_limit(Some(512)), 128);
        assert!(refusals_for_fd_limit(Some(512)) * 2 <= 512 - cap_for_fd_limit(512));
        assert_eq!(refusals_for_fd_limit(Some(1024)), 256);
        assert_eq!(refusals_for_fd_limit(Some(20_000)), 256);
        assert_eq!(refusals_for_fd_limit(None), 256);
        assert_eq!(refusals_for_fd_limit(Some(2)), 1);
    }

    #[tokio::test]
    async fn body_room_is_given_back_when_dropped() {
        let budget = BodyBudget::new(100);
        let mut room = BodyBudget::none();
        budget.take(&mut room, 60).await;
        budget.take(&mut room, 40).await;
        assert_eq!(budget.available(), 0);
        let mut other = BodyBudget::none();
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            budget.take(&mut other, 1),
        );
        assert!(waiting.await.is_err(), "the budget is spent");
        drop(room);
        assert_eq!(budget.available(), 100);
    }
}
