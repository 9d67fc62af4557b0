//! Erasing leads, the one way leads leave leadstream: by hand (`DELETE /api/leads/{id}`) or
//! because they are older than the retention period (`LEADS_RETENTION_DAYS`).
//!
//! Both go through [`Eraser::erase`]: the store erases every row that holds the leads'
//! personal values in one transaction, then open dashboards are told to drop them. The log
//! says which ids and how many, never what the leads held.

use std::time::Duration;

use crate::live::Hub;
use crate::metrics;
use crate::model::now_ms;
use crate::shutdown::Shutdown;
use crate::store::{Store, StoreError};

/// Leads erased per transaction by the retention period: each batch is short, so webhooks
/// and saves are never held up behind a large erasure.
const RETENTION_BATCH: usize = 500;

/// Erases leads and tells open streams.
#[derive(Clone)]
pub struct Eraser {
    pub store: Store,
    pub hub: Hub,
}

impl Eraser {
    /// Erases the leads `ids`; the ids that were there.
    pub async fn erase(&self, ids: Vec<i64>) -> Result<Vec<i64>, StoreError> {
        let erased = self.store.erase_leads(ids).await?;
        if !erased.is_empty() {
            metrics::leads_erased(erased.len() as u64);
            // With PostgreSQL every instance's feed hears of it, this one's included.
            if !self.store.is_shared() {
                self.hub.erased(erased.clone());
            }
        }
        Ok(erased)
    }

    /// Erases every lead received longer than `period` ago, a batch at a time; how many.
    pub async fn apply_retention(&self, period: Duration) -> Result<u64, StoreError> {
        let before = now_ms() - period.as_millis() as i64;
        let mut total = 0;
        loop {
            let ids = self
                .store
                .leads_received_before(before, RETENTION_BATCH)
                .await?;
            let n = ids.len();
            total += self.erase(ids).await?.len() as u64;
            if n < RETENTION_BATCH {
                return Ok(total);
            }
        }
    }
}

/// Applies the retention period at start and then every `every`, until `stop`. With several
/// instances on PostgreSQL one of them does it at a time (an advisory lock); the others find
/// the work done.
pub async fn run_retention(eraser: Eraser, period: Duration, every: Duration, stop: Shutdown) {
    let days = period.as_secs() / 86_400;
    log::info!("leads received more than {days} days ago are erased every day");
    loop {
        match eraser.store.try_retention_turn().await {
            Ok(Some(_turn)) => match eraser.apply_retention(period).await {
                Ok(0) => log::debug!("retention: no lead older than {days} days"),
                Ok(n) => log::info!("retention: {n} leads older than {days} days erased"),
                Err(e) => log::error!("retention: erasing old leads failed: {e}"),
            },
            Ok(None) => log::debug!("retention: another instance is applying it"),
            Err(e) => log::error!("retention: cannot tell whose turn it is: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.started() => return,
        }
    }
}
