//! Changes to a lead: the version check, history and notes, and the `update` events.

use reqwest::Method;
use serde_json::{json, Value};

use super::*;

#[tokio::test]
async fn two_users_change_the_same_lead_and_the_second_gets_409_with_the_current_lead() {
    let app = TestApp::spawn().await;
    add_user(&app, "ada", false).await;
    add_user(&app, "Grace", false).await;
    let (ada, grace) = (session(&app, "ada").await, session(&app, "grace").await);
    let lead = &saved_leads(&app, 1, 1).await[0];
    let id = lead["id"].as_i64().unwrap();
    assert_eq!(lead["status"], "new");
    assert_eq!(lead["version"], 1);
    assert_eq!(lead["owner"], Value::Null);
    let path = format!("/api/leads/{id}");

    // Both read version 1; Ada claims and contacts it first.
    let (status, after) = call(
        &app,
        &ada,
        Method::PATCH,
        &path,
        Some(json!({"owner": "ada", "status": "contacted", "version": 1})),
    )
    .await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["version"], 2);
    assert_eq!(after["owner"], "ada");
    assert_eq!(after["status"], "contacted");
    assert!(after["first_contact_at"].is_string());

    // Grace, still on version 1, is refused and shown the lead as it is now.
    let (status, current) = call(
        &app,
        &grace,
        Method::PATCH,
        &path,
        Some(json!({"owner": "grace", "version": 1})),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(current, after, "the 409 carries the current lead");

    // On the current version her change goes through; `null` releases the lead.
    let (status, released) = call(
        &app,
        &grace,
        Method::PATCH,
        &path,
        Some(json!({"owner": null, "version": 2})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(released["owner"], Value::Null);
    assert_eq!(released["version"], 3);

    let (status, detail) = call(&app, &ada, Method::GET, &path, None).await;
    assert_eq!(status, 200);
    let history: Vec<(String, String, Value, Value)> = detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["by"].as_str().unwrap().to_string(),
                h["field"].as_str().unwrap().to_string(),
                h["from"].clone(),
                h["to"].clone(),
            )
        })
        .collect();
    assert_eq!(
        history,
        [
            (
                "ada".into(),
                "status".into(),
                json!("new"),
                json!("contacted")
            ),
            ("ada".into(), "owner".into(), Value::Null, json!("ada")),
            ("Grace".into(), "owner".into(), json!("ada"), Value::Null),
        ]
    );
}

#[tokio::test]
async fn bad_changes_are_refused_with_words_and_change_nothing() {
    let app = TestApp::spawn().await;
    add_user(&app, "ada", false).await;
    let ada = session(&app, "ada").await;
    let id = saved_leads(&app, 1, 1).await[0]["id"].as_i64().unwrap();
    let path = format!("/api/leads/{id}");
    for (body, words) in [
        (
            json!({"status": "closed", "version": 1}),
            "status must be one of",
        ),
        (json!({"owner": "nobody", "version": 1}), "no user named"),
        (json!({"status": "won"}), "version is required"),
    ] {
        let (status, answer) = call(&app, &ada, Method::PATCH, &path, Some(body)).await;
        assert_eq!(status, 400);
        assert!(
            answer["error"].as_str().unwrap().contains(words),
            "{answer}"
        );
    }
    let notes = format!("{path}/notes");
    for text in ["", "   ", &"x".repeat(10_001)] {
        let (status, _) = call(
            &app,
            &ada,
            Method::POST,
            &notes,
            Some(json!({"text": text})),
        )
        .await;
        assert_eq!(status, 400);
    }
    let (status, _) = call(
        &app,
        &ada,
        Method::PATCH,
        "/api/leads/999999",
        Some(json!({"status": "won", "version": 1})),
    )
    .await;
    assert_eq!(status, 404);
    let (_, lead) = call(&app, &ada, Method::GET, &path, None).await;
    assert_eq!(lead["version"], 1);
    assert_eq!(lead["notes"], json!([]));
}

