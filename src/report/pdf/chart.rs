//! The per-day bar chart of the summary page (weekly or monthly for long periods).

use std::collections::BTreeMap;

use chrono::{Datelike, Days, Months, NaiveDate};
use krilla::surface::Surface;

use super::draw::{fill_rect, group_digits, heading, hline, text, text_right, vline};
use super::{Fonts, ACCENT, CARD_BG, CHART_H, CONTENT_W, INK, MARGIN, MUTED, RULE};

/// Bucket size of the chart: days while they fit as readable bars, then weeks, then months.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bucket {
    Day,
    Week,
    Month,
}

/// At most this many bars; beyond it a bucket of a coarser kind is used.
const MAX_BARS: i64 = 62;

fn bucket_start(d: NaiveDate, b: Bucket) -> NaiveDate {
    match b {
        Bucket::Day => d,
        Bucket::Week => d - Days::new(d.weekday().num_days_from_monday() as u64),
        Bucket::Month => d.with_day(1).unwrap_or(d),
    }
}

fn next_bucket(d: NaiveDate, b: Bucket) -> Option<NaiveDate> {
    match b {
        Bucket::Day => d.checked_add_days(Days::new(1)),
        Bucket::Week => d.checked_add_days(Days::new(7)),
        Bucket::Month => d.checked_add_months(Months::new(1)),
    }
}

/// Consecutive buckets from the first to the last day with leads, empty ones included, so the
/// chart's x axis is real time, not a list of days that happened to have leads.
fn chart_buckets(per_day: &[(NaiveDate, u64)]) -> (Bucket, Vec<(NaiveDate, u64)>) {
    let (Some(first), Some(last)) = (per_day.first().map(|d| d.0), per_day.last().map(|d| d.0))
    else {
        return (Bucket::Day, Vec::new());
    };
    let span = (last - first).num_days() + 1;
    let bucket = if span <= MAX_BARS {
        Bucket::Day
    } else if span <= MAX_BARS * 7 {
        Bucket::Week
    } else {
        Bucket::Month
    };
    let mut counts: BTreeMap<NaiveDate, u64> = BTreeMap::new();
    let mut d = bucket_start(first, bucket);
    let end = bucket_start(last, bucket);
    while d <= end {
        counts.insert(d, 0);
        match next_bucket(d, bucket) {
            Some(n) => d = n,
            None => break,
        }
    }
    for (day, n) in per_day {
        *counts.entry(bucket_start(*day, bucket)).or_default() += n;
    }
    (bucket, counts.into_iter().collect())
}

/// A round axis maximum and step (1, 2 or 5 × 10^k) for four-ish gridlines.
fn nice_axis(max: u64) -> (u64, u64) {
    let raw = (max.max(1) as f64 / 4.0).max(1.0);
    let magnitude = 10f64.powi(raw.log10().floor() as i32);
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude) as u64;
    let step = step.max(1);
    (max.max(1).div_ceil(step) * step, step)
}

