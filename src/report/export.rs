//! Exports of a filtered view, straight from the store: the CSV as a stream of chunks, the
//! PDF as one document.
//!
//! Both walk the matching rows on a blocking thread, one row in memory at a time. The CSV is
//! streamed to the client as it is written (two passes: the first collects the question
//! columns before the answer starts, the second writes rows), so 100,000 leads never sit in
//! memory. The PDF keeps only
//! the five short cells per lead that its table prints.

use std::convert::Infallible;
use std::io::Write;

use bytes::Bytes;
use chrono::Utc;
use futures_util::Stream;
use tokio::sync::mpsc;

use super::{render_pdf_rows, CsvExport, QuestionSet, ReportError, ReportRow, SummaryBuilder};
use crate::model::{LeadFilter, SortKey};
use crate::store::{Store, StoreError, WalkError};

/// The CSV of the leads matching `filter`, chunk by chunk as it is written. A client that
/// reads slowly slows the writing down; one that goes away stops it.
///
/// The columns are read first, before anything is answered, so a database that fails there
/// gets an ordinary error answer. Once rows are on their way, a failure can no longer change
/// the status: the stream then ends with an error, which aborts the HTTP body (no last chunk,
/// the connection closed), so the client sees a broken download rather than a short file that
/// looks complete.
pub async fn csv(
    store: Store,
    filter: LeadFilter,
) -> Result<impl Stream<Item = Result<Bytes, ExportBroke>> + Send + 'static, String> {
    let questions = store
        .each_lead(filter.clone(), QuestionSet::new(), |questions, lead| {
            questions.add(&lead);
            Ok::<(), Infallible>(())
        })
        .await
        .map_err(|e| StoreError::from(e).to_string())?;
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, ExportBroke>>(4);
    tokio::spawn(async move {
        if let Err(e) = write_csv(&store, filter, questions, tx.clone()).await {
            log::warn!("CSV export stopped: {e}");
            // Gone already if the client left; otherwise this ends the body with an error.
            let _ = tx.send(Err(ExportBroke)).await;
        }
    });
    Ok(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

/// An export that broke off after its first bytes (the cause is in the log, not the body).
#[derive(Debug)]
pub struct ExportBroke;

impl std::fmt::Display for ExportBroke {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the export broke off; see the server log")
    }
}

impl std::error::Error for ExportBroke {}

/// Chunks of CSV sent to the client while the blocking thread writes; the bounded channel
/// makes a slow client slow the writer down instead of filling memory.
struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, ExportBroke>>,
    buf: Vec<u8>,
}

const CSV_CHUNK: usize = 64 * 1024;

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CSV_CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

/// Runs `f` on the blocking pool: whatever writes to a [`ChannelWriter`] may block.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ReportError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(out) => out.map_err(|e| e.to_string()),
        Err(e) => Err(format!("export task failed: {e}")),
    }
}

/// The rows, after the header of `questions`. A lead saved since the columns were read may
/// have a question without a column; its other answers are still written. Everything that
/// writes runs on a blocking thread, since a slow client makes the writer wait.
async fn write_csv(
    store: &Store,
    filter: LeadFilter,
    questions: QuestionSet,
    tx: mpsc::Sender<Result<Bytes, ExportBroke>>,
) -> Result<(), String> {
    let writer = ChannelWriter {
        tx,
        buf: Vec::new(),
    };
    let out = blocking(move || CsvExport::new(writer, questions.into_vec())).await?;
    let (out, rows) = store
        .each_lead(filter, (out, 0u64), |(out, rows), lead| {
            *rows += 1;
            out.write_lead(&lead)
        })
        .await
        .map_err(|e| match e {
            WalkError::Store(e) => e.to_string(),
            WalkError::Visitor(e) => e.to_string(),
        })?;
    blocking(move || Ok(out.finish()?.flush()?)).await?;
    log::info!("CSV export of {rows} leads");
    Ok(())
}

/// The PDF of the leads matching `filter`, and how many there were.
pub async fn pdf(store: &Store, filter: LeadFilter) -> Result<(Vec<u8>, u64), String> {
    let (summary, rows) = store
        .each_lead(
            filter.clone(),
            (SummaryBuilder::new(), Vec::new()),
            |(summary, rows), lead| {
                summary.add(&lead);
                rows.push(ReportRow::from(&lead));
                Ok::<(), Infallible>(())
            },
        )
        .await
        .map_err(|e| StoreError::from(e).to_string())?;
    let form_name = match &filter.form_id {
        Some(form_id) => store
            .form_name(form_id.clone())
            .await
            .map_err(|e| e.to_string())?,
        None => None,
    };
    let summary = summary.finish(
        "Leads report",
        describe(&filter, form_name.as_deref()),
        Utc::now(),
    );
    let total = summary.total;
    let pdf = tokio::task::spawn_blocking(move || render_pdf_rows(&summary, rows))
        .await
        .map_err(|e| format!("report task failed: {e}"))?
        .map_err(|e| format!("PDF rendering failed: {e}"))?;
    Ok((pdf, total))
}

/// The filter in words, for the report's first page: "Search “ada” · Form: Spring open day ·
/// from 2026-11-01 to 2026-11-30 · sorted by name".
pub fn describe(f: &LeadFilter, form_name: Option<&str>) -> String {
    let mut parts = Vec::new();
    if let Some(q) = &f.q {
        parts.push(format!("Search “{q}”"));
    }
    if let Some(form) = &f.form_id {
        parts.push(match form_name {
            Some(n) => format!("Form: {n} ({form})"),
            None => format!("Form: {form}"),
        });
    }
    if let Some(p) = &f.page_id {
        parts.push(format!("Page: {p}"));
    }
    if let Some(a) = &f.ad_id {
        parts.push(format!("Ad: {a}"));
    }
    let day = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0).map_or_else(
            || t.to_string(),
            |d| d.format("%Y-%m-%d %H:%M UTC").to_string(),
        )
    };
    match (f.since, f.until) {
        (Some(s), Some(u)) => parts.push(format!("Created from {} to {}", day(s), day(u))),
        (Some(s), None) => parts.push(format!("Created since {}", day(s))),
        (None, Some(u)) => parts.push(format!("Created until {}", day(u))),
        (None, None) => parts.push("All dates".to_string()),
    }
    if f.q.is_none() && f.form_id.is_none() && f.page_id.is_none() && f.ad_id.is_none() {
        parts.insert(0, "All leads".to_string());
    }
    parts.push(
        match (f.sort, f.ascending) {
            (SortKey::Name, true) => "sorted by name, A to Z",
            (SortKey::Name, false) => "sorted by name, Z to A",
            (SortKey::CreatedTime, true) => "sorted by time created, oldest first",
            (SortKey::CreatedTime, false) => "sorted by time created, newest first",
            (SortKey::ReceivedAt, true) => "sorted by time received, oldest first",
            (SortKey::ReceivedAt, false) => "sorted by time received, newest first",
        }
        .to_string(),
    );
    parts.join(" · ")
}