#[tokio::test]
async fn a_note_is_a_first_contact_and_the_owner_filter_knows_me_and_none() {
    let app = TestApp::spawn().await;
    add_user(&app, "ada", false).await;
    let ada = session(&app, "ada").await;
    let leads = saved_leads(&app, 1, 3).await;
    let id = leads[0]["id"].as_i64().unwrap();
    let text = "Called: wants a quote, ring back Friday ☎";
    let (status, note) = call(
        &app,
        &ada,
        Method::POST,
        &format!("/api/leads/{id}/notes"),
        Some(json!({"text": text})),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(note["author"], "ada");
    assert_eq!(note["text"], text);
    let (_, detail) = call(&app, &ada, Method::GET, &format!("/api/leads/{id}"), None).await;
    assert_eq!(detail["notes_count"], 1);
    assert_eq!(detail["notes"][0]["text"], text);
    assert!(detail["first_contact_at"].is_string());
    assert_eq!(detail["status"], "new", "a note does not move the status");

    let claim = json!({"owner": "ada", "version": detail["version"]});
    let (status, _) = call(
        &app,
        &ada,
        Method::PATCH,
        &format!("/api/leads/{id}"),
        Some(claim),
    )
    .await;
    assert_eq!(status, 200);
    let ids = |v: Value| -> Vec<i64> {
        v["leads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_i64().unwrap())
            .collect()
    };
    let (_, mine) = call(&app, &ada, Method::GET, "/api/leads?owner=me", None).await;
    assert_eq!(ids(mine), [id]);
    let (_, by_name) = call(&app, &ada, Method::GET, "/api/leads?owner=ADA", None).await;
    assert_eq!(ids(by_name), [id]);
    let (_, nobody) = call(&app, &ada, Method::GET, "/api/leads?owner=none", None).await;
    assert_eq!(ids(nobody).len(), 2);
    let (_, new) = call(&app, &ada, Method::GET, "/api/leads?status=new", None).await;
    assert_eq!(ids(new).len(), 3);
    let (status, _) = call(&app, &ada, Method::GET, "/api/leads?status=open", None).await;
    assert_eq!(status, 400);

    let stats = app.get_json("/api/stats").await;
    assert_eq!(stats["waiting"]["count"], 3);
    assert_eq!(stats["speed_to_lead"][0]["days"], 7);
    assert_eq!(stats["speed_to_lead"][0]["contacted"], 1);
    assert!(stats["speed_to_lead"][0]["median_minutes"].is_number());
}

#[tokio::test]
async fn an_update_reaches_another_open_stream_as_an_update_event_with_the_whole_lead() {
    let app = TestApp::spawn().await;
    add_user(&app, "ada", false).await;
    add_user(&app, "grace", false).await;
    let (ada, grace) = (session(&app, "ada").await, session(&app, "grace").await);
    let lead = saved_leads(&app, 1, 1).await.remove(0);
    let id = lead["id"].as_i64().unwrap();
    // Grace watches from her own session.
    let res = app
        .stream_with(Via::Browser, Creds::Cookie(&grace), "", None)
        .await;
    let mut stream = SseClient::new(res);
    let (status, changed) = call(
        &app,
        &ada,
        Method::PATCH,
        &format!("/api/leads/{id}"),
        Some(json!({"status": "qualified", "owner": "ada", "version": 1})),
    )
    .await;
    assert_eq!(status, 200);
    let ev = stream.next_event(WAIT).await.expect("an event");
    assert_eq!(ev.event, "update");
    assert_eq!(
        ev.json(),
        changed,
        "the data is the whole lead as it is now"
    );
    let event_id: i64 = ev.id.unwrap().parse().unwrap();
    assert!(
        event_id > id,
        "a change takes the next id of the one sequence"
    );

    // A new lead after it takes a higher id still.
    add_graph_leads(&app, 2, 1);
    app.deliver(&[&lead_id(2)]).await;
    let ev = stream.next_event(WAIT).await.expect("the new lead");
    assert_eq!(ev.event, "lead");
    let new_id: i64 = ev.id.clone().unwrap().parse().unwrap();
    assert!(new_id > event_id);
    assert_eq!(
        ev.json()["id"],
        new_id,
        "for a new lead the SSE id is still its id"
    );
}

#[tokio::test]
async fn replay_after_last_event_id_interleaves_leads_and_updates_in_id_order() {
    let app = TestApp::spawn().await;
    let leads = saved_leads(&app, 1, 2).await;
    let (a, b) = (
        leads[0]["id"].as_i64().unwrap(),
        leads[1]["id"].as_i64().unwrap(),
    );
    let patch = |id: i64, version: i64, status: &str| {
        let app = &app;
        let status = status.to_string();
        async move {
            let r = app
                .patch_lead(id, &json!({"status": status, "version": version}))
                .await;
            assert_eq!(r.status(), 200);
        }
    };
    patch(a, 1, "contacted").await;
    saved_leads(&app, 3, 1).await;
    patch(b, 1, "won").await;
    patch(a, 2, "lost").await;

    let mut stream = app.open_stream(Some(b)).await;
    let mut seen = Vec::new();
    while let Some(ev) = stream.next_event(Duration::from_millis(1500)).await {
        let v = ev.json();
        seen.push((
            ev.id.unwrap().parse::<i64>().unwrap(),
            ev.event.clone(),
            v["id"].as_i64().unwrap(),
            v["status"].as_str().unwrap().to_string(),
        ));
    }
    let kinds: Vec<(&str, i64)> = seen
        .iter()
        .map(|(_, e, lead, _)| (e.as_str(), *lead))
        .collect();
    let c = seen[1].2;
    assert_eq!(
        kinds,
        [("update", a), ("lead", c), ("update", b), ("update", a)],
        "everything after lead {b}, in order: {seen:?}"
    );
    let ids: Vec<i64> = seen.iter().map(|s| s.0).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "strictly increasing: {ids:?}"
    );
    assert_eq!(seen[1].0, c, "a new lead's event id is its id");
    // Each carries the lead as it is now (replay reads the current row).
    assert_eq!(seen[0].3, "lost");
    assert_eq!(seen[2].3, "won");
}

#[tokio::test]
async fn the_csv_carries_status_owner_and_first_contact() {
    let app = TestApp::spawn().await;
    let id = saved_leads(&app, 1, 1).await[0]["id"].as_i64().unwrap();
    let r = app
        .patch_lead(
            id,
            &json!({"status": "contacted", "owner": "admin", "version": 1}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let lead: Value = r.json().await.unwrap();
    let csv = app.get_authed("/api/leads.csv").await.text().await.unwrap();
    let mut lines = csv.trim_start_matches('\u{feff}').lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    let cell = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!(cell("status"), "contacted");
    assert_eq!(cell("owner"), "admin");
    assert_eq!(
        cell("first_contact_at"),
        lead["first_contact_at"].as_str().unwrap()
    );
}
