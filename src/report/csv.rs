//! The CSV export: one column per question seen, every cell safe to open in a spreadsheet.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::Write;

use super::{form_label, ReportError};
use crate::model::Lead;

/// The columns every CSV starts with, before one column per question.
///
/// Named like the lead JSON where the value is the same; `form` is the form's name when known,
/// else its id, as the dashboard shows it.
pub const CSV_FIXED_COLUMNS: [&str; 8] = [
    "received_at",
    "created_time",
    "page_id",
    "form",
    "ad_id",
    "status",
    "owner",
    "first_contact_at",
];

/// UTF-8 byte order mark written first in every CSV; see [`CsvExport::new`].
pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Makes a cell safe to open in a spreadsheet (CSV/formula injection).
///
/// A cell whose first non-blank character is `=`, `+`, `-` or `@` (OWASP's list), or their
/// fullwidth forms `＝＋－＠` (which some spreadsheets read as the same), or that starts with a
/// tab, carriage return or line feed, gets a leading `'`, which Excel, LibreOffice and Google
/// Sheets treat as "this is text". Blanks are skipped first because spreadsheets skip them too:
/// spaces, no-break spaces, NUL and other control characters, zero-width characters and the
/// byte order mark. The cost is that a genuine negative number such as `-5` reads back as `'-5`;
/// lead answers are text, so safety wins.
pub fn neutralise_cell(s: &str) -> Cow<'_, str> {
    let starts_a_formula = s
        .chars()
        .find(|c| matches!(c, '\t' | '\r' | '\n') || !is_blank(*c))
        .is_some_and(|c| {
            matches!(
                c,
                '=' | '+' | '-' | '@' | '\t' | '\r' | '\n' | '＝' | '＋' | '－' | '＠'
            )
        });
    if starts_a_formula {
        Cow::Owned(format!("'{s}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// What a spreadsheet skips before it looks at a cell's first character.
fn is_blank(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(c, '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}')
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
            lead.status.as_str(),
            lead.owner.as_deref().unwrap_or(""),
            lead.first_contact_at.as_deref().unwrap_or(""),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{flatten_fields, FieldData};
    use crate::report::testing::lead;

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
                "status",
                "owner",
                "first_contact_at",
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
                "new",
                "",
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
        assert_eq!(parse(&export(&[l]))[1][8], "golf, tennis");
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
        // Blanks before the formula do not hide it.
        for hidden in [
            " =1+1",
            "\u{a0}=1+1",
            "\u{0}=cmd",
            "  \u{3000}+1",
            "\u{feff}@SUM(1)",
            "\u{200b}-2",
            "\n=1",
            "＝1+1",
            " ＋1",
            "－5",
            "＠x",
        ] {
            assert_eq!(neutralise_cell(hidden), format!("'{hidden}"), "{hidden:?}");
        }
        assert_eq!(neutralise_cell("  plain"), "  plain");
        assert_eq!(neutralise_cell("\u{a0}"), "\u{a0}");
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
        assert_eq!(rows[0][9], "'=evil_question");
        assert_eq!(rows[1][3], "'=cmd|' /C calc'!A0");
        assert_eq!(
            &rows[1][8..],
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
        assert_eq!(&rows[0][8..], ["email", "full_name", "phone_number", "zip"]);
        assert_eq!(&rows[1][8..], ["a@x", "A", "", ""]);
        assert_eq!(&rows[2][8..], ["b@x", "", "'+33 1", ""]);
        assert_eq!(&rows[3][8..], ["", "C", "", "75001"]);
        assert!(rows.iter().all(|r| r.len() == 12));
    }
}
