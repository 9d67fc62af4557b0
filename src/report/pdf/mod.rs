//! The PDF report: a summary page, then the lead table over as many pages as it takes, drawn
//! with krilla in the embedded DejaVu Sans (subset to the glyphs used).

mod chart;
mod draw;
mod face;
mod pages;

use chrono::{DateTime, Datelike, Utc};
use krilla::metadata::Metadata;
use krilla::page::PageSettings;
use krilla::Document;

use super::summary::{ReportRow, ReportSummary};
use super::ReportError;
use crate::model::Lead;
use draw::{group_digits, heading, text};
use face::{one_line, Face};
use pages::{draw_footer, draw_summary, draw_table};

// Embedded so the report looks the same everywhere and needs no system fonts. krilla subsets
// them: a report carries only the glyphs it uses (tens of KiB, not 1.4 MiB).
static REGULAR_TTF: &[u8] =
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/fonts/DejaVuSans.ttf"));
static BOLD_TTF: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fonts/DejaVuSans-Bold.ttf"
));

// A4 portrait, in points. Page coordinates run from the top-left corner, y downwards.
const PAGE_W: f32 = 595.28;
const PAGE_H: f32 = 841.89;
const MARGIN: f32 = 42.0;
const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN;
/// The table never goes below this line; the footer lives under it.
const BODY_BOTTOM: f32 = PAGE_H - MARGIN - 16.0;

const TABLE_FONT: f32 = 7.0;
const TABLE_HEADER_H: f32 = 18.0;
const ROW_H: f32 = 14.0;
const CELL_PAD: f32 = 4.0;
/// Per-form rows on the summary page; the rest are summed into one "other forms" row so a
/// set with hundreds of forms cannot push the summary off the page.
const MAX_FORM_ROWS: usize = 10;
const CHART_H: f32 = 130.0;

/// Lead table columns: heading and width in points (they add up to [`CONTENT_W`]).
const COLUMNS: [(&str, f32); 7] = [
    ("Name", 86.0),
    ("Email", 112.0),
    // Room for "+33 6 12 34 56 78" and "2026-11-28 14:02" whole: a cut phone number or time
    // is useless, a cut email still identifies the lead.
    ("Phone", 70.0),
    ("Form", 49.28),
    ("Created (UTC)", 60.0),
    // "qualified · grace": where the team is with it, and who works it.
    ("Status · owner", 74.0),
    ("First contact", 60.0),
];

const INK: (u8, u8, u8) = (0x1f, 0x29, 0x37);
const MUTED: (u8, u8, u8) = (0x6b, 0x72, 0x80);
const RULE: (u8, u8, u8) = (0xd1, 0xd5, 0xdb);
const STRIPE: (u8, u8, u8) = (0xf5, 0xf6, 0xf8);
const HEADER_BG: (u8, u8, u8) = (0xe8, 0xec, 0xf2);
const CARD_BG: (u8, u8, u8) = (0xf3, 0xf5, 0xf9);
const ACCENT: (u8, u8, u8) = (0x25, 0x63, 0xeb);

struct Fonts {
    regular: Face,
    bold: Face,
}

/// Lays out the report: summary page (title, filter, totals, per-form table, per-day chart),
/// then the lead table, continued over as many pages as needed, "Page N of M" in each footer.
///
/// `leads` arrive in listing order; only a [`ReportRow`] is kept of each.
pub fn render_pdf(
    summary: &ReportSummary,
    leads: impl IntoIterator<Item = Lead>,
) -> Result<Vec<u8>, ReportError> {
    render_pdf_rows(summary, leads.into_iter().map(|l| ReportRow::from(&l)))
}

