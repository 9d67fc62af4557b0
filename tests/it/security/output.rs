//! Lead values written to hurt: stored and served byte for byte, neutralised in the CSV.

use std::time::Duration;

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
    for cell in headers.iter().chain(rows[0].iter()) {
        let first = cell.chars().next();
        assert!(
            !matches!(first, Some('=' | '+' | '-' | '@' | '\t' | '\r')),
            "a live formula cell: {cell:?}"
        );
    }
    let cells: Vec<&str> = rows[0].iter().collect();
    for (name, value) in &answers {
        let expected = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{value}")
        } else {
            value.to_string()
        };
        assert!(
            cells.contains(&expected.as_str()),
            "{name}: {expected:?} not in {cells:?}"
        );
    }
}
