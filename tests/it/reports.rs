//! CSV and PDF exports of a filtered view, through the real routes.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::*;

const SPRING: &str = "333333333333333";
const QUOTE: &str = "444444444444444";

/// Saves leads through the real path (Graph → sync → store) and returns the app.
async fn app_with_leads() -> TestApp {
    let app = TestApp::spawn().await;
    app.graph.add_form(PAGE_ID, SPRING, "Spring open day");
    app.graph.add_form(PAGE_ID, QUOTE, "Free quote");
    // (lead id, form, name, created unix seconds, answers beyond name/email/phone)
    type Person<'a> = (&'a str, &'a str, &'a str, i64, &'a [(&'a str, &'a str)]);
    let people: &[Person] = &[
        (
            "1000000000000001",
            SPRING,
            "Zoë Ström",
            1_764_000_000,
            &[("preferred_date", "Saturday")],
        ),
        ("1000000000000002", SPRING, "José Núñez", 1_764_100_000, &[]),
        (
            "1000000000000003",
            QUOTE,
            "=HYPERLINK(\"http://evil\",\"x\")",
            1_764_200_000,
            &[("budget", "-5"), ("notes", "<script>alert(1)</script>")],
        ),
        (
            "1000000000000004",
            QUOTE,
            "Łukasz Żółć",
            1_764_300_000,
            &[("budget", "@SUM(A1)")],
        ),
    ];
    for (id, form, name, t, extra) in people {
        // One hostile email, so the PDF table (name, email, phone, form, time) must print it.
        let email = if *form == QUOTE && name.starts_with('=') {
            "<script>alert(1)</script>".to_string()
        } else {
            format!("{}@example.com", &id[12..])
        };
        let mut fields = vec![
            ("full_name", *name),
            ("email", email.as_str()),
            ("phone_number", "+44 20 7946 0000"),
        ];
        fields.extend_from_slice(extra);
        app.graph.add_lead(id, form, *t, &fields);
    }
    let r = app.post_authed("/api/leads/sync").await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.lead_count().await, 4);
    app
}

async fn csv_rows(app: &TestApp, query: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let r = app.get_authed(&format!("/api/leads.csv?{query}")).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("attachment"));
    let body = r.bytes().await.unwrap();
    let body = body
        .strip_prefix(b"\xEF\xBB\xBF".as_slice())
        .expect("a UTF-8 BOM for Excel");
    let mut reader = csv::Reader::from_reader(body);
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect();
    (header, rows)
}

fn col(header: &[String], name: &str) -> usize {
    header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
}

#[tokio::test]
async fn csv_round_trips_with_accents_question_union_and_neutralised_formulas() {
    let app = app_with_leads().await;
    let (header, rows) = csv_rows(&app, "sort=created_time&order=asc").await;
    assert_eq!(
        &header[..8],
        [
            "received_at",
            "created_time",
            "page_id",
            "form",
            "ad_id",
            "status",
            "owner",
            "first_contact_at"
        ]
    );
    for q in [
        "full_name",
        "email",
        "phone_number",
        "preferred_date",
        "budget",
        "notes",
    ] {
        col(&header, q);
    }
    assert_eq!(rows.len(), 4);
    let name = col(&header, "full_name");
    assert_eq!(rows[0][name], "Zoë Ström");
    assert_eq!(rows[1][name], "José Núñez");
    assert_eq!(
        rows[2][name], "'=HYPERLINK(\"http://evil\",\"x\")",
        "formula neutralised"
    );
    assert_eq!(rows[3][name], "Łukasz Żółć");
    assert_eq!(rows[2][col(&header, "budget")], "'-5");
    assert_eq!(rows[3][col(&header, "budget")], "'@SUM(A1)");
    assert_eq!(
        rows[2][col(&header, "notes")],
        "<script>alert(1)</script>",
        "CSV is data, not HTML"
    );
    assert_eq!(
        rows[1][col(&header, "budget")],
        "",
        "a lead without the question has an empty cell"
    );
    assert_eq!(rows[0][col(&header, "form")], "Spring open day");
    assert_eq!(
        rows[0][col(&header, "created_time")],
        "2025-11-24T16:00:00Z"
    );

    // The API still holds the values verbatim: escaping happens only on output.
    let v = app.leads("q=hyperlink").await;
    assert_eq!(
        v["leads"][0]["fields"]["full_name"],
        "=HYPERLINK(\"http://evil\",\"x\")"
    );
}

