//! Erasing a lead the team worked on: its notes, history and events go with it, the stream's
//! one sequence carries an `erased` event in id order, a replay from before shows nothing the
//! lead held, and only an admin may erase.

use reqwest::Method;
use serde_json::json;

use super::*;
use crate::helpers::db::{count, exec};
use crate::helpers::sse::SseEvent;

/// What the team wrote about the lead to be erased, looked for everywhere afterwards.
const NOTE: &str = "Rang Zebulon Quixotic about the roof";

/// A DELETE of lead `id` with the dashboard token.
async fn erase(app: &TestApp, id: i64) -> reqwest::Response {
    app.client
        .delete(app.url(&format!("/api/leads/{id}")))
        .bearer_auth(DASHBOARD_TOKEN)
        .send()
        .await
        .unwrap()
}

/// Two leads; the first gets a change and a note, the second a change. Their ids.
async fn worked_leads(app: &TestApp) -> (i64, i64) {
    let leads = saved_leads(app, 1, 2).await;
    let (gone, kept) = (
        leads[0]["id"].as_i64().unwrap(),
        leads[1]["id"].as_i64().unwrap(),
    );
    for (id, body) in [
        (
            gone,
            json!({"status": "contacted", "owner": "admin", "version": 1}),
        ),
        (kept, json!({"status": "won", "version": 1})),
    ] {
        let r = app.patch_lead(id, &body).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    let r = app
        .client
        .post(app.url(&format!("/api/leads/{gone}/notes")))
        .bearer_auth(DASHBOARD_TOKEN)
        .json(&json!({ "text": NOTE }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    (gone, kept)
}

/// Every event a stream sends within a short while.
async fn events_until_quiet(stream: &mut SseClient) -> Vec<SseEvent> {
    let mut out = Vec::new();
    while let Some(ev) = stream.next_event(Duration::from_millis(800)).await {
        out.push(ev);
    }
    out
}

fn event_id(ev: &SseEvent) -> i64 {
    ev.id
        .as_deref()
        .expect("every event has an id")
        .parse()
        .unwrap()
}

#[tokio::test]
async fn an_erased_lead_leaves_an_erased_event_in_the_sequence_and_nothing_it_held() {
    let app = TestApp::spawn().await;
    let (gone, kept) = worked_leads(&app).await;
    let leadgen_id = app.get_json(&format!("/api/leads/{gone}")).await["leadgen_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut live = app.open_stream(None).await;

    assert_eq!(erase(&app, gone).await.status(), 200);

    // The open page hears it with an id of its own: the next of the one sequence.
    let erased = loop {
        let ev = live.next_event(WAIT).await.expect("an erased event");
        if ev.event == "erased" {
            break ev;
        }
    };
    assert_eq!(
        erased.json(),
        json!({ "id": gone }),
        "the id and nothing else"
    );
    let erased_id = event_id(&erased);
    let counts = app.get_json("/api/leads/count").await;
    assert_eq!(counts["last_event_id"], erased_id, "{counts}");
    assert_eq!(counts["count"], 1, "{counts}");

    // A page resuming from before both leads: everything after, in id order, with nothing of
    // the erased lead but its erasure.
    let mut replay = app.open_stream(Some(gone.min(kept) - 1)).await;
    let events = events_until_quiet(&mut replay).await;
    let seen: Vec<(i64, &str, i64)> = events
        .iter()
        .map(|e| {
            (
                event_id(e),
                e.event.as_str(),
                e.json()["id"].as_i64().unwrap(),
            )
        })
        .collect();
    let ids: Vec<i64> = seen.iter().map(|s| s.0).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in id order: {seen:?}");
    let of_gone: Vec<&(i64, &str, i64)> = seen.iter().filter(|s| s.2 == gone).collect();
    assert_eq!(of_gone, [&(erased_id, "erased", gone)], "{seen:?}");
    assert_eq!(seen.last().unwrap().0, erased_id, "the erasure came last");
    let of_kept: Vec<&str> = seen.iter().filter(|s| s.2 == kept).map(|s| s.1).collect();
    assert_eq!(of_kept, ["lead", "update"], "{seen:?}");
    for ev in &events {
        assert!(
            !ev.data.contains(NOTE) && !ev.data.contains(&leadgen_id),
            "{ev:?}"
        );
    }
    let erased_again = events.iter().find(|e| e.event == "erased").unwrap();
    assert_eq!(erased_again.data, erased.data);

    // Replayed from just before the erasure: the erasure alone.
    let mut replay = app.open_stream(Some(erased_id - 1)).await;
    let events = events_until_quiet(&mut replay).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (event_id(&events[0]), events[0].event.as_str()),
        (erased_id, "erased")
    );

    // The lead, its notes, its history and its events are gone; its erasure stays.
    assert_eq!(
        app.get_authed(&format!("/api/leads/{gone}")).await.status(),
        404
    );
    for (table, want) in [("notes", 0), ("history", 0), ("events", 1)] {
        let n = count(
            &app,
            &format!("SELECT count(*) FROM {table} WHERE lead_id = {gone}"),
        )
        .await;
        assert_eq!(n, want, "{table} of the erased lead");
    }
    let kinds = count(
        &app,
        &format!("SELECT count(*) FROM events WHERE lead_id = {gone} AND kind = 'erased'"),
    )
    .await;
    assert_eq!(kinds, 1);
    // The other lead keeps its change.
    let other = app.get_json(&format!("/api/leads/{kept}")).await;
    assert_eq!(other["status"], "won");
    assert_eq!(other["history"].as_array().unwrap().len(), 1, "{other}");
}

#[tokio::test]
async fn only_an_admin_may_erase_a_lead() {
    let app = TestApp::spawn().await;
    add_user(&app, "ada", false).await;
    add_user(&app, "Grace", true).await;
    let (ada, grace) = (session(&app, "ada").await, session(&app, "grace").await);
    let id = saved_leads(&app, 1, 1).await[0]["id"].as_i64().unwrap();
    let path = format!("/api/leads/{id}");

    let (status, answer) = call(&app, &ada, Method::DELETE, &path, None).await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(
        app.lead_count().await,
        1,
        "a member's request erases nothing"
    );

    let (status, answer) = call(&app, &grace, Method::DELETE, &path, None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!({ "erased": id }));
    assert_eq!(app.lead_count().await, 0);
    let (status, _) = call(&app, &grace, Method::DELETE, &path, None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_database_file_keeps_no_byte_of_an_erased_leads_notes() {
    if crate::helpers::pg::skip_on_postgres("it reads the SQLite file's bytes") {
        return;
    }
    let app = TestApp::spawn().await;
    let (gone, kept) = worked_leads(&app).await;
    // Read through the readers too, so the note's pages went every way the file has.
    let detail = app.get_json(&format!("/api/leads/{gone}")).await;
    assert_eq!(detail["notes"][0]["text"], NOTE);
    assert!(file_holds(&app, NOTE), "the note is in the file before");
    assert_eq!(erase(&app, gone).await.status(), 200);
    exec(&app, "PRAGMA wal_checkpoint(TRUNCATE);", "").await;
    assert!(!file_holds(&app, NOTE), "the note is gone from the file");
    assert!(!file_holds(&app, "Zebulon"));
    assert_eq!(
        app.get_json(&format!("/api/leads/{kept}")).await["status"],
        "won"
    );
}

/// Whether the database file or its write-ahead log holds `needle`.
fn file_holds(app: &TestApp, needle: &str) -> bool {
    ["", "-wal"].iter().any(|suffix| {
        let mut path = app.db_path.clone().into_os_string();
        path.push(suffix);
        let bytes = std::fs::read(&path).unwrap_or_default();
        bytes
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
    })
}