/// Like [`render_pdf`], from rows the caller collected alongside a
/// [`SummaryBuilder`](super::SummaryBuilder).
pub fn render_pdf_rows(
    summary: &ReportSummary,
    rows: impl IntoIterator<Item = ReportRow>,
) -> Result<Vec<u8>, ReportError> {
    let fonts = Fonts {
        regular: Face::load(REGULAR_TTF)?,
        bold: Face::load(BOLD_TTF)?,
    };
    // Cut every cell to its column as it arrives, so memory is bounded by what gets printed,
    // not by how long the stored answers are.
    let cells: Vec<[String; 7]> = rows
        .into_iter()
        .map(|r| {
            let mut i = 0;
            [
                r.name,
                r.email,
                r.phone,
                r.form,
                r.created,
                match r.owner.as_str() {
                    "" => r.status,
                    owner => format!("{} · {owner}", r.status),
                },
                r.first_contact,
            ]
            .map(|v| {
                let w = COLUMNS[i].1 - 2.0 * CELL_PAD;
                i += 1;
                let mut s = fonts.regular.fit(one_line(v), w, TABLE_FONT);
                s.shrink_to_fit();
                s
            })
        })
        .collect();

    let mut doc = Document::new();
    doc.set_metadata(
        Metadata::new()
            .title(summary.title.clone())
            .description(summary.filter_description.clone())
            .creator("leadstream".into())
            .creation_date(pdf_date(summary.generated_at)),
    );
    let footer_left = format!(
        "{} · generated {}",
        summary.title,
        summary.generated_at.format("%Y-%m-%d %H:%M UTC")
    );
    let footer_left = fonts
        .regular
        .fit(one_line(footer_left), CONTENT_W - 80.0, 7.5);

    let rows_per_page = ((BODY_BOTTOM - (MARGIN + 22.0) - TABLE_HEADER_H) / ROW_H).floor() as usize;

    let mut page = doc.start_page_with(page_settings());
    let mut s = page.surface();
    let mut y = draw_summary(&mut s, &fonts, summary);

    // The table starts on the summary page if a few rows fit there, else on page 2.
    y += 26.0;
    let first_rows = if cells.is_empty() {
        0
    } else {
        let fit = ((BODY_BOTTOM - y - 20.0 - TABLE_HEADER_H) / ROW_H)
            .floor()
            .max(0.0) as usize;
        if fit >= 3 {
            fit.min(cells.len())
        } else {
            0
        }
    };
    let rest = cells.len() - first_rows;
    let pages = 1 + rest.div_ceil(rows_per_page);

    if cells.is_empty() {
        heading(&mut s, &fonts, y, "Leads");
        text(
            &mut s,
            &fonts.regular,
            9.0,
            MARGIN,
            y + 22.0,
            "No leads match this filter.",
            MUTED,
        );
    } else if first_rows > 0 {
        heading(
            &mut s,
            &fonts,
            y,
            &format!("Leads ({})", group_digits(cells.len() as u64)),
        );
        draw_table(&mut s, &fonts, y + 12.0, &cells[..first_rows]);
    }
    draw_footer(&mut s, &fonts, &footer_left, 1, pages);
    s.finish();
    page.finish();

    for (i, chunk) in cells[first_rows..].chunks(rows_per_page).enumerate() {
        let mut page = doc.start_page_with(page_settings());
        let mut s = page.surface();
        let title = if i == 0 && first_rows == 0 {
            format!("Leads ({})", group_digits(cells.len() as u64))
        } else {
            "Leads (continued)".to_owned()
        };
        heading(&mut s, &fonts, MARGIN + 10.0, &title);
        draw_table(&mut s, &fonts, MARGIN + 22.0, chunk);
        draw_footer(&mut s, &fonts, &footer_left, i + 2, pages);
        s.finish();
        page.finish();
    }

    doc.finish().map_err(|e| ReportError::Pdf(e.to_string()))
}

fn page_settings() -> PageSettings {
    PageSettings::from_wh(PAGE_W, PAGE_H).expect("A4 is a valid page size")
}

