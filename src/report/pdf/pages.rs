//! The parts of a page: the summary (title, filter, totals, per-form table, chart), the lead
//! table and the footer.

use krilla::surface::Surface;

use super::chart::draw_chart;
use super::draw::{fill_rect, group_digits, heading, hline, text, text_right};
use super::face::{one_line, wrap};
use super::{
    Fonts, ACCENT, CARD_BG, CELL_PAD, COLUMNS, CONTENT_W, HEADER_BG, INK, MARGIN, MAX_FORM_ROWS,
    MUTED, PAGE_H, ROW_H, RULE, STRIPE, TABLE_FONT, TABLE_HEADER_H,
};
use crate::report::summary::ReportSummary;

/// Draws title, filter, totals, per-form table and chart; returns the y below them.
pub(super) fn draw_summary(s: &mut Surface, fonts: &Fonts, summary: &ReportSummary) -> f32 {
    let mut y = MARGIN + 18.0;
    let title = fonts
        .bold
        .fit(one_line(summary.title.clone()), CONTENT_W, 20.0);
    text(s, &fonts.bold, 20.0, MARGIN, y, &title, INK);
    y += 20.0;
    let filter = format!("Filter: {}", summary.filter_description);
    for line in wrap(&fonts.regular, &one_line(filter), CONTENT_W, 9.5, 3) {
        text(s, &fonts.regular, 9.5, MARGIN, y, &line, MUTED);
        y += 13.0;
    }
    let generated = format!(
        "Generated {}",
        summary.generated_at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    text(s, &fonts.regular, 9.5, MARGIN, y, &generated, MUTED);
    y += 12.0;

    // Totals as four cards.
    let busiest = summary
        .per_day
        .iter()
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)));
    let cards = [
        ("TOTAL LEADS".to_owned(), group_digits(summary.total)),
        (
            "FORMS".to_owned(),
            group_digits(summary.per_form.len() as u64),
        ),
        (
            "DAYS WITH LEADS".to_owned(),
            group_digits(summary.per_day.len() as u64),
        ),
        match busiest {
            Some((day, n)) => (
                format!(
                    "BUSIEST DAY ({} {})",
                    group_digits(*n),
                    if *n == 1 { "LEAD" } else { "LEADS" }
                ),
                day.format("%d %b %Y").to_string(),
            ),
            None => ("BUSIEST DAY".to_owned(), "–".to_owned()),
        },
    ];
    let gap = 10.0;
    let card_w = (CONTENT_W - 3.0 * gap) / 4.0;
    for (i, (label, value)) in cards.iter().enumerate() {
        let x = MARGIN + i as f32 * (card_w + gap);
        fill_rect(s, x, y, card_w, 46.0, CARD_BG);
        fill_rect(s, x, y, 3.0, 46.0, ACCENT);
        let label = fonts.regular.fit(label.clone(), card_w - 16.0, 7.0);
        text(s, &fonts.regular, 7.0, x + 10.0, y + 15.0, &label, MUTED);
        // The largest size that fits, so a long total shrinks rather than being cut.
        let size = [16.0, 14.0, 12.0]
            .into_iter()
            .find(|size| fonts.bold.width(value, *size) <= card_w - 16.0)
            .unwrap_or(11.0);
        let value = fonts.bold.fit(value.clone(), card_w - 16.0, size);
        text(s, &fonts.bold, size, x + 10.0, y + 36.0, &value, INK);
    }
    y += 46.0 + 18.0;
    for line in speed_lines(summary) {
        text(s, &fonts.regular, 9.0, MARGIN, y, &line, MUTED);
        y += 12.0;
    }
    y += 12.0;

    heading(s, fonts, y, "Leads per form");
    y += 8.0;
    y = draw_form_table(s, fonts, y, summary);
    y += 30.0;

    y = draw_chart(s, fonts, y, &summary.per_day);
    y
}

/// Speed to lead in words, one line per window: the median and 90th percentile minutes from
/// receipt to first contact of the leads in the report.
fn speed_lines(summary: &ReportSummary) -> Vec<String> {
    let minutes = |m: Option<f64>| m.map_or("–".to_string(), |m| format!("{m} min"));
    summary
        .speed_to_lead
        .iter()
        .map(|w| {
            format!(
                "Speed to lead, last {} days: median {}, 90th percentile {} ({} contacted)",
                w.days,
                minutes(w.all.median_minutes),
                minutes(w.all.p90_minutes),
                group_digits(w.all.contacted)
            )
        })
        .collect()
}