#[tokio::test]
async fn csv_honours_the_same_filters_as_the_list() {
    let app = app_with_leads().await;
    let (_, rows) = csv_rows(&app, &format!("form_id={QUOTE}")).await;
    assert_eq!(rows.len(), 2);
    let (header, rows) = csv_rows(&app, "q=zo%C3%AB").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][col(&header, "full_name")], "Zoë Ström");
    let (_, rows) = csv_rows(&app, "since=1764050000&until=2025-11-27").await;
    assert_eq!(rows.len(), 2, "since and until bound created_time");
    let r = app.get_authed("/api/leads.csv?sort=price").await;
    assert_eq!(r.status(), 400);
}

pub(crate) fn pdftotext(pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = Command::new("pdftotext")
        .args(["-layout", path.to_str().unwrap(), "-"])
        .output()
        .expect("pdftotext (Debian's poppler-utils; .ci/run installs it) must be installed");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

async fn pdf(app: &TestApp, query: &str) -> Vec<u8> {
    let r = app.get_authed(&format!("/api/report.pdf?{query}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    let body = r.bytes().await.unwrap().to_vec();
    assert!(body.starts_with(b"%PDF"), "a PDF");
    body
}

#[tokio::test]
async fn pdf_report_names_the_people_the_totals_and_the_filter() {
    let app = app_with_leads().await;
    let text = pdftotext(&pdf(&app, "").await);
    for needle in [
        "Leads report",
        "Zoë Ström",
        "José Núñez",
        "Łukasz Żółć",
        "Spring open day",
        "Free quote",
        "<script>",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    assert!(text.contains("All leads"), "{text}");
    assert!(text.contains('4'), "total");

    let text = pdftotext(&pdf(&app, &format!("form_id={SPRING}")).await);
    assert!(text.contains("Zoë Ström") && text.contains("José Núñez"));
    assert!(!text.contains("Łukasz"), "filtered out:\n{text}");
    assert!(text.contains("Form: Spring open day"), "{text}");
}

#[tokio::test]
async fn five_thousand_leads_make_a_multi_page_report() {
    let app = TestApp::spawn().await;
    app.graph.add_form(PAGE_ID, SPRING, "Spring open day");
    app.graph.state.lock().unwrap().page_size = 500;
    for i in 0..5000u64 {
        let id = lead_id(i);
        let name = format!("Person {i}");
        app.graph.add_lead(
            &id,
            SPRING,
            1_764_000_000 + i as i64 * 60,
            &[("full_name", &name), ("email", "p@example.com")],
        );
    }
    let r: serde_json::Value = app.post_json("/api/leads/sync").await;
    assert_eq!(r, json!({"forms": 1, "fetched": 5000, "new": 5000}));
    let started = Instant::now();
    let body = pdf(&app, "").await;
    let took = started.elapsed();
    let text = pdftotext(&body);
    let pages = text.matches('\u{c}').count();
    assert!(pages > 50, "5,000 rows need many pages, got {pages}");
    assert!(text.contains("Person 4999") && text.contains("Person 0"));
    assert!(text.contains("5,000") || text.contains("5000"), "the total");
    // Not a benchmark (that is in the README), just a guard against a pathological regression.
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

/// Leads written straight into the database, each with a long answer: `n` of them make a CSV
/// of about `n` × `answer_len` bytes without a trip through Graph.
fn plant_big_leads(app: &TestApp, n: usize, answer_len: usize) {
    let mut c = crate::helpers::db::db(app);
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    let tx = c.transaction().unwrap();
    let answer = "x".repeat(answer_len);
    let field_data = json!([{"name": "notes", "values": [answer]}]).to_string();
    for i in 0..n {
        tx.execute(
            "INSERT INTO leads (leadgen_id, created_time, created_ts, received_at, received_ms,
                                source, name, field_data, search_text)
             VALUES (?1, '2026-11-28T12:00:00Z', 1764331200, '2026-11-28T12:00:00.000Z',
                     1764331200000, 'sync', 'Big', ?2, 'big')",
            rusqlite::params![
                format!("{}", 7_000_000_000_000_000u64 + i as u64),
                field_data
            ],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

/// Reads what the connection has next onto `buf`; true at the end of the connection.
async fn read_more(conn: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> bool {
    use tokio::io::AsyncReadExt;
    let mut scratch = vec![0u8; 16 * 1024];
    let n = tokio::time::timeout(Duration::from_secs(60), conn.read(&mut scratch))
        .await
        .expect("the server neither sent more nor closed")
        .unwrap();
    buf.extend_from_slice(&scratch[..n]);
    n == 0
}

/// How a chunked answer ended.
#[derive(Debug, PartialEq)]
enum Ending {
    /// The last chunk (`0\r\n\r\n`) arrived: a complete body.
    LastChunk { body_bytes: usize },
    /// The connection closed without it: a body cut off.
    CutOff { body_bytes: usize },
}

/// Sends `GET path` over a raw connection with a tiny receive buffer, reads the head and the
/// first `then_after` body bytes, calls `meanwhile`, then reads on until the last chunk or the
/// end of the connection.
async fn raw_chunked_get(
    app: &TestApp,
    path: &str,
    then_after: usize,
    meanwhile: impl FnOnce(),
) -> Ending {
    use tokio::io::AsyncWriteExt;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    // A client that reads slowly: the server cannot run far ahead of what was read.
    socket.set_recv_buffer_size(4096).unwrap();
    let addr: std::net::SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    let mut conn = socket.connect(addr).await.unwrap();
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {DASHBOARD_TOKEN}\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();

    let mut buf: Vec<u8> = Vec::new();
    let mut eof = false;
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        assert!(
            !read_more(&mut conn, &mut buf).await,
            "closed before the head"
        );
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    let mut body = buf.split_off(head_end);
    let mut meanwhile = Some(meanwhile);
    // Decodes chunks as they come: size line, data, CRLF.
    let mut pos = 0;
    let mut body_bytes = 0;
    loop {
        if body_bytes >= then_after {
            if let Some(f) = meanwhile.take() {
                f();
            }
        }
        let parsed = body[pos..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .and_then(|line_end| {
                let line = std::str::from_utf8(&body[pos..pos + line_end]).ok()?;
                let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
                let start = pos + line_end + 2;
                (body.len() >= start + size + 2).then_some((size, start))
            });
        match parsed {
            Some((0, _)) => return Ending::LastChunk { body_bytes },
            Some((size, start)) => {
                assert_eq!(&body[start + size..start + size + 2], b"\r\n");
                body_bytes += size;
                pos = start + size + 2;
                continue;
            }
            None if eof => return Ending::CutOff { body_bytes },
            None => eof = read_more(&mut conn, &mut body).await,
        }
    }
}

#[tokio::test]
async fn an_export_that_fails_after_its_first_byte_is_cut_off_not_ended() {
    if crate::helpers::pg::skip_on_postgres("it breaks a row in the SQLite file under the export") {
        return;
    }
    let app = TestApp::spawn().await;
    plant_big_leads(&app, 3_000, 10_000);
    // Complete, the same export ends with the last chunk.
    let ending = raw_chunked_get(&app, "/api/leads.csv?q=nothing-matches", 0, || {}).await;
    assert!(matches!(ending, Ending::LastChunk { .. }), "{ending:?}");

    // About 30 MB in id order; while the client has read only the start, the last lead's
    // row breaks (a damaged page would look the same to the export).
    let db = crate::helpers::db::db(&app);
    let ending = raw_chunked_get(
        &app,
        "/api/leads.csv?sort=received_at&order=asc",
        64 * 1024,
        || {
            db.execute(
                "UPDATE leads SET field_data = 'not json' WHERE id = (SELECT max(id) FROM leads)",
                [],
            )
            .unwrap();
        },
    )
    .await;
    match ending {
        // Every row before the broken one arrived, then the connection closed.
        Ending::CutOff { body_bytes } => assert!(
            body_bytes > 2_000 * 10_000,
            "cut off after {body_bytes} bytes"
        ),
        Ending::LastChunk { body_bytes } => {
            panic!("a broken export ended like a complete one after {body_bytes} bytes")
        }
    }
}

#[tokio::test]
async fn an_export_that_fails_before_its_first_byte_is_an_error_answer() {
    if crate::helpers::pg::skip_on_postgres("it breaks a row in the SQLite file") {
        return;
    }
    let app = TestApp::spawn().await;
    plant_big_leads(&app, 3, 10);
    crate::helpers::db::db(&app)
        .execute("UPDATE leads SET field_data = 'not json' WHERE id = 2", [])
        .unwrap();
    let r = app.get_authed("/api/leads.csv").await;
    assert_eq!(r.status(), 500, "not a 200 with an empty or short file");
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["error"].is_string());
    let r = app.get_authed("/api/report.pdf").await;
    assert_eq!(r.status(), 500);
}

#[tokio::test]
async fn pdf_report_gives_each_forms_speed_to_lead() {
    let app = app_with_leads().await;
    let text = pdftotext(&pdf(&app, "").await);
    assert!(text.contains("To contact, 30 d"), "{text}");
    assert!(!text.contains(" min"), "nobody contacted yet:\n{text}");
    let leads = app.leads(&format!("form_id={SPRING}&limit=1")).await;
    let id = leads["leads"][0]["id"].as_i64().unwrap();
    let r = app
        .patch_lead(id, &json!({"status": "contacted", "version": 1}))
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let text = pdftotext(&pdf(&app, "").await);
    assert!(
        text.contains("Speed to lead, last 30 days: median"),
        "{text}"
    );
    // Contacted within the same minute: the Spring row's median and p90 are 0 minutes.
    assert!(text.contains("0 / 0 min"), "{text}");
}
