//! Whose turn it is to sync: session advisory locks, each on a connection of its own, so a
//! lock lives exactly as long as its connection (an instance that dies lets go of it).
//!
//! - The leader lock elects the one instance that runs the periodic sync; the others try to
//!   take it over each time their own period comes round.
//! - The running lock is held while any sync runs, periodic or asked for, on whichever
//!   instance: a sync asked for elsewhere waits for it and reports its outcome.

use std::time::Duration;

use tokio::sync::Mutex;

use super::{
    connect_direct, Postgres, LOCK_RETENTION, LOCK_SPACE, LOCK_SYNC_LEADER, LOCK_SYNC_RUNNING,
};
use crate::store::StoreError;

/// The right to run a sync (or another job one instance does at a time), held until dropped (with PostgreSQL: dropping closes the
/// connection that holds the lock).
pub struct SyncTurn {
    _holder: Option<tokio_postgres::Client>,
}

impl SyncTurn {
    pub(in crate::store) fn local() -> SyncTurn {
        SyncTurn { _holder: None }
    }
}

/// Whether this instance runs the periodic sync.
pub struct SyncLeadership {
    /// `None`: one process (SQLite), always the leader.
    shared: Option<Shared>,
}

struct Shared {
    direct: tokio_postgres::Config,
    /// The connection holding the leader lock, while this instance leads.
    holder: Mutex<Option<tokio_postgres::Client>>,
}

impl SyncLeadership {
    pub(in crate::store) fn local() -> SyncLeadership {
        SyncLeadership { shared: None }
    }

    /// True when this instance leads: it did already and its connection lives, or the lock
    /// was free and it took it now.
    pub async fn lead(&self) -> bool {
        let Some(shared) = &self.shared else {
            return true;
        };
        let mut holder = shared.holder.lock().await;
        if holder.as_ref().is_some_and(|c| !c.is_closed()) {
            return true;
        }
        *holder = None;
        match try_lock(&shared.direct, LOCK_SYNC_LEADER).await {
            Ok(Some(client)) => {
                log::info!("this instance now runs the periodic sync");
                *holder = Some(client);
                true
            }
            Ok(None) => false,
            Err(e) => {
                log::warn!("cannot tell who runs the periodic sync: {e}");
                false
            }
        }
    }
}

/// The lock `key` on a new connection, which then holds it; `None` when another holds it.
async fn try_lock(
    direct: &tokio_postgres::Config,
    key: i32,
) -> Result<Option<tokio_postgres::Client>, StoreError> {
    let client = connect_direct(direct).await?;
    let got: bool = client
        .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&LOCK_SPACE, &key])
        .await?
        .get(0);
    Ok(got.then_some(client))
}

impl Postgres {
    pub async fn try_sync_turn(&self) -> Result<Option<SyncTurn>, StoreError> {
        Ok(try_lock(&self.inner.direct, LOCK_SYNC_RUNNING)
            .await?
            .map(|c| SyncTurn { _holder: Some(c) }))
    }

    /// The right to apply the retention period now; `None` while another instance does.
    pub async fn try_retention_turn(&self) -> Result<Option<SyncTurn>, StoreError> {
        Ok(try_lock(&self.inner.direct, LOCK_RETENTION)
            .await?
            .map(|c| SyncTurn { _holder: Some(c) }))
    }

    /// Asks every 100 ms whether the running lock is free (taking it and letting go at once).
    pub async fn wait_for_sync_turn(&self, timeout: Duration) -> Result<(), StoreError> {
        let client = connect_direct(&self.inner.direct).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let free: bool = client
                .query_one(
                    "SELECT pg_try_advisory_lock($1, $2) AND pg_advisory_unlock($1, $2)",
                    &[&LOCK_SPACE, &LOCK_SYNC_RUNNING],
                )
                .await?
                .get(0);
            if free {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::Commit(
                    "the sync on another instance did not end in time".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn sync_leadership(&self) -> SyncLeadership {
        SyncLeadership {
            shared: Some(Shared {
                direct: self.inner.direct.clone(),
                holder: Mutex::new(None),
            }),
        }
    }
}
