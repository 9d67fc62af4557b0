//! What a report says about a whole set (totals, per form, per day), and the few values it
//! keeps of each lead.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};

use super::form_label;
use crate::model::{parse_graph_time, Lead, SpeedBuilder, SpeedWindow};

/// What the first page of the PDF says about the whole set.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportSummary {
    /// Document title, e.g. "Leads report".
    pub title: String,
    /// The filter and period in words, e.g. "Form: Spring promo · 2026-11-01 to 2026-11-30".
    pub filter_description: String,
    pub generated_at: DateTime<Utc>,
    pub total: u64,
    /// Form label and count, most leads first.
    pub per_form: Vec<(String, u64)>,
    /// Day (UTC, of `created_time`) and count, oldest first; days without leads are absent.
    pub per_day: Vec<(NaiveDate, u64)>,
    /// Minutes from receipt to first contact, over the last 7 and 30 days (as `/api/stats`).
    pub speed_to_lead: Vec<SpeedWindow>,
}

/// Counts leads per form and per day in the same pass that collects the report rows.
#[derive(Debug, Clone, Default)]
pub struct SummaryBuilder {
    total: u64,
    /// Keyed by form id (falling back to the label), so two forms that share a name stay apart.
    forms: HashMap<String, (String, u64)>,
    days: BTreeMap<NaiveDate, u64>,
    /// Receipt and first contact (unix ms) of each contacted lead, with its form.
    contacted: Vec<(Option<String>, Option<String>, i64, i64)>,
}

impl SummaryBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, lead: &Lead) {
        self.total += 1;
        if let (Ok(received), Some(Ok(first))) = (
            parse_graph_time(&lead.received_at),
            lead.first_contact_at.as_deref().map(parse_graph_time),
        ) {
            self.contacted.push((
                lead.form_id.clone(),
                lead.form_name.clone(),
                received.timestamp_millis(),
                first.timestamp_millis(),
            ));
        }
        let label = form_label(lead).unwrap_or("(no form)");
        let key = lead.form_id.as_deref().unwrap_or(label);
        let entry = self
            .forms
            .entry(key.to_owned())
            .or_insert_with(|| (label.to_owned(), 0));
        entry.1 += 1;
        // A form's name can be learnt after its first leads were saved; prefer the name.
        if lead.form_id.as_deref() == Some(entry.0.as_str()) && label != entry.0 {
            entry.0 = label.to_owned();
        }
        // `created_time` is when the person submitted; fall back to when we saved it.
        let when =
            parse_graph_time(&lead.created_time).or_else(|_| parse_graph_time(&lead.received_at));
        if let Ok(t) = when {
            *self.days.entry(t.date_naive()).or_default() += 1;
        }
    }

    pub fn finish(
        self,
        title: impl Into<String>,
        filter_description: impl Into<String>,
        generated_at: DateTime<Utc>,
    ) -> ReportSummary {
        let mut speed = SpeedBuilder::new(generated_at.timestamp_millis());
        for (form_id, form_name, received, first) in &self.contacted {
            speed.add(form_id.as_deref(), form_name.as_deref(), *received, *first);
        }
        let mut per_form: Vec<(String, u64)> = self.forms.into_values().collect();
        per_form.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        ReportSummary {
            title: title.into(),
            filter_description: filter_description.into(),
            generated_at,
            total: self.total,
            per_form,
            per_day: self.days.into_iter().collect(),
            speed_to_lead: speed.finish(),
        }
    }
}

/// The values the PDF table shows for one lead; all a report keeps per lead.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReportRow {
    pub name: String,
    pub email: String,
    pub phone: String,
    pub form: String,
    /// `YYYY-MM-DD HH:MM` in UTC, or the stored string if it does not parse.
    pub created: String,
    pub status: String,
    pub owner: String,
    /// `YYYY-MM-DD HH:MM` in UTC, or empty before the first contact.
    pub first_contact: String,
}

impl From<&Lead> for ReportRow {
    fn from(lead: &Lead) -> Self {
        ReportRow {
            name: lead.display_name(),
            email: lead.email().to_owned(),
            phone: lead.phone().to_owned(),
            form: form_label(lead).unwrap_or("").to_owned(),
            created: minute(&lead.created_time),
            status: lead.status.as_str().to_owned(),
            owner: lead.owner.clone().unwrap_or_default(),
            first_contact: lead
                .first_contact_at
                .as_deref()
                .map(minute)
                .unwrap_or_default(),
        }
    }
}

/// `YYYY-MM-DD HH:MM` in UTC, or `t` as it is if it does not parse.
fn minute(t: &str) -> String {
    parse_graph_time(t)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|_| t.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testing::lead;

    #[test]
    fn summary_counts_per_form_and_per_day() {
        let mut b = SummaryBuilder::new();
        let mut other = lead(3, Some("Other"), "2026-11-29T00:00:01+0000", &[]);
        other.form_id = Some("333".into());
        for l in [
            lead(1, None, "2026-11-28T14:02:11Z", &[]),
            lead(2, Some("Spring promo"), "2026-11-28T23:59:59Z", &[]),
            other,
        ] {
            b.add(&l);
        }
        let s = b.finish("Leads report", "all", Utc::now());
        assert_eq!(s.total, 3);
        assert_eq!(
            s.per_form,
            [("Spring promo".to_string(), 2), ("Other".to_string(), 1)]
        );
        let d = |day| NaiveDate::from_ymd_opt(2026, 11, day).unwrap();
        assert_eq!(s.per_day, [(d(28), 2), (d(29), 1)]);
    }
}
