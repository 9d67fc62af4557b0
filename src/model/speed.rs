//! Speed to lead: how long leads waited from `received_at` to their first contact (the first
//! move away from `new`, or the first note), as a median and a 90th percentile in minutes,
//! for all forms and per form, over the last 7 and 30 days; and the leads still waiting.
//!
//! The store and the PDF report both feed [`SpeedBuilder`] one contacted lead at a time, so
//! `/api/stats` and the report agree.

use std::collections::HashMap;

use serde::Serialize;

/// The two windows, in days, that statistics and reports show.
pub const SPEED_WINDOWS: [i64; 2] = [7, 30];

/// Medians and 90th percentiles of one set of waits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Speed {
    /// Leads received in the window and contacted since.
    pub contacted: u64,
    /// Minutes, to a tenth; `None` without contacted leads.
    pub median_minutes: Option<f64>,
    pub p90_minutes: Option<f64>,
}

/// One form's speed in one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FormSpeed {
    pub form_id: Option<String>,
    pub form_name: Option<String>,
    #[serde(flatten)]
    pub speed: Speed,
}

/// Speed to lead over one window: every form together, and each form.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpeedWindow {
    pub days: i64,
    #[serde(flatten)]
    pub all: Speed,
    /// The forms with contacted leads, slowest median first.
    pub per_form: Vec<FormSpeed>,
}

/// The leads nobody has contacted yet (status `new`).
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Waiting {
    pub count: i64,
    /// When the one waiting longest was received (RFC 3339), and for how long, in minutes.
    pub oldest_received_at: Option<String>,
    pub oldest_wait_minutes: Option<f64>,
}

/// Collects waits (milliseconds from receipt to first contact) per form.
#[derive(Debug, Clone, Default)]
pub struct SpeedBuilder {
    /// The end of the windows (unix ms): usually now.
    now_ms: i64,
    /// form id (or "") → the form and its contacted leads.
    forms: HashMap<String, FormWaits>,
}

/// One form's id and name, and (received ms, wait ms) of each of its contacted leads.
#[derive(Debug, Clone, Default)]
struct FormWaits {
    id: Option<String>,
    name: Option<String>,
    waits: Vec<(i64, i64)>,
}

impl SpeedBuilder {
    pub fn new(now_ms: i64) -> SpeedBuilder {
        SpeedBuilder {
            now_ms,
            forms: HashMap::new(),
        }
    }

    /// A lead received at `received_ms` and first contacted at `first_contact_ms`.
    pub fn add(
        &mut self,
        form_id: Option<&str>,
        form_name: Option<&str>,
        received_ms: i64,
        first_contact_ms: i64,
    ) {
        let entry = self
            .forms
            .entry(form_id.unwrap_or("").to_string())
            .or_insert_with(|| FormWaits {
                id: form_id.map(str::to_string),
                ..FormWaits::default()
            });
        if entry.name.is_none() {
            entry.name = form_name.map(str::to_string);
        }
        entry
            .waits
            .push((received_ms, (first_contact_ms - received_ms).max(0)));
    }

    /// The windows of [`SPEED_WINDOWS`].
    pub fn finish(&self) -> Vec<SpeedWindow> {
        SPEED_WINDOWS
            .iter()
            .map(|days| self.window(*days))
            .collect()
    }

    fn window(&self, days: i64) -> SpeedWindow {
        let since = self.now_ms - days * 86_400_000;
        let mut all = Vec::new();
        let mut per_form = Vec::new();
        for form in self.forms.values() {
            let mut mine: Vec<i64> = form
                .waits
                .iter()
                .filter(|(received, _)| *received >= since)
                .map(|(_, wait)| *wait)
                .collect();
            if mine.is_empty() {
                continue;
            }
            all.extend_from_slice(&mine);
            per_form.push(FormSpeed {
                form_id: form.id.clone(),
                form_name: form.name.clone(),
                speed: speed(&mut mine),
            });
        }
        per_form.sort_by(|a, b| {
            b.speed
                .median_minutes
                .partial_cmp(&a.speed.median_minutes)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| a.form_id.cmp(&b.form_id))
        });
        SpeedWindow {
            days,
            all: speed(&mut all),
            per_form,
        }
    }
}

/// The median and 90th percentile (nearest rank) of `waits` (ms), in minutes.
fn speed(waits: &mut [i64]) -> Speed {
    waits.sort_unstable();
    let minutes = |ms: i64| (ms as f64 / 6_000.0).round() / 10.0;
    let rank = |p: f64| {
        let n = waits.len();
        let i = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
        minutes(waits[i])
    };
    Speed {
        contacted: waits.len() as u64,
        median_minutes: (!waits.is_empty()).then(|| rank(0.5)),
        p90_minutes: (!waits.is_empty()).then(|| rank(0.9)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const DAY: i64 = 86_400_000;

    #[test]
    fn median_and_p90_are_nearest_ranks_in_minutes_per_window_and_form() {
        let now = 100 * DAY;
        let mut b = SpeedBuilder::new(now);
        // Ten leads of form A this week, waiting 1..=10 minutes.
        for i in 1..=10 {
            b.add(Some("A"), Some("Spring"), now - DAY, now - DAY + i * MIN);
        }
        // One of form B twenty days ago, contacted after an hour and a half.
        b.add(Some("B"), None, now - 20 * DAY, now - 20 * DAY + 90 * MIN);
        let [week, month] = <[SpeedWindow; 2]>::try_from(b.finish()).unwrap();
        assert_eq!(week.days, 7);
        assert_eq!(week.all.contacted, 10);
        assert_eq!(week.all.median_minutes, Some(5.0));
        assert_eq!(week.all.p90_minutes, Some(9.0));
        assert_eq!(week.per_form.len(), 1);
        assert_eq!(week.per_form[0].form_name.as_deref(), Some("Spring"));
        assert_eq!(month.all.contacted, 11);
        assert_eq!(month.all.p90_minutes, Some(10.0));
        // Slowest first.
        assert_eq!(month.per_form[0].form_id.as_deref(), Some("B"));
        assert_eq!(month.per_form[0].speed.median_minutes, Some(90.0));
    }

    #[test]
    fn no_contacted_leads_no_numbers() {
        let w = SpeedBuilder::new(0).finish();
        assert_eq!(w[0].all.contacted, 0);
        assert_eq!(w[0].all.median_minutes, None);
        assert!(w[1].per_form.is_empty());
    }
}
