//! A database from before leads could change: every lead keeps its id as its `created`
//! event's, so a stream resuming with an id from before the upgrade replays exactly, and a
//! lead erased before the upgrade stays erased.

use super::*;

/// The schema as it was before (version 2, with or without erasure, which needs no table of
/// its own), with leads 1, 2, 3 and 5 (4 was drawn and never committed, as happens) and lead 6
/// erased (its job a tombstone), on the file `path`.
fn old_database(path: &std::path::Path) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(include_str!("../../../schema.sql"))
        .unwrap();
    c.execute_batch(
        "ALTER TABLE sessions ADD COLUMN principal TEXT NOT NULL DEFAULT 'admin';
         ALTER TABLE sessions ADD COLUMN credential_kind TEXT NOT NULL DEFAULT '';
         ALTER TABLE sessions ADD COLUMN credential_fp TEXT NOT NULL DEFAULT '';
         PRAGMA user_version = 2;",
    )
    .unwrap();
    for id in [1, 2, 3, 5] {
        c.execute(
            "INSERT INTO leads (id, leadgen_id, created_time, created_ts, received_at,
                                received_ms, source, name, field_data, search_text)
             VALUES (?1, ?2, '2026-11-28T12:00:00+0000', 1764331200, '2026-11-28T12:00:01.000Z',
                     1795867201000, 'webhook', ?3, '[]', '')",
            rusqlite::params![id, lead_id(900 + id as u64), format!("Old {id}")],
        )
        .unwrap();
    }
    c.execute(
        "INSERT INTO jobs (leadgen_id, state, first_seen_ms, next_attempt_ms, updated_ms)
         VALUES (?1, 'erased', 1795867201000, 1795867201000, 1795867201000)",
        [lead_id(906)],
    )
    .unwrap();
    c.execute(
        "UPDATE sqlite_sequence SET seq = 6 WHERE name = 'leads'",
        [],
    )
    .unwrap();
}

#[tokio::test]
async fn a_stream_resuming_with_an_id_from_before_the_upgrade_replays_exactly() {
    if crate::helpers::pg::skip_on_postgres("the old schema is a SQLite file") {
        return;
    }
    let app = TestApp::spawn_tuned(|s| old_database(&s.db)).await;
    let leads = app.leads("sort=received_at&order=asc").await;
    let first = &leads["leads"][0];
    assert_eq!(first["status"], "new", "old leads are new and nobody's");
    assert_eq!(first["version"], 1);
    assert_eq!(first["updated_at"], first["received_at"]);

    let mut stream = app.open_stream(Some(2)).await;
    let replayed = stream.leads(2, WAIT).await;
    let ids: Vec<i64> = replayed.iter().map(|l| l["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [3, 5], "exactly what came after 2");

    // Meta delivering the lead erased before the upgrade again does not bring it back.
    let erased = lead_id(906);
    app.graph
        .add_lead(&erased, FORM_ID, 1_764_338_531, &[("full_name", "Old 6")]);
    app.deliver(&[&erased]).await;

    // New events go on after every id the leads ever drew.
    let new = saved_leads(&app, 1, 1).await;
    let new_id = new[0]["id"].as_i64().unwrap();
    assert_eq!(
        new_id, 7,
        "the sequence continues after the highest id drawn (6)"
    );
    let live = stream.leads(1, WAIT).await;
    assert_eq!(live[0]["id"], new_id);
    assert_eq!(app.graph.lead_calls(&erased), 0, "the tombstone holds");
    assert_eq!(app.lead_count().await, 5);
}
