//! Erasing one lead: `DELETE /api/leads/{id}` takes it out of the list, the exports, the
//! stream's replay and (SQLite) every byte of the database file; open streams are told; and
//! Meta delivering it again does not bring it back.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::db::{count, exec};
use crate::helpers::sse::SseEvent;
use crate::helpers::*;
use crate::reports::pdftotext;

const WAIT: Duration = Duration::from_secs(10);
/// What the erased person wrote, looked for everywhere afterwards.
const NAME: &str = "Erasmus Forgetme";
const EMAIL: &str = "erasmus.forgetme@example.org";

/// Two leads saved: the one to erase first, then one that stays. Their ids.
async fn two_leads(app: &TestApp) -> (i64, i64, String) {
    let gone = lead_id(1);
    app.graph.add_lead(
        &gone,
        FORM_ID,
        1_764_338_531,
        &[("full_name", NAME), ("email", EMAIL)],
    );
    let kept = add_graph_leads(app, 2, 1);
    app.deliver(&[&gone]).await;
    app.deliver(&[&kept[0]]).await;
    assert_eq!(app.wait_for_count(2, WAIT).await, 2);
    let list = app.leads("").await;
    let id_of = |leadgen_id: &str| {
        list["leads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["leadgen_id"] == leadgen_id)
            .map(|l| l["id"].as_i64().unwrap())
            .unwrap()
    };
    (id_of(&gone), id_of(&kept[0]), gone)
}

async fn delete(app: &TestApp, id: i64, token: Option<&str>) -> reqwest::Response {
    let mut req = app.client.delete(app.url(&format!("/api/leads/{id}")));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

/// Every event an open stream sends within a short while.
async fn events_until_quiet(stream: &mut SseClient) -> Vec<SseEvent> {
    let mut out = Vec::new();
    while let Some(ev) = stream.next_event(Duration::from_millis(500)).await {
        out.push(ev);
    }
    out
}

#[tokio::test]
async fn an_erased_lead_is_gone_from_the_list_the_exports_the_replay_and_open_pages() {
    let app = TestApp::spawn().await;
    let (gone, kept, leadgen_id) = two_leads(&app).await;
    let mut stream = app.open_stream(None).await;

    assert_eq!(delete(&app, gone, None).await.status(), 401);
    let r = delete(&app, gone, Some(DASHBOARD_TOKEN)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"erased": gone}));
    assert_eq!(
        delete(&app, gone, Some(DASHBOARD_TOKEN)).await.status(),
        404
    );

    // The open page is told, with the id and nothing else.
    let ev = loop {
        let ev = stream.next_event(WAIT).await.expect("an erased event");
        if ev.event == "erased" {
            break ev;
        }
    };
    assert_eq!(ev.json(), json!({"id": gone}));
    assert_eq!(ev.id, None, "the resume point does not move");

    let list = app.leads("").await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["leads"][0]["id"], kept);
    assert_eq!(app.lead_count().await, 1);
    let csv = app.get_authed("/api/leads.csv").await.text().await.unwrap();
    let pdf = app
        .get_authed("/api/report.pdf")
        .await
        .bytes()
        .await
        .unwrap();
    let pdf = pdftotext(&pdf);
    for (what, text) in [("CSV", &csv), ("PDF", &pdf)] {
        assert!(
            !text.contains(NAME) && !text.contains(EMAIL),
            "{what}: {text}"
        );
    }
    assert!(pdf.contains("Person 2"), "the other lead stays: {pdf}");

    // A page resuming from before both leads replays only the one that stays.
    let mut replay = app.open_stream(Some(gone.min(kept) - 1)).await;
    let events = events_until_quiet(&mut replay).await;
    let leads: Vec<&SseEvent> = events.iter().filter(|e| e.event == "lead").collect();
    assert_eq!(leads.len(), 1, "{events:?}");
    assert_eq!(leads[0].json()["id"], kept);
    assert!(events.iter().all(|e| !e.data.contains(NAME)));

    // Meta delivering it again, or a sync finding it, does not bring it back.
    app.deliver(&[&leadgen_id]).await;
    let calls = app.graph.lead_calls(&leadgen_id);
    app.deliver(
        &add_graph_leads(&app, 3, 1)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(app.wait_for_count(2, WAIT).await, 2);
    assert_eq!(app.graph.lead_calls(&leadgen_id), calls);
    let again = app.leads("").await;
    assert!(!again.to_string().contains(NAME), "{again}");
    // What is kept is Meta's id, as a tombstone.
    let tombstones = count(
        &app,
        &format!(
            "SELECT count(*) FROM jobs WHERE state = 'erased' AND leadgen_id = '{leadgen_id}'"
        ),
    )
    .await;
    assert_eq!(tombstones, 1);
}

#[tokio::test]
async fn a_sync_does_not_bring_an_erased_lead_back() {
    let app = TestApp::spawn().await;
    let (gone, _, _) = two_leads(&app).await;
    assert_eq!(
        delete(&app, gone, Some(DASHBOARD_TOKEN)).await.status(),
        200
    );
    app.graph.add_form(PAGE_ID, FORM_ID, "Spring");
    let r = app.post_json("/api/leads/sync").await;
    assert!(r.get("error").is_none(), "{r}");
    assert_eq!(app.lead_count().await, 1);
    assert!(!app.leads("").await.to_string().contains(NAME));
}

#[tokio::test]
async fn the_database_file_keeps_no_byte_of_an_erased_lead() {
    if crate::helpers::pg::skip_on_postgres("it reads the SQLite file's bytes") {
        return;
    }
    let app = TestApp::spawn().await;
    let (gone, _, _) = two_leads(&app).await;
    // Readers and the list put the lead's pages through every path the file has.
    assert!(app.leads("q=erasmus").await.to_string().contains(NAME));
    assert_eq!(
        delete(&app, gone, Some(DASHBOARD_TOKEN)).await.status(),
        200
    );
    // The erasure's own checkpoint has run by the answer; one more changes nothing.
    assert_no_trace(&app);
    exec(&app, "PRAGMA wal_checkpoint(TRUNCATE);", "").await;
    assert_no_trace(&app);
    assert!(app.leads("").await.to_string().contains("Person 2"));
}

/// Neither the database file nor its write-ahead log holds the erased person's words.
fn assert_no_trace(app: &TestApp) {
    for suffix in ["", "-wal"] {
        let mut path = app.db_path.clone().into_os_string();
        path.push(suffix);
        let bytes = std::fs::read(&path).unwrap_or_default();
        for needle in [NAME, EMAIL, "erasmus"] {
            assert!(
                !bytes
                    .windows(needle.len())
                    .any(|w| w.eq_ignore_ascii_case(needle.as_bytes())),
                "{needle} is still in {path:?}"
            );
        }
    }
}
