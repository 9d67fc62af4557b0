//! CSV export and PDF report of any filtered view (`/api/leads.csv`, `/api/report.pdf`).
//!
//! Both consume leads in listing order, one at a time, so a large export never holds every
//! [`Lead`] in memory:
//!
//! - CSV: a first pass collects question names with [`QuestionSet`] (the columns must be known
//!   before the header is written), a second pass streams rows through [`CsvExport`].
//! - PDF: one pass feeds [`SummaryBuilder`] and keeps a [`ReportRow`] (five short strings) per
//!   lead; [`render_pdf_rows`] then lays out the summary and the paginated table.
//!   [`render_pdf`] does the row part for callers that already have a summary.
//!
//! Lead values are untrusted and stored verbatim (SPEC: escaping happens only on output). CSV
//! cells a spreadsheet would evaluate are neutralised ([`neutralise_cell`]); in the PDF, text is
//! only ever drawn as glyphs, so `<script>` or `=HYPERLINK(…)` are inert there.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io::Write;

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, Utc};
use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::metadata::Metadata;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::surface::Surface;
use krilla::text::{Font, GlyphId, KrillaGlyph, TextDirection};
use krilla::Document;
use skrifa::charmap::Charmap;
use skrifa::instance::{LocationRef, Size};
use skrifa::metrics::GlyphMetrics;
use skrifa::{FontRef, MetadataProvider};

use crate::model::{parse_graph_time, Lead};

/// Why an export failed. CSV and I/O errors usually mean the client went away mid-download.
#[derive(Debug)]
pub enum ReportError {
    Csv(csv::Error),
    Io(std::io::Error),
    /// The PDF writer refused the document (a bad embedded font would land here).
    Pdf(String),
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportError::Csv(e) => write!(f, "writing CSV: {e}"),
            ReportError::Io(e) => write!(f, "writing export: {e}"),
            ReportError::Pdf(e) => write!(f, "building PDF: {e}"),
        }
    }
}

impl std::error::Error for ReportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReportError::Csv(e) => Some(e),
            ReportError::Io(e) => Some(e),
            ReportError::Pdf(_) => None,
        }
    }
}

impl From<csv::Error> for ReportError {
    fn from(e: csv::Error) -> Self {
        ReportError::Csv(e)
    }
}

impl From<std::io::Error> for ReportError {
    fn from(e: std::io::Error) -> Self {
        ReportError::Io(e)
    }
}

// ---------------------------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------------------------

/// The columns every CSV starts with, before one column per question.
///
/// Named like the lead JSON where the value is the same; `form` is the form's name when known,
/// else its id, as the dashboard shows it.
pub const CSV_FIXED_COLUMNS: [&str; 5] =
    ["received_at", "created_time", "page_id", "form", "ad_id"];

/// UTF-8 byte order mark written first in every CSV; see [`CsvExport::new`].
pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Makes a cell safe to open in a spreadsheet (CSV/formula injection).
///
/// A cell starting with `=`, `+`, `-`, `@`, tab or carriage return (OWASP's list), or line feed
/// (a CR's twin, for readers that split lines before parsing quotes), gets a leading `'`, which
/// Excel, LibreOffice and Google Sheets treat as "this is text". The cost is that a genuine
/// negative number such as `-5` reads back as `'-5`; lead answers are text, so safety wins.
pub fn neutralise_cell(s: &str) -> Cow<'_, str> {
    match s.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r' | b'\n') => Cow::Owned(format!("'{s}")),
        _ => Cow::Borrowed(s),
    }
}

/// The question columns of an export: every question name seen, in order of first appearance.
///
/// Feed it every lead of the export in listing order (a first pass), then hand
/// [`QuestionSet::into_vec`] to [`CsvExport::new`]. Within a lead, questions are taken in the
/// form's order (`field_data`), so columns read like the form rather than alphabetically.
#[derive(Debug, Clone, Default)]
pub struct QuestionSet {
    order: Vec<String>,
    seen: HashSet<String>,
}

