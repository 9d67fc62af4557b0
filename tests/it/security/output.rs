//! Lead values written to hurt: stored and served byte for byte, neutralised in the CSV.

use std::time::{Duration, Instant};

use crate::helpers::logs::{capture_logs, lines_since};
use crate::helpers::*;

#[tokio::test]
async fn hostile_answers_are_stored_and_served_byte_for_byte() {
    let app = TestApp::spawn().await;
    let answers: Vec<(&str, &str)> = vec![
        ("full_name", "<script>alert(1)</script>"),
        ("email", r#"=HYPERLINK("http://evil","x")"#),
        ("phone_number", "+1 (555) 0100"),
        ("city", "-2+3+cmd|' /C calc'!A0"),
        ("company_name", "@SUM(1+1)*cmd|' /C calc'!A0"),
        ("job_title", "\tleading tab"),
        ("street_address", "\rleading CR\nsecond line"),
        ("comment", "\"quoted\", with comma; and \\ backslash"),
        (
            "note",
            "nul \u{0} inside, rtl \u{202e}txt.exe, emoji 🎉, Ünïcödé",
        ),
        ("html", "<img src=x onerror=alert(1)> & &amp; </textarea>"),
    ];
    let id = lead_id(5);
    app.graph.add_lead(&id, FORM_ID, 1_764_338_531, &answers);
    app.deliver(&[&id]).await;
    assert_eq!(app.wait_for_count(1, Duration::from_secs(5)).await, 1);
    let lead = app.leads("").await["leads"][0].clone();
    for (i, (name, value)) in answers.iter().enumerate() {
        assert_eq!(lead["fields"][name], *value, "{name}");
        assert_eq!(lead["field_data"][i]["name"], *name);
        assert_eq!(lead["field_data"][i]["values"][0], *value);
    }
    // The stream carries the same bytes.
    let mut sse = app.open_stream(Some(0)).await;
    let streamed = sse.leads(1, Duration::from_secs(5)).await;
    assert_eq!(streamed[0]["fields"], lead["fields"]);
}

#[tokio::test]
async fn the_csv_export_neutralises_cells_that_a_spreadsheet_would_run() {
    let app = TestApp::spawn().await;
    let answers: Vec<(&str, &str)> = vec![
        ("full_name", "<script>alert(1)</script>"),
        ("email", r#"=HYPERLINK("http://evil","x")"#),
        ("phone_number", "+1 555 0100"),
        ("city", "-2+3"),
        ("company_name", "@SUM(1+1)"),
        ("job_title", "\tTab"),
        ("street_address", "\rCR"),
        ("leading_space", " =1+1"),
        ("leading_nbsp", "\u{a0}=1+1"),
        ("leading_nul", "\u{0}=cmd|' /C calc'!A0"),
        ("fullwidth_equals", "＝1+1"),
        ("spaced_fullwidth_plus", "  ＋1"),
        ("after_a_bom", "\u{feff}@SUM(1)"),
        ("just_text", " plain text"),
    ];
    let id = lead_id(6);
    app.graph.add_lead(&id, FORM_ID, 1_764_338_531, &answers);
    app.deliver(&[&id]).await;
    assert_eq!(app.wait_for_count(1, Duration::from_secs(5)).await, 1);
    let r = app.get_authed("/api/leads.csv").await;
    assert_eq!(r.status(), 200);
    let bytes = r.bytes().await.unwrap();
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim_start_matches('\u{feff}');
    let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1, "{text}");
    // The first character that is not blank (what a spreadsheet looks at) is never a
    // formula's, unless it is the apostrophe that makes the cell text.
    let blank = |c: &char| c.is_whitespace() || c.is_control() || *c == '\u{feff}';
    for cell in headers.iter().chain(rows[0].iter()) {
        let first = cell.chars().find(|c| matches!(c, '\t' | '\r') || !blank(c));
        assert!(
            !matches!(
                first,
                Some('=' | '+' | '-' | '@' | '\t' | '\r' | '＝' | '＋' | '－' | '＠')
            ),
            "a live formula cell: {cell:?}"
        );
    }
    let cells: Vec<&str> = rows[0].iter().collect();
    for (name, value) in &answers {
        let expected = if *name == "just_text"
            || !value.contains(['=', '+', '-', '@', '\t', '\r', '＝', '＋', '＠'])
        {
            value.to_string()
        } else {
            format!("'{value}")
        };
        assert!(
            cells.contains(&expected.as_str()),
            "{name}: {expected:?} not in {cells:?}"
        );
    }
}

#[tokio::test]
async fn a_newline_in_a_form_name_or_a_graph_message_cannot_forge_a_log_line() {
    capture_logs();
    let app = TestApp::spawn().await;
    let started = Instant::now();
    let forged = "\n[2026-11-28T14:02:11Z INFO  leadstream] dashboard login";
    app.graph
        .add_form(PAGE_ID, FORM_ID, &format!("Spring{forged}"));
    // Listing the forms works; reading the form's leads is refused with a message that
    // carries a line of its own too.
    app.graph
        .fail_after(1, Failure::Refused(format!("Unsupported{forged}")), 1);
    let r = app.post_authed("/api/leads/sync").await;
    assert_eq!(r.status(), 502);
    let id = lead_id(9);
    app.graph
        .set_always(Some(Failure::Refused(format!("No such lead{forged}"))));
    app.deliver(&[&id]).await;
    app.wait_for_status(Duration::from_secs(5), |s| s["dead_letters"] == 1)
        .await;

    // Other tests log at the same time (and name forms "Spring" too): only lines with the
    // forged text are this test's.
    let lines = lines_since(started, |l| l.text.contains("[2026-11-28T14:02:11Z INFO"));
    assert!(
        lines.len() >= 2,
        "the sync and the dead letter are logged: {lines:#?}"
    );
    for l in &lines {
        assert!(!l.text.contains('\n'), "a raw newline: {:?}", l.text);
        assert!(
            l.text
                .contains("\\n[2026-11-28T14:02:11Z INFO  leadstream]"),
            "{:?}",
            l.text
        );
    }
}
