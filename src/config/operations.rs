//! The settings for the people who run it: the metrics token and the retention period.

use std::time::Duration;

use super::Secret;

/// `METRICS_TOKEN`, when given: at least 8 characters, as the dashboard token.
pub(super) fn metrics_token(token: Option<Secret>) -> Result<Option<Secret>, String> {
    match token {
        Some(t) if t.expose().len() < 8 => {
            Err("METRICS_TOKEN must be at least 8 characters long".into())
        }
        token => Ok(token),
    }
}

/// `LEADS_RETENTION_DAYS`, when given: a whole number of days from 1 to 36500.
pub(super) fn retention(days: Option<String>) -> Result<Option<Duration>, String> {
    let Some(days) = days else { return Ok(None) };
    match days.trim().parse::<u64>() {
        Ok(d) if (1..=36_500).contains(&d) => Ok(Some(Duration::from_secs(d * 24 * 3600))),
        _ => Err(format!(
            "LEADS_RETENTION_DAYS must be a whole number of days from 1 to 36500: {days:?}"
        )),
    }
}