pub(super) fn draw_chart(
    s: &mut Surface,
    fonts: &Fonts,
    top: f32,
    per_day: &[(NaiveDate, u64)],
) -> f32 {
    let (bucket, bars) = chart_buckets(per_day);
    let title = match bucket {
        Bucket::Day => "Leads per day",
        Bucket::Week => "Leads per week (weeks start on Monday)",
        Bucket::Month => "Leads per month",
    };
    heading(s, fonts, top, title);
    let plot_top = top + 18.0;
    if bars.is_empty() {
        fill_rect(s, MARGIN, plot_top, CONTENT_W, 40.0, CARD_BG);
        text(
            s,
            &fonts.regular,
            9.0,
            MARGIN + 10.0,
            plot_top + 24.0,
            "No leads in this period.",
            MUTED,
        );
        return plot_top + 40.0;
    }

    let axis_w = 34.0;
    let plot_x = MARGIN + axis_w;
    let plot_w = CONTENT_W - axis_w;
    let plot_bottom = plot_top + CHART_H;
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0);
    let slot = plot_w / bars.len() as f32;
    let show_values = slot >= 12.0;
    let (mut axis_max, step) = nice_axis(max);
    if show_values && max == axis_max {
        // Headroom, so the value over the tallest bar doesn't sit on the top gridline.
        axis_max += step;
    }

    // Gridlines with their values, light so the bars stay the point.
    let mut v = 0;
    while v <= axis_max {
        let gy = plot_bottom - CHART_H * v as f32 / axis_max as f32;
        hline(
            s,
            plot_x,
            plot_x + plot_w,
            gy,
            if v == 0 { 0.8 } else { 0.4 },
            if v == 0 { MUTED } else { RULE },
        );
        text_right(
            s,
            &fonts.regular,
            7.0,
            plot_x - 6.0,
            gy + 2.5,
            &group_digits(v),
            MUTED,
        );
        v += step;
    }

    // Capped so one or two days don't turn into slabs across the page.
    let bar_w = (slot * 0.7).clamp(0.6, 28.0);
    for (i, (_, n)) in bars.iter().enumerate() {
        if *n == 0 {
            continue;
        }
        let h = CHART_H * *n as f32 / axis_max as f32;
        let x = plot_x + i as f32 * slot + (slot - bar_w) / 2.0;
        fill_rect(s, x, plot_bottom - h, bar_w, h, ACCENT);
        if show_values {
            let label = group_digits(*n);
            let size = 6.5;
            let w = fonts.regular.width(&label, size);
            if w <= slot {
                text(
                    s,
                    &fonts.regular,
                    size,
                    x + bar_w / 2.0 - w / 2.0,
                    plot_bottom - h - 3.0,
                    &label,
                    INK,
                );
            }
        }
    }

    // As many x labels as fit without touching, evenly spaced, first bar always labelled.
    let fmt = match bucket {
        Bucket::Day | Bucket::Week => "%d %b",
        Bucket::Month => "%b %Y",
    };
    let label_w = fonts.regular.width("00 May 0000", 7.0) + 6.0;
    let every = ((label_w / slot).ceil() as usize).max(1);
    for (i, (d, _)) in bars.iter().enumerate().step_by(every) {
        let cx = plot_x + i as f32 * slot + slot / 2.0;
        let label = d.format(fmt).to_string();
        let w = fonts.regular.width(&label, 7.0);
        let lx = (cx - w / 2.0).clamp(plot_x - 4.0, plot_x + plot_w - w);
        vline(s, cx, plot_bottom, plot_bottom + 3.0, 0.6, MUTED);
        text(
            s,
            &fonts.regular,
            7.0,
            lx,
            plot_bottom + 12.0,
            &label,
            MUTED,
        );
    }
    plot_bottom + 14.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_spans_are_charted_by_week_or_month() {
        let d = |m, day| NaiveDate::from_ymd_opt(2026, m, day).unwrap();
        let (b, bars) = chart_buckets(&[(d(1, 1), 1), (d(1, 3), 2)]);
        assert_eq!((b, bars.len()), (Bucket::Day, 3));
        let (b, bars) = chart_buckets(&[(d(1, 1), 1), (d(6, 1), 2)]);
        assert_eq!(b, Bucket::Week);
        assert_eq!(bars.iter().map(|b| b.1).sum::<u64>(), 3);
        let (b, bars) = chart_buckets(&[
            (d(1, 31), 1),
            (NaiveDate::from_ymd_opt(2027, 12, 1).unwrap(), 2),
        ]);
        assert_eq!((b, bars.len()), (Bucket::Month, 24));
    }

    #[test]
    fn the_chart_axis_is_a_round_number() {
        assert_eq!(nice_axis(0), (1, 1));
        assert_eq!(nice_axis(3), (3, 1));
        assert_eq!(nice_axis(37), (40, 10));
        assert_eq!(nice_axis(1234), (1500, 500));
    }
}