pub(super) fn draw_form_table(
    s: &mut Surface,
    fonts: &Fonts,
    top: f32,
    summary: &ReportSummary,
) -> f32 {
    let count_w = 70.0;
    let speed_w = 130.0;
    let share_w = 150.0;
    let name_w = CONTENT_W - count_w - speed_w - share_w;
    let speed_x = MARGIN + name_w + count_w + 12.0;
    // Each form's speed to lead over the last 30 days (the forms are named as the speed
    // windows name them; a form without contacted leads has none).
    let month = summary.speed_to_lead.iter().max_by_key(|w| w.days);
    let speed_of = |name: &str| -> String {
        month
            .and_then(|w| {
                w.per_form.iter().find(|f| {
                    let label = f.form_name.as_deref().filter(|n| !n.trim().is_empty());
                    label.or(f.form_id.as_deref()).unwrap_or("(no form)") == name
                })
            })
            .and_then(|f| Some((f.speed.median_minutes?, f.speed.p90_minutes?)))
            .map_or("–".to_string(), |(median, p90)| {
                format!("{median} / {p90} min")
            })
    };
    let mut y = top;
    fill_rect(s, MARGIN, y, CONTENT_W, TABLE_HEADER_H, HEADER_BG);
    let base = y + TABLE_HEADER_H - 6.0;
    text(
        s,
        &fonts.bold,
        TABLE_FONT,
        MARGIN + CELL_PAD,
        base,
        "Form",
        INK,
    );
    text_right(
        s,
        &fonts.bold,
        TABLE_FONT,
        MARGIN + name_w + count_w - CELL_PAD,
        base,
        "Leads",
        INK,
    );
    let speed_title = match month {
        Some(w) => format!("To contact, {} d: median / p90", w.days),
        None => "To contact".to_string(),
    };
    let speed_title = fonts.bold.fit(speed_title, speed_w - 12.0, TABLE_FONT);
    text(s, &fonts.bold, TABLE_FONT, speed_x, base, &speed_title, INK);
    text(
        s,
        &fonts.bold,
        TABLE_FONT,
        speed_x + speed_w,
        base,
        "Share",
        INK,
    );
    y += TABLE_HEADER_H;

    let mut rows: Vec<(String, u64)> = summary
        .per_form
        .iter()
        .take(MAX_FORM_ROWS)
        .cloned()
        .collect();
    if summary.per_form.len() > MAX_FORM_ROWS {
        let others = &summary.per_form[MAX_FORM_ROWS..];
        let label = format!("{} other forms", group_digits(others.len() as u64));
        rows.push((label, others.iter().map(|f| f.1).sum()));
    }
    if rows.is_empty() {
        text(
            s,
            &fonts.regular,
            TABLE_FONT,
            MARGIN + CELL_PAD,
            y + ROW_H - 4.0,
            "No leads.",
            MUTED,
        );
        y += ROW_H;
    }
    let total = summary.total.max(1) as f32;
    let bar_max = share_w - 12.0 - 42.0;
    for (i, (name, n)) in rows.iter().enumerate() {
        if i % 2 == 1 {
            fill_rect(s, MARGIN, y, CONTENT_W, ROW_H, STRIPE);
        }
        let base = y + ROW_H - 4.0;
        let name = fonts
            .regular
            .fit(one_line(name.clone()), name_w - 2.0 * CELL_PAD, TABLE_FONT);
        text(
            s,
            &fonts.regular,
            TABLE_FONT,
            MARGIN + CELL_PAD,
            base,
            &name,
            INK,
        );
        let count_right = MARGIN + name_w + count_w - CELL_PAD;
        text_right(
            s,
            &fonts.regular,
            TABLE_FONT,
            count_right,
            base,
            &group_digits(*n),
            INK,
        );
        let speed = fonts
            .regular
            .fit(speed_of(name.as_str()), speed_w - 12.0, TABLE_FONT);
        text(s, &fonts.regular, TABLE_FONT, speed_x, base, &speed, MUTED);
        let share = *n as f32 / total;
        let bar_x = speed_x + speed_w;
        fill_rect(
            s,
            bar_x,
            y + 4.0,
            (bar_max * share).max(0.5),
            ROW_H - 8.0,
            ACCENT,
        );
        let pct = format!("{:.1}%", share * 100.0);
        text_right(
            s,
            &fonts.regular,
            TABLE_FONT,
            MARGIN + CONTENT_W - CELL_PAD,
            base,
            &pct,
            MUTED,
        );
        y += ROW_H;
    }
    hline(s, MARGIN, MARGIN + CONTENT_W, y, 0.5, RULE);
    y
}

/// Header row plus `rows`, starting at `top`.
pub(super) fn draw_table(s: &mut Surface, fonts: &Fonts, top: f32, rows: &[[String; 7]]) {
    fill_rect(s, MARGIN, top, CONTENT_W, TABLE_HEADER_H, HEADER_BG);
    let mut x = MARGIN;
    for (title, w) in COLUMNS {
        text(
            s,
            &fonts.bold,
            TABLE_FONT,
            x + CELL_PAD,
            top + TABLE_HEADER_H - 6.0,
            title,
            INK,
        );
        x += w;
    }
    let mut y = top + TABLE_HEADER_H;
    for (i, row) in rows.iter().enumerate() {
        if i % 2 == 1 {
            fill_rect(s, MARGIN, y, CONTENT_W, ROW_H, STRIPE);
        }
        let mut x = MARGIN;
        for (value, (_, w)) in row.iter().zip(COLUMNS) {
            text(
                s,
                &fonts.regular,
                TABLE_FONT,
                x + CELL_PAD,
                y + ROW_H - 4.0,
                value,
                INK,
            );
            x += w;
        }
        y += ROW_H;
    }
    hline(s, MARGIN, MARGIN + CONTENT_W, y, 0.5, RULE);
}

pub(super) fn draw_footer(s: &mut Surface, fonts: &Fonts, left: &str, page: usize, pages: usize) {
    let y = PAGE_H - MARGIN + 6.0;
    hline(s, MARGIN, MARGIN + CONTENT_W, y - 10.0, 0.5, RULE);
    text(s, &fonts.regular, 7.5, MARGIN, y, left, MUTED);
    let n = format!("Page {page} of {pages}");
    text_right(s, &fonts.regular, 7.5, MARGIN + CONTENT_W, y, &n, MUTED);
}
