//! `leadstream backup FILE`: the real binary copies the database of a running server during a
//! burst of webhooks; the copy opens, passes `integrity_check` and holds every lead acknowledged
//! before the backup began. It never leaves half a file, and never replaces one unasked.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::helpers::db::integrity;
use crate::helpers::process::Process;
use crate::helpers::*;

/// Runs `leadstream ARGS` in `dir` with `env`; its exit code, stdout and stderr.
async fn leadstream(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let mut p = Process::start_with_args(dir, env, args);
    let code = p
        .exit_code(Duration::from_secs(60))
        .await
        .expect("the command ends by itself");
    // The threads reading the pipes may lag behind the exit by a moment.
    tokio::time::sleep(Duration::from_millis(100)).await;
    (code, p.stdout().join("\n"), p.log().join("\n"))
}

fn open(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_during_a_burst_of_webhooks_holds_every_lead_acknowledged_before_it() {
    if crate::helpers::pg::skip_on_postgres(
        "backup copies the SQLite file (PostgreSQL has pg_dump)",
    ) {
        return;
    }
    let app = TestApp::spawn().await;
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(tokio::sync::Notify::new());
    // Four senders, one lead per webhook, as fast as the server acknowledges them.
    let senders: Vec<_> = (0..4u64)
        .map(|s| {
            let (client, url, acked, stop) = (
                app.client.clone(),
                app.url("/webhook"),
                acked.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                for i in 0.. {
                    let id = lead_id(1 + s * 1_000_000 + i);
                    let body = leadgen_body(&[&id]);
                    let sig = leadstream::ingest::signature::sign(APP_SECRET.as_bytes(), &body);
                    let send = client
                        .post(&url)
                        .header("x-hub-signature-256", sig)
                        .body(body)
                        .send();
                    tokio::select! {
                        _ = stop.notified() => return,
                        r = send => if r.unwrap().status() == 200 {
                            acked.lock().unwrap().push(id);
                        },
                    }
                }
            })
        })
        .collect();
    while acked.lock().unwrap().len() < 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.db");
    let before: Vec<String> = acked.lock().unwrap().clone();
    let db = app.db_path.to_str().unwrap().to_string();
    let (code, out, err) = leadstream(
        dir.path(),
        &[],
        &["backup", file.to_str().unwrap(), "--db", &db],
    )
    .await;
    let during = acked.lock().unwrap().len() - before.len();
    stop.notify_waiters();
    for s in senders {
        s.abort();
    }
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("integrity_check ok"), "{out}");
    assert!(during > 0, "webhooks went on during the backup");

    assert_eq!(integrity(&file), "ok");
    let copy = open(&file);
    let mode: String = copy
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete", "one self-contained file");
    let mut stmt = copy.prepare("SELECT leadgen_id FROM jobs").unwrap();
    let in_copy: std::collections::HashSet<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let missing: Vec<&String> = before.iter().filter(|id| !in_copy.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged leads missing from the copy",
        missing.len(),
        before.len()
    );
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names,
        ["backup.db"],
        "no FILE.tmp, -wal or -shm left beside it"
    );
}

#[tokio::test]
async fn a_backup_never_replaces_a_file_unless_forced_and_takes_the_db_from_env_or_flags() {
    if crate::helpers::pg::skip_on_postgres(
        "backup copies the SQLite file (PostgreSQL has pg_dump)",
    ) {
        return;
    }
    let app = TestApp::spawn().await;
    app.deliver(&[&lead_id(1)]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("leads-backup.db");
    std::fs::write(&file, "an older backup").unwrap();
    let db = app.db_path.to_str().unwrap().to_string();
    let file_s = file.to_str().unwrap().to_string();

    // LEADS_DB from the environment, like the server.
    let (code, _, err) = leadstream(dir.path(), &[("LEADS_DB", &db)], &["backup", &file_s]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--force"), "the error says what to do: {err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "an older backup");

    // --db before the command, --force after it.
    let (code, out, err) = leadstream(
        dir.path(),
        &[],
        &["--db", &db, "backup", &file_s, "--force"],
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("backed up"), "{out}");
    assert_eq!(integrity(&file), "ok");
    let jobs: i64 = open(&file)
        .query_row("SELECT count(*) FROM jobs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(jobs, 1);
}

#[tokio::test]
async fn a_backup_of_a_database_that_is_not_there_makes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.db");
    let missing = dir.path().join("no-such.db");
    let (code, _, err) = leadstream(
        dir.path(),
        &[],
        &[
            "backup",
            file.to_str().unwrap(),
            "--db",
            missing.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot open the database"), "{err}");
    assert!(!missing.exists(), "no empty database made on the spot");
    assert!(!file.exists() && !dir.path().join("out.db.tmp").exists());
}
