//! Erasing old leads: with `LEADS_RETENTION_DAYS`, leads received longer ago go, newer stay.

use std::time::{Duration, Instant};

use crate::helpers::db::exec;
use crate::helpers::*;

#[tokio::test]
async fn leads_received_before_the_retention_period_are_erased_and_newer_ones_stay() {
    let app = TestApp::spawn_tuned(|s| {
        s.tuning.retention = Some(Duration::from_secs(30 * 86_400));
        s.tuning.retention_every = Duration::from_millis(100);
    })
    .await;
    let ids = add_graph_leads(&app, 1, 3);
    for id in &ids {
        app.deliver(&[id]).await;
    }
    assert_eq!(app.wait_for_count(3, Duration::from_secs(10)).await, 3);
    let mut stream = app.open_stream(None).await;
    // Two of them were received 31 and 400 days ago.
    let days_ms = |d: i64| d * 86_400_000;
    let sql = format!(
        "UPDATE leads SET received_ms = received_ms - {} WHERE leadgen_id = '{}';
         UPDATE leads SET received_ms = received_ms - {} WHERE leadgen_id = '{}';",
        days_ms(31),
        ids[0],
        days_ms(400),
        ids[2]
    );
    exec(&app, &sql, &sql).await;

    let deadline = Instant::now() + Duration::from_secs(10);
    while app.lead_count().await != 1 {
        assert!(Instant::now() < deadline, "old leads were not erased");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left = app.leads("").await;
    assert_eq!(left["leads"][0]["leadgen_id"], ids[1].as_str());
    let mut erased = Vec::new();
    while erased.len() < 2 {
        let ev = stream
            .next_event(Duration::from_secs(10))
            .await
            .expect("erased events");
        if ev.event == "erased" {
            erased.push(ev.json()["id"].as_i64().unwrap());
        }
    }
    // The one left is newer than the period, and stays on later rounds.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.lead_count().await, 1);
}