impl QuestionSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, lead: &Lead) {
        for f in &lead.field_data {
            self.insert(&f.name);
        }
        // `fields` is derived from `field_data`, but a lead saved without `field_data` would
        // otherwise lose its answers from the export.
        for name in lead.fields.keys() {
            self.insert(name);
        }
    }

    fn insert(&mut self, name: &str) {
        if !self.seen.contains(name) {
            self.seen.insert(name.to_owned());
            self.order.push(name.to_owned());
        }
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    pub fn into_vec(self) -> Vec<String> {
        self.order
    }
}

/// A CSV export being streamed to `W`, one lead at a time.
///
/// Format: UTF-8 **with a byte order mark**, CRLF line ends (RFC 4180), a header row of
/// [`CSV_FIXED_COLUMNS`] then the question names, then one row per lead. The BOM is there
/// because Excel opens a BOM-less CSV in the local ANSI code page and shows `Zoë` as `ZoÃ«`.
/// LibreOffice, Google Sheets and Python (`encoding="utf-8-sig"`) drop it by themselves; the
/// Rust `csv` reader and plain `utf-8` readers keep it, so the first header would read
/// `\u{feff}received_at`: scripts and tests strip [`UTF8_BOM`] first.
/// Every cell, headers included (question names come from the advertiser's form, and so are
/// just as untrusted), goes through [`neutralise_cell`].
pub struct CsvExport<W: Write> {
    writer: csv::Writer<W>,
    questions: Vec<String>,
}

impl<W: Write> CsvExport<W> {
    /// Writes the BOM and the header row.
    pub fn new(mut out: W, questions: Vec<String>) -> Result<Self, ReportError> {
        out.write_all(UTF8_BOM)?;
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(out);
        let header = CSV_FIXED_COLUMNS
            .iter()
            .copied()
            .chain(questions.iter().map(String::as_str));
        write_row(&mut writer, header)?;
        Ok(CsvExport { writer, questions })
    }

    /// Writes one row. Answers to questions missing from the column list are left out, and a
    /// question the lead did not answer is an empty cell.
    pub fn write_lead(&mut self, lead: &Lead) -> Result<(), ReportError> {
        let fixed = [
            lead.received_at.as_str(),
            lead.created_time.as_str(),
            lead.page_id.as_deref().unwrap_or(""),
            form_label(lead).unwrap_or(""),
            lead.ad_id.as_deref().unwrap_or(""),
        ];
        let answers = self
            .questions
            .iter()
            .map(|q| lead.fields.get(q).map(String::as_str).unwrap_or(""));
        write_row(&mut self.writer, fixed.into_iter().chain(answers))
    }

    /// Pushes buffered rows into `W` (the `csv` writer buffers about 8 KiB), e.g. before
    /// handing a chunk to the HTTP body.
    pub fn flush(&mut self) -> Result<(), ReportError> {
        self.writer.flush()?;
        Ok(())
    }

    /// Flushes and gives the writer back.
    pub fn finish(self) -> Result<W, ReportError> {
        self.writer
            .into_inner()
            .map_err(|e| ReportError::Io(e.into_error()))
    }
}

/// One record, each cell neutralised on the way; field by field so no row is ever collected.
fn write_row<'a, W: Write>(
    writer: &mut csv::Writer<W>,
    cells: impl Iterator<Item = &'a str>,
) -> Result<(), ReportError> {
    for cell in cells {
        writer.write_field(neutralise_cell(cell).as_bytes())?;
    }
    // An empty record ends the one the fields above started.
    writer.write_record(None::<&[u8]>)?;
    Ok(())
}

/// The form as the dashboard names it: its name when known, else its id.
fn form_label(lead: &Lead) -> Option<&str> {
    lead.form_name
        .as_deref()
        .filter(|n| !n.trim().is_empty())
        .or(lead.form_id.as_deref())
}

// ---------------------------------------------------------------------------------------------
// Summary
// ---------------------------------------------------------------------------------------------

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
}

