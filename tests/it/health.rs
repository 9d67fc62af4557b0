//! `/healthz` and `/api/status` tell the truth about the database: a file removed or replaced
//! under the server, a full disk, a read-only one, a stalled one. Webhooks are not acknowledged
//! while their delivery cannot be kept, and everything comes back by itself when the disk does.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::disk::{skipped, Mounted};
use crate::helpers::*;

/// `GET /healthz`: status and body.
async fn healthz(app: &TestApp) -> (u16, Value) {
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Waits (up to 10 s) until `/healthz` answers `status`; returns the body.
async fn healthz_becomes(app: &TestApp, status: u16) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, body) = healthz(app).await;
        if s == status {
            return body;
        }
        assert!(Instant::now() < deadline, "/healthz stayed {s}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The problems `/api/status` lists.
async fn problems(app: &TestApp) -> Vec<String> {
    let r = app.get_authed("/api/status").await;
    assert_eq!(r.status(), 200, "/api/status answers even now");
    let v: Value = r.json().await.unwrap();
    v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

/// A signed webhook announcing one new lead, padded to about `size` bytes (JSON allows the
/// spaces), so storing it needs that much room.
async fn webhook_of_size(app: &TestApp, n: u64, size: usize) -> u16 {
    let mut body = leadgen_body(&[&lead_id(n)]);
    body.resize(size.max(body.len()), b' ');
    app.post_webhook(&body).await.status().as_u16()
}

#[tokio::test]
async fn a_removed_database_file_stops_acknowledging_until_a_restart() {
    if crate::helpers::pg::skip_on_postgres("it is about the SQLite file and its disk") {
        return;
    }
    let app = TestApp::spawn().await;
    assert_eq!(healthz(&app).await.0, 200);
    assert_eq!(webhook_of_size(&app, 1, 0).await, 200);
    for suffix in ["", "-wal", "-shm"] {
        let mut p = app.db_path.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    let body = healthz_becomes(&app, 503).await;
    assert_eq!(body["status"], "unavailable");
    let reason = body["reason"].as_str().unwrap();
    assert!(reason.contains("removed or replaced"), "{reason}");
    assert!(
        !reason.contains("leads.db"),
        "no path in a public answer: {reason}"
    );
    // Meta is told to deliver again: nothing is acknowledged into a file that is gone.
    for n in 2..5 {
        assert_eq!(webhook_of_size(&app, n, 0).await, 503);
    }
    assert!(
        problems(&app)
            .await
            .iter()
            .any(|p| p.contains("removed or replaced")),
        "/api/status names it"
    );
    // A restart starts afresh on the path, and says so.
    let app = app.restart().await;
    assert_eq!(healthz(&app).await.0, 200);
    assert_eq!(webhook_of_size(&app, 5, 0).await, 200);
}

#[tokio::test]
async fn a_replaced_database_file_is_noticed_too() {
    if crate::helpers::pg::skip_on_postgres("it is about the SQLite file and its disk") {
        return;
    }
    let app = TestApp::spawn().await;
    assert_eq!(webhook_of_size(&app, 1, 0).await, 200);
    // A copy put in its place: the same name, another file.
    let copy = app.dir.path().join("copy.db");
    std::fs::copy(&app.db_path, &copy).unwrap();
    std::fs::rename(&copy, &app.db_path).unwrap();
    let body = healthz_becomes(&app, 503).await;
    assert!(body["reason"]
        .as_str()
        .unwrap()
        .contains("removed or replaced"));
    assert_eq!(webhook_of_size(&app, 2, 0).await, 503);
}

#[tokio::test]
async fn a_removed_write_ahead_log_is_noticed_like_a_removed_database() {
    if crate::helpers::pg::skip_on_postgres("it is about the SQLite file and its disk") {
        return;
    }
    let app = TestApp::spawn().await;
    assert_eq!(webhook_of_size(&app, 1, 0).await, 200);
    // The -wal file holds every commit since the last checkpoint: removed under a running
    // server (taken for a temporary file), SQLite goes on writing to the unlinked copy, and all
    // of it is gone at the next start, what was acknowledged before the removal included.
    let mut wal = app.db_path.clone().into_os_string();
    wal.push("-wal");
    std::fs::remove_file(&wal).unwrap();
    let body = healthz_becomes(&app, 503).await;
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("removed or replaced"),
        "{body}"
    );
    assert_eq!(webhook_of_size(&app, 2, 0).await, 503);
}

#[tokio::test]
async fn a_full_disk_is_503_on_healthz_and_named_and_all_recover_when_space_returns() {
    if crate::helpers::pg::skip_on_postgres("it is about the SQLite file and its disk") {
        return;
    }
    let Some(disk) = Mounted::tmpfs("16m") else {
        return skipped("the full-disk test");
    };
    let app = TestApp::spawn_tuned(|s| s.db = disk.path.join("leads.db")).await;
    assert_eq!(webhook_of_size(&app, 1, 0).await, 200);
    assert_eq!(healthz(&app).await.0, 200);

    let filler = disk.fill();
    let body = healthz_becomes(&app, 503).await;
    let reason = body["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("full"), "{reason}");
    assert!(
        problems(&app).await.iter().any(|p| p.contains("full")),
        "/api/status names it"
    );
    // A delivery that needs room is not acknowledged (Meta delivers it again).
    let status = webhook_of_size(&app, 2, 1024 * 1024).await;
    assert!(status >= 500, "a webhook on a full disk got {status}");

    std::fs::remove_file(filler).unwrap();
    healthz_becomes(&app, 200).await;
    assert_eq!(webhook_of_size(&app, 3, 1024 * 1024).await, 200);
    assert!(
        !problems(&app).await.iter().any(|p| p.contains("full")),
        "the problem is gone from /api/status"
    );
}

#[tokio::test]
async fn a_disk_that_turns_read_only_is_503_on_healthz_and_named() {
    if crate::helpers::pg::skip_on_postgres("it is about the SQLite file and its disk") {
        return;
    }
    let Some(disk) = Mounted::ext4(32) else {
        return skipped("the read-only-disk test");
    };
    let app = TestApp::spawn_tuned(|s| s.db = disk.path.join("leads.db")).await;
    assert_eq!(webhook_of_size(&app, 1, 0).await, 200);
    assert_eq!(healthz(&app).await.0, 200);
    assert!(disk.turn_read_only(), "ext4 takes an error on request");

    let body = healthz_becomes(&app, 503).await;
    let reason = body["reason"].as_str().unwrap().to_string();
    assert!(
        reason.contains("read-only") || reason.contains("fails to write"),
        "{reason}"
    );
    let status = webhook_of_size(&app, 2, 0).await;
    assert!(status >= 500, "a webhook on a read-only disk got {status}");
    assert!(
        problems(&app).await.iter().any(|p| p == &reason),
        "/api/status names it"
    );
}

#[tokio::test]
async fn healthz_answers_in_bounded_time_while_the_disk_stalls() {
    if crate::helpers::pg::skip_on_postgres("it is about the SQLite file and its disk") {
        return;
    }
    let Some(mut disk) = Mounted::ext4(32) else {
        return skipped("the stalled-disk test");
    };
    let app = TestApp::spawn_tuned(|s| s.db = disk.path.join("leads.db")).await;
    assert_eq!(webhook_of_size(&app, 1, 0).await, 200);
    // Past the verdict of the webhook above.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    if !disk.freeze() {
        return skipped("the stalled-disk test (fsfreeze)");
    }
    // Every write now blocks. The check waits for its probe at most 2 s; whoever asks
    // meanwhile gets an answer at once.
    let started = Instant::now();
    let (first, second) = tokio::join!(healthz(&app), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t = Instant::now();
        let answer = healthz(&app).await;
        (answer, t.elapsed())
    });
    let took = started.elapsed();
    disk.thaw();
    assert_eq!(first.0, 503, "{:?}", first.1);
    assert!(
        first.1["reason"]
            .as_str()
            .unwrap()
            .contains("did not take a write"),
        "{:?}",
        first.1
    );
    assert!(took < Duration::from_secs(4), "/healthz took {took:?}");
    assert!(
        second.1 < Duration::from_millis(500),
        "a second caller waited {:?}",
        second.1
    );
    healthz_becomes(&app, 200).await;
}
