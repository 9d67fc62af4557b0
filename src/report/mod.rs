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
//! [`export`] runs both over the store for a filtered view; [`csv`], [`summary`] and [`pdf`]
//! know nothing of where the leads come from.
//!
//! Lead values are untrusted and stored verbatim (docs/api.md: escaping happens only on output).
//! CSV cells a spreadsheet would evaluate are neutralised ([`neutralise_cell`]); in the PDF, text
//! is only ever drawn as glyphs, so `<script>` or `=HYPERLINK(…)` are inert there.

pub mod csv;
pub mod export;
pub mod pdf;
pub mod summary;
#[cfg(test)]
mod testing;

use std::fmt;

use crate::model::Lead;
pub use csv::{neutralise_cell, CsvExport, QuestionSet, CSV_FIXED_COLUMNS, UTF8_BOM};
pub use pdf::{render_pdf, render_pdf_rows};
pub use summary::{ReportRow, ReportSummary, SummaryBuilder};

/// Why an export failed. CSV and I/O errors usually mean the client went away mid-download.
#[derive(Debug)]
pub enum ReportError {
    Csv(::csv::Error),
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

impl From<::csv::Error> for ReportError {
    fn from(e: ::csv::Error) -> Self {
        ReportError::Csv(e)
    }
}

impl From<std::io::Error> for ReportError {
    fn from(e: std::io::Error) -> Self {
        ReportError::Io(e)
    }
}

/// The form as the dashboard names it: its name when known, else its id.
fn form_label(lead: &Lead) -> Option<&str> {
    lead.form_name
        .as_deref()
        .filter(|n| !n.trim().is_empty())
        .or(lead.form_id.as_deref())
}