/// Counts leads per form and per day in the same pass that collects the report rows.
#[derive(Debug, Clone, Default)]
pub struct SummaryBuilder {
    total: u64,
    /// Keyed by form id (falling back to the label), so two forms that share a name stay apart.
    forms: HashMap<String, (String, u64)>,
    days: BTreeMap<NaiveDate, u64>,
}

impl SummaryBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, lead: &Lead) {
        self.total += 1;
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
        let mut per_form: Vec<(String, u64)> = self.forms.into_values().collect();
        per_form.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        ReportSummary {
            title: title.into(),
            filter_description: filter_description.into(),
            generated_at,
            total: self.total,
            per_form,
            per_day: self.days.into_iter().collect(),
        }
    }
}

/// The five values the PDF table shows for one lead; all a report keeps per lead.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReportRow {
    pub name: String,
    pub email: String,
    pub phone: String,
    pub form: String,
    /// `YYYY-MM-DD HH:MM` in UTC, or the stored string if it does not parse.
    pub created: String,
}

impl From<&Lead> for ReportRow {
    fn from(lead: &Lead) -> Self {
        ReportRow {
            name: lead.display_name(),
            email: lead.email().to_owned(),
            phone: lead.phone().to_owned(),
            form: form_label(lead).unwrap_or("").to_owned(),
            created: parse_graph_time(&lead.created_time)
                .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_else(|_| lead.created_time.clone()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// PDF
// ---------------------------------------------------------------------------------------------

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

const TABLE_FONT: f32 = 8.0;
const TABLE_HEADER_H: f32 = 18.0;
const ROW_H: f32 = 14.0;
const CELL_PAD: f32 = 4.0;
/// Per-form rows on the summary page; the rest are summed into one "other forms" row so a
/// set with hundreds of forms cannot push the summary off the page.
const MAX_FORM_ROWS: usize = 10;
const CHART_H: f32 = 130.0;

/// Lead table columns: heading and width in points (they add up to [`CONTENT_W`]).
const COLUMNS: [(&str, f32); 5] = [
    ("Name", 112.0),
    ("Email", 140.0),
    // Room for "+33 6 12 34 56 78" and "2026-11-28 14:02" whole: a cut phone number or time
    // is useless, a cut email still identifies the lead.
    ("Phone", 90.0),
    ("Form", 87.28),
    ("Created (UTC)", 82.0),
];

const INK: (u8, u8, u8) = (0x1f, 0x29, 0x37);
const MUTED: (u8, u8, u8) = (0x6b, 0x72, 0x80);
const RULE: (u8, u8, u8) = (0xd1, 0xd5, 0xdb);
const STRIPE: (u8, u8, u8) = (0xf5, 0xf6, 0xf8);
const HEADER_BG: (u8, u8, u8) = (0xe8, 0xec, 0xf2);
const CARD_BG: (u8, u8, u8) = (0xf3, 0xf5, 0xf9);
const ACCENT: (u8, u8, u8) = (0x25, 0x63, 0xeb);

/// One embedded face: the handle krilla draws with, plus the metrics we measure with, so that
/// truncation uses the same advances the PDF viewer will.
struct Face {
    font: Font,
    charmap: Charmap<'static>,
    metrics: GlyphMetrics<'static>,
    units_per_em: f32,
}

impl Face {
    fn load(bytes: &'static [u8]) -> Result<Face, ReportError> {
        let bad = || ReportError::Pdf("embedded font cannot be read".into());
        let font = Font::new(bytes.into(), 0).ok_or_else(bad)?;
        let font_ref = FontRef::new(bytes).map_err(|_| bad())?;
        Ok(Face {
            charmap: font_ref.charmap(),
            metrics: font_ref.glyph_metrics(Size::unscaled(), LocationRef::default()),
            units_per_em: font.units_per_em(),
            font,
        })
    }

    fn advance(&self, c: char) -> f32 {
        let glyph = self.charmap.map(c).unwrap_or_default();
        self.metrics.advance_width(glyph).unwrap_or(0.0)
    }

    /// One glyph per character at its plain advance, when that is all the text needs: scripts
    /// without joining, reordering or mark placement, every character in the font. A table of
    /// 5,000 leads is 25,000 cells, and full shaping (krilla's `draw_text` re-parses the font's
    /// layout tables for every call) was most of the render time. Anything else is shaped.
    fn simple_glyphs(&self, text: &str) -> Option<Vec<KrillaGlyph>> {
        text.char_indices()
            .map(|(i, c)| {
                // Latin, Greek, Cyrillic, punctuation and symbols; not combining marks, RTL
                // scripts, or the invisible bidi and joiner controls in U+2000–U+206F.
                let simple = matches!(c,
                    '\u{20}'..='\u{2FF}'
                        | '\u{370}'..='\u{52F}'
                        | '\u{1E00}'..='\u{1FFF}'
                        | '\u{2010}'..='\u{2027}'
                        | '\u{2030}'..='\u{205F}'
                        | '\u{2070}'..='\u{2BFF}'
                );
                let glyph = self.charmap.map(c).filter(|_| simple)?;
                let advance = self.metrics.advance_width(glyph)? / self.units_per_em;
                let id = GlyphId::new(glyph.to_u32());
                Some(KrillaGlyph::new(
                    id,
                    advance,
                    0.0,
                    0.0,
                    0.0,
                    i..i + c.len_utf8(),
                    None,
                ))
            })
            .collect()
    }

    /// Width in points. Kerning is ignored, which for DejaVu only ever over-estimates a little,
    /// so fitted text never overflows.
    fn width(&self, text: &str, size: f32) -> f32 {
        text.chars().map(|c| self.advance(c)).sum::<f32>() * size / self.units_per_em
    }

    /// `text` cut to `max_width` points with a trailing ellipsis, unchanged if it fits.
    fn fit(&self, text: String, max_width: f32, size: f32) -> String {
        if self.width(&text, size) <= max_width {
            return text;
        }
        let budget = max_width * self.units_per_em / size - self.advance('…');
        let mut used = 0.0;
        let mut cut = 0;
        for (i, c) in text.char_indices() {
            used += self.advance(c);
            if used > budget {
                break;
            }
            cut = i + c.len_utf8();
        }
        // Don't strand an accent: back off to before the base letter a combining mark sits on.
        while cut > 0 && text[cut..].chars().next().is_some_and(is_combining_mark) {
            cut = text[..cut].char_indices().next_back().map_or(0, |(i, _)| i);
        }
        let mut out = text[..cut].trim_end().to_owned();
        out.push('…');
        out
    }
}

/// Combining diacritical marks (the common blocks); enough to keep `é` written as `e` + U+0301
/// together when truncating.
fn is_combining_mark(c: char) -> bool {
    matches!(c, '\u{0300}'..='\u{036F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}' | '\u{20D0}'..='\u{20FF}' | '\u{FE20}'..='\u{FE2F}')
}

/// Control characters (newlines, tabs, NUL…) would draw as boxes or nothing; a table cell is
/// one line, so they become spaces.
fn one_line(text: String) -> String {
    if text.chars().any(char::is_control) {
        text.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    } else {
        text
    }
}

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

/// Like [`render_pdf`], from rows the caller collected alongside a [`SummaryBuilder`].
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
    let cells: Vec<[String; 5]> = rows
        .into_iter()
        .map(|r| {
            let mut i = 0;
            [r.name, r.email, r.phone, r.form, r.created].map(|v| {
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

/// Draws title, filter, totals, per-form table and chart; returns the y below them.
fn draw_summary(s: &mut Surface, fonts: &Fonts, summary: &ReportSummary) -> f32 {
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
    y += 46.0 + 30.0;

    heading(s, fonts, y, "Leads per form");
    y += 8.0;
    y = draw_form_table(s, fonts, y, summary);
    y += 30.0;

    y = draw_chart(s, fonts, y, &summary.per_day);
    y
}

fn draw_form_table(s: &mut Surface, fonts: &Fonts, top: f32, summary: &ReportSummary) -> f32 {
    let count_w = 70.0;
    let share_w = 150.0;
    let name_w = CONTENT_W - count_w - share_w;
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
    text(
        s,
        &fonts.bold,
        TABLE_FONT,
        MARGIN + name_w + count_w + 12.0,
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
        let share = *n as f32 / total;
        let bar_x = MARGIN + name_w + count_w + 12.0;
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

fn draw_chart(s: &mut Surface, fonts: &Fonts, top: f32, per_day: &[(NaiveDate, u64)]) -> f32 {
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

/// Header row plus `rows`, starting at `top`.
fn draw_table(s: &mut Surface, fonts: &Fonts, top: f32, rows: &[[String; 5]]) {
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

fn draw_footer(s: &mut Surface, fonts: &Fonts, left: &str, page: usize, pages: usize) {
    let y = PAGE_H - MARGIN + 6.0;
    hline(s, MARGIN, MARGIN + CONTENT_W, y - 10.0, 0.5, RULE);
    text(s, &fonts.regular, 7.5, MARGIN, y, left, MUTED);
    let n = format!("Page {page} of {pages}");
    text_right(s, &fonts.regular, 7.5, MARGIN + CONTENT_W, y, &n, MUTED);
}

fn heading(s: &mut Surface, fonts: &Fonts, baseline: f32, title: &str) {
    text(s, &fonts.bold, 11.0, MARGIN, baseline, title, INK);
}

/// Draws one line with its baseline at `y`.
fn text(s: &mut Surface, face: &Face, size: f32, x: f32, y: f32, value: &str, color: (u8, u8, u8)) {
    if value.is_empty() {
        return;
    }
    s.set_stroke(None);
    s.set_fill(Some(Fill {
        paint: rgb::Color::new(color.0, color.1, color.2).into(),
        ..Fill::default()
    }));
    let start = Point::from_xy(x, y);
    match face.simple_glyphs(value) {
        Some(glyphs) => s.draw_glyphs(start, &glyphs, face.font.clone(), value, size, false),
        None => s.draw_text(
            start,
            face.font.clone(),
            size,
            value,
            false,
            TextDirection::Auto,
        ),
    }
}

fn text_right(
    s: &mut Surface,
    face: &Face,
    size: f32,
    right: f32,
    y: f32,
    value: &str,
    color: (u8, u8, u8),
) {
    let w = face.width(value, size);
    text(s, face, size, right - w, y, value, color);
}

fn fill_rect(s: &mut Surface, x: f32, y: f32, w: f32, h: f32, color: (u8, u8, u8)) {
    let Some(rect) = Rect::from_xywh(x, y, w, h) else {
        return;
    };
    let mut pb = PathBuilder::new();
    pb.push_rect(rect);
    if let Some(path) = pb.finish() {
        s.set_stroke(None);
        s.set_fill(Some(Fill {
            paint: rgb::Color::new(color.0, color.1, color.2).into(),
            ..Fill::default()
        }));
        s.draw_path(&path);
    }
}

fn line(s: &mut Surface, from: (f32, f32), to: (f32, f32), width: f32, color: (u8, u8, u8)) {
    let mut pb = PathBuilder::new();
    pb.move_to(from.0, from.1);
    pb.line_to(to.0, to.1);
    if let Some(path) = pb.finish() {
        s.set_fill(None);
        s.set_stroke(Some(Stroke {
            paint: rgb::Color::new(color.0, color.1, color.2).into(),
            width,
            ..Stroke::default()
        }));
        s.draw_path(&path);
        s.set_stroke(None);
    }
}

fn hline(s: &mut Surface, x1: f32, x2: f32, y: f32, width: f32, color: (u8, u8, u8)) {
    line(s, (x1, y), (x2, y), width, color);
}

fn vline(s: &mut Surface, x: f32, y1: f32, y2: f32, width: f32, color: (u8, u8, u8)) {
    line(s, (x, y1), (x, y2), width, color);
}

/// Greedy word wrap to at most `max_lines`; the last line gets an ellipsis if text remains.
fn wrap(face: &Face, text: &str, width: f32, size: f32, max_lines: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut words = text.split(' ').filter(|w| !w.is_empty()).peekable();
    while let Some(word) = words.next() {
        let candidate = if current.is_empty() {
            word.to_owned()
        } else {
            format!("{current} {word}")
        };
        if face.width(&candidate, size) <= width || current.is_empty() {
            current = candidate;
            continue;
        }
        lines.push(std::mem::take(&mut current));
        current = word.to_owned();
        if lines.len() == max_lines - 1 {
            // Last line: everything left, cut to fit.
            let rest: Vec<&str> = std::iter::once(word).chain(words.by_ref()).collect();
            current = rest.join(" ");
            break;
        }
    }
    if !current.is_empty() || lines.is_empty() {
        lines.push(current);
    }
    lines
        .into_iter()
        .map(|l| face.fit(l, width, size))
        .collect()
}

/// `12345` → `12,345`: totals are read by people.
fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{flatten_fields, FieldData};
    use std::process::Command;

    fn lead(id: i64, form: Option<&str>, created: &str, answers: &[(&str, &str)]) -> Lead {
        let field_data: Vec<FieldData> = answers
            .iter()
            .map(|(n, v)| FieldData {
                name: (*n).into(),
                values: vec![(*v).into()],
            })
            .collect();
        Lead {
            page_id: Some("111".into()),
            form_id: Some("222".into()),
            form_name: form.map(Into::into),
            created_time: created.into(),
            received_at: "2026-11-28T14:02:12.345Z".into(),
            fields: flatten_fields(&field_data),
            field_data,
            ..Lead::sample(id)
        }
    }

    fn export(leads: &[Lead]) -> String {
        let mut qs = QuestionSet::new();
        leads.iter().for_each(|l| qs.add(l));
        let mut csv = CsvExport::new(Vec::new(), qs.into_vec()).unwrap();
        for l in leads {
            csv.write_lead(l).unwrap();
        }
        let bytes = csv.finish().unwrap();
        assert!(
            bytes.starts_with(UTF8_BOM),
            "Excel needs the BOM to read UTF-8"
        );
        String::from_utf8(bytes[UTF8_BOM.len()..].to_vec()).unwrap()
    }

    fn parse(csv_text: &str) -> Vec<Vec<String>> {
        csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(csv_text.as_bytes())
            .records()
            .map(|r| r.unwrap().iter().map(String::from).collect())
            .collect()
    }

    #[test]
    fn csv_round_trips_with_header_and_accents() {
        let leads = [lead(
            1,
            Some("Spring promo"),
            "2026-11-28T14:02:11Z",
            &[
                ("full_name", "Zoë Ström"),
                ("email", "zoe@example.com"),
                ("city", "Łódź, Ñuñoa"),
            ],
        )];
        let rows = parse(&export(&leads));
        assert_eq!(
            rows[0],
            [
                "received_at",
                "created_time",
                "page_id",
                "form",
                "ad_id",
                "full_name",
                "email",
                "city"
            ]
        );
        assert_eq!(
            rows[1],
            [
                "2026-11-28T14:02:12.345Z",
                "2026-11-28T14:02:11Z",
                "111",
                "Spring promo",
                "",
                "Zoë Ström",
                "zoe@example.com",
                "Łódź, Ñuñoa"
            ]
        );
    }

    #[test]
    fn csv_form_column_falls_back_to_form_id() {
        let rows = parse(&export(&[lead(1, None, "2026-11-28T14:02:11Z", &[])]));
        assert_eq!(rows[1][3], "222");
    }

    #[test]
    fn csv_joins_multiple_values_like_the_dashboard() {
        let mut l = lead(1, None, "2026-11-28T14:02:11Z", &[]);
        l.field_data = vec![FieldData {
            name: "interests".into(),
            values: vec!["golf".into(), "tennis".into()],
        }];
        l.fields = flatten_fields(&l.field_data);
        assert_eq!(parse(&export(&[l]))[1][5], "golf, tennis");
    }

    #[test]
    fn formula_looking_cells_get_an_apostrophe() {
        assert_eq!(
            neutralise_cell(r#"=HYPERLINK("http://x","y")"#),
            r#"'=HYPERLINK("http://x","y")"#
        );
        assert_eq!(neutralise_cell("-5"), "'-5");
        assert_eq!(neutralise_cell("+1 555"), "'+1 555");
        assert_eq!(neutralise_cell("@x"), "'@x");
        assert_eq!(neutralise_cell("\tx"), "'\tx");
        assert_eq!(neutralise_cell("\rx"), "'\rx");
        assert!(matches!(neutralise_cell("Zoë"), Cow::Borrowed("Zoë")));
        assert_eq!(neutralise_cell(""), "");
        assert_eq!(neutralise_cell("a=b"), "a=b");
    }

    #[test]
    fn csv_neutralises_values_and_question_names() {
        let leads = [lead(
            1,
            Some("=cmd|' /C calc'!A0"),
            "2026-11-28T14:02:11Z",
            &[
                ("full_name", r#"=HYPERLINK("http://x","y")"#),
                ("=evil_question", "-5"),
                ("note", "@x"),
                ("tab", "\tx"),
                ("cr", "\rx"),
                ("html", "<script>alert(1)</script>"),
            ],
        )];
        let rows = parse(&export(&leads));
        assert_eq!(rows[0][6], "'=evil_question");
        assert_eq!(rows[1][3], "'=cmd|' /C calc'!A0");
        assert_eq!(
            &rows[1][5..],
            [
                r#"'=HYPERLINK("http://x","y")"#,
                "'-5",
                "'@x",
                "'\tx",
                "'\rx",
                "<script>alert(1)</script>"
            ]
        );
    }

    #[test]
    fn csv_columns_are_the_union_of_questions_in_first_seen_order() {
        let leads = [
            lead(
                1,
                None,
                "2026-11-28T14:02:11Z",
                &[("email", "a@x"), ("full_name", "A")],
            ),
            lead(
                2,
                None,
                "2026-11-28T14:02:11Z",
                &[("phone_number", "+33 1"), ("email", "b@x")],
            ),
            lead(
                3,
                None,
                "2026-11-28T14:02:11Z",
                &[("zip", "75001"), ("full_name", "C")],
            ),
        ];
        let rows = parse(&export(&leads));
        assert_eq!(&rows[0][5..], ["email", "full_name", "phone_number", "zip"]);
        assert_eq!(&rows[1][5..], ["a@x", "A", "", ""]);
        assert_eq!(&rows[2][5..], ["b@x", "", "'+33 1", ""]);
        assert_eq!(&rows[3][5..], ["", "C", "", "75001"]);
        assert!(rows.iter().all(|r| r.len() == 9));
    }

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
    fn axis_is_round() {
        assert_eq!(nice_axis(0), (1, 1));
        assert_eq!(nice_axis(3), (3, 1));
        assert_eq!(nice_axis(37), (40, 10));
        assert_eq!(nice_axis(1234), (1500, 500));
    }

    #[test]
    fn truncation_uses_glyph_widths_and_keeps_accents_whole() {
        let face = Face::load(REGULAR_TTF).unwrap();
        assert_eq!(face.fit("Zoë".into(), 100.0, 8.0), "Zoë");
        let long = "W".repeat(60);
        let cut = face.fit(long, 100.0, 8.0);
        assert!(
            cut.ends_with('…') && face.width(&cut, 8.0) <= 100.0,
            "{cut}"
        );
        // 'i' is far narrower than 'W', so more of them fit.
        let narrow = face.fit("i".repeat(200), 100.0, 8.0);
        assert!(narrow.chars().count() > cut.chars().count() * 2);
        // "Jose\u{301}" repeated: never cut between the e and its accent.
        let decomposed = "Jose\u{301} ".repeat(20);
        let cut = face.fit(decomposed, 60.0, 8.0);
        assert!(!cut.trim_end_matches('…').ends_with('e'), "{cut:?}");
    }

    #[test]
    fn digits_are_grouped() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1000), "1,000");
        assert_eq!(group_digits(100000), "100,000");
        assert_eq!(group_digits(1234567), "1,234,567");
    }

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
                "<script>alert(1)</script>",
                // Cut to fit the name column; in full in the filter line below.
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
