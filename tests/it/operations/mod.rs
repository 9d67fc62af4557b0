//! Running leadstream for years: metrics a Prometheus server scrapes, erasing a lead on
//! request and old leads by the retention period.

mod erasure;
mod metrics;
mod retention;