fn pdf_date(t: DateTime<Utc>) -> krilla::metadata::DateTime {
    use chrono::Timelike;
    krilla::metadata::DateTime::new(t.year().clamp(0, 9999) as u16)
        .month(t.month() as u8)
        .day(t.day() as u8)
        .hour(t.hour() as u8)
        .minute(t.minute() as u8)
        .second(t.second() as u8)
        .utc_offset_hour(0)
        .utc_offset_minute(0)
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;
    use crate::report::summary::SummaryBuilder;
    use crate::report::testing::lead;

    const NAMES: [&str; 6] = [
        "Zoë Ström",
        "José Ñúñez",
        "Łukasz Żółć",
        "<script>alert(1)</script>",
        r#"=HYPERLINK("http://x","y")"#,
        "Ada Lovelace",
    ];

    fn sample_leads(n: usize) -> Vec<Lead> {
        (0..n)
            .map(|i| {
                let name = NAMES[i % NAMES.len()];
                let day = 1 + (i % 28) as u32;
                let mut l = lead(
                    i as i64,
                    Some(["Spring promo", "Winter sale — Europe", "Test drive"][i % 3]),
                    &format!("2026-11-{day:02}T{:02}:15:00Z", i % 24),
                    &[
                        ("full_name", name),
                        ("email", &format!("person{i}@example.com")),
                        ("phone_number", "+33 6 12 34 56 78"),
                    ],
                );
                l.form_id = Some(format!("{}", 900 + i % 3));
                l
            })
            .collect()
    }

    fn summary_of(leads: &[Lead]) -> ReportSummary {
        let mut b = SummaryBuilder::new();
        leads.iter().for_each(|l| b.add(l));
        b.finish(
            "Leads report",
            r#"All forms · 2026-11-01 to 2026-11-30 · search =HYPERLINK("http://x","y")"#,
            Utc::now(),
        )
    }

    fn pdftotext(pdf: &[u8]) -> Option<String> {
        // CI installs poppler-utils; a laptop without it still runs the structural checks.
        Command::new("pdftotext").arg("-v").output().ok()?;
        let dir = std::env::temp_dir().join(format!(
            "leadstream-report-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.pdf");
        std::fs::write(&path, pdf).unwrap();
        let out = Command::new("pdftotext")
            .arg("-layout")
            .arg(&path)
            .arg("-")
            .output()
            .unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert!(
            out.status.success(),
            "pdftotext failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(String::from_utf8(out.stdout).unwrap())
    }

    fn page_count(pdf: &[u8]) -> usize {
        // Page objects are plain dictionaries (krilla does not use object streams), so they can
        // be counted in the bytes: `/Type/Page` or `/Type /Page`, but not `/Type/Pages`.
        let count = |needle: &[u8]| {
            pdf.windows(needle.len() + 1)
                .filter(|w| {
                    &w[..needle.len()] == needle && !w[needle.len()].is_ascii_alphanumeric()
                })
                .count()
        };
        count(b"/Type/Page") + count(b"/Type /Page")
    }

    #[test]
    fn pdf_is_a_pdf_with_the_names_and_totals_as_text() {
        let leads = sample_leads(6);
        let summary = summary_of(&leads);
        let pdf = render_pdf(&summary, leads).unwrap();
        assert!(pdf.starts_with(b"%PDF"));
        assert!(pdf.trim_ascii_end().ends_with(b"%%EOF"));
        assert_eq!(page_count(&pdf), 1);
        assert!(
            pdf.len() < 200_000,
            "fonts should be subset, got {} bytes",
            pdf.len()
        );
        if let Some(text) = pdftotext(&pdf) {
            for needle in [
                "Leads report",
                "Zoë Ström",
                "José Ñúñez",
                "Łukasz Żółć",
                // Both cut to fit the name column; the formula in full in the filter line below.
                "<script>alert(",
                "=HYPERLINK(\"http://x",
                r#"search =HYPERLINK("http://x","y")"#,
                "All forms · 2026-11-01 to 2026-11-30",
                "TOTAL LEADS",
                "Page 1 of 1",
                "Leads (6)",
                "Spring promo",
            ] {
                assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
            }
        }
    }

    #[test]
    fn other_scripts_and_odd_characters_render() {
        // Greek and Cyrillic take the unshaped path; a decomposed accent, Arabic, CJK (not in
        // DejaVu: drawn as .notdef boxes) and control characters go through the shaper.
        let odd = [
            "Ωμέγα Дмитрий",
            "Jose\u{301} Garci\u{301}a",
            "محمد علي",
            "王小明 😀",
            "line\nbreak\ttab\0nul",
        ];
        let leads: Vec<Lead> = odd
            .iter()
            .enumerate()
            .map(|(i, n)| lead(i as i64, None, "2026-11-28T14:02:11Z", &[("full_name", n)]))
            .collect();
        let pdf = render_pdf(&summary_of(&leads), leads).unwrap();
        assert!(pdf.starts_with(b"%PDF"));
        if let Some(text) = pdftotext(&pdf) {
            assert!(text.contains("Ωμέγα Дмитрий"), "{text}");
            assert!(text.contains("line break tab nul"), "{text}");
        }
    }

    #[test]
    fn empty_set_still_makes_a_one_page_report() {
        let summary = summary_of(&[]);
        let pdf = render_pdf(&summary, Vec::new()).unwrap();
        assert_eq!(page_count(&pdf), 1);
        if let Some(text) = pdftotext(&pdf) {
            assert!(text.contains("No leads match this filter."), "{text}");
        }
    }

    #[test]
    fn five_thousand_leads_paginate() {
        let leads = sample_leads(5000);
        let summary = summary_of(&leads);
        let pdf = render_pdf(&summary, leads).unwrap();
        let pages = page_count(&pdf);
        assert!(pages > 50, "{pages} pages");
        if let Some(text) = pdftotext(&pdf) {
            assert!(text.contains("5,000"), "total missing");
            assert!(text.contains(&format!("Page {pages} of {pages}")));
            assert!(text.contains("person4999@example.com"), "last lead missing");
        }
    }
}
