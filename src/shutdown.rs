//! One answer to "has shutdown begun?", for every task, connection and stream of the server.
//!
//! [`run`](crate::run) makes one [`ShutdownSwitch`] and hands out clones of its [`Shutdown`];
//! SIGINT/SIGTERM (or a test) flips the switch once, and everything that holds a clone sees it:
//! a loop asks [`Shutdown::is_started`] between two pieces of work, a `select!` waits on
//! [`Shutdown::started`] beside its other work.

use tokio::sync::watch;

/// Whether shutdown has begun. Cheap to clone (one reference count); a clone per task or
/// stream is the intended use.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<bool>);

/// Begins shutdown for every [`Shutdown`] made from it. Dropping the switch counts as
/// beginning too: nothing could end the tasks later.
#[derive(Debug)]
pub struct ShutdownSwitch(watch::Sender<bool>);

impl Shutdown {
    /// A switch, and the first of the values it controls (clone it for more).
    pub fn new() -> (ShutdownSwitch, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownSwitch(tx), Shutdown(rx))
    }

    /// True once shutdown has begun. Never waits.
    pub fn is_started(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }

    /// Resolves once shutdown has begun; at once if it already has, so a task that starts
    /// late still ends.
    pub async fn started(&self) {
        let mut rx = self.0.clone();
        // An error means the switch is gone, which counts as begun.
        let _ = rx.wait_for(|started| *started).await;
    }
}

impl ShutdownSwitch {
    /// Begins shutdown. Calling it again does nothing more.
    pub fn start(&self) {
        self.0.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn every_clone_sees_the_switch_and_a_late_waiter_returns_at_once() {
        let (switch, shutdown) = Shutdown::new();
        let early = shutdown.clone();
        assert!(!shutdown.is_started());
        let waiting = tokio::spawn(async move { early.started().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        switch.start();
        tokio::time::timeout(Duration::from_secs(2), waiting)
            .await
            .expect("the early waiter wakes")
            .unwrap();
        assert!(shutdown.is_started());
        tokio::time::timeout(Duration::from_secs(2), shutdown.clone().started())
            .await
            .expect("a late waiter returns at once");
    }

    #[tokio::test]
    async fn a_dropped_switch_counts_as_shutdown() {
        let (switch, shutdown) = Shutdown::new();
        drop(switch);
        assert!(shutdown.is_started());
        tokio::time::timeout(Duration::from_secs(2), shutdown.started())
            .await
            .expect("returns at once");
    }
}
