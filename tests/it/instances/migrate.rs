//! `leadstream migrate-to-postgres`: a SQLite database moved over keeps its leads and ids,
//! its queue and its sessions, and a second run refuses to copy again.

use std::process::Command;
use std::time::Duration;

use super::*;

fn migrate(sqlite: &Path, database_url: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_leadstream"))
        .arg("migrate-to-postgres")
        .arg("--db")
        .arg(sqlite)
        .args(["--database-url", database_url])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_moves_to_postgres_with_its_ids_queue_and_sessions_once() {
    let Some(db) = database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("leads.db");
    let (graph, ids) = graph_with_leads(1, 5).await;
    // A SQLite instance with leads, a lead that Graph refuses (a pending job), and a session.
    let graph_url = graph.url();
    let mut env = meta_env(&graph_url);
    env.push(("LEADS_DB", sqlite.to_str().unwrap()));
    let mut old = Process::start(dir.path(), &env);
    let old = Instance {
        base: old.base_url().await,
        process: old,
    };
    let client = reqwest::Client::new();
    // A forwarding destination that refuses for now: its deliveries wait, and move over.
    let receiver = crate::helpers::receiver::Receiver::start().await;
    receiver.answer(crate::helpers::receiver::Answer::Status(503, String::new()));
    let added =
        crate::helpers::process::add_webhook_destination(&client, &old.base, &receiver.url()).await;
    receiver.set_secret(added["secret"].as_str().unwrap());
    for id in &ids {
        assert_eq!(old.post_webhook(&client, &[id]).await, 200);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while old.get_json("/api/leads/count").await["count"] != 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "the leads were not saved"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    graph.set_always(Some(Failure::ServerError));
    let waiting = lead_id(99);
    assert_eq!(old.post_webhook(&client, &[&waiting]).await, 200);
    let cookie = shared::login(&old).await;
    let before = old.get_json("/api/leads?order=asc").await["leads"].clone();
    drop(old);

    let out = migrate(&sqlite, &db);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("5 leads")
            && said.contains("1 sessions")
            && said.contains("1 destinations")
            && said.contains("5 forwards"),
        "{said}"
    );

    // On PostgreSQL: the same leads with the same ids, the waiting job, the session.
    graph.set_always(None);
    add_leads(&graph, 99, 1);
    let new = Instance::start(dir.path(), &db, &graph, &[]).await;
    let after = new.get_json("/api/leads?order=asc").await["leads"].clone();
    assert_eq!(after.as_array().unwrap().len(), 5);
    for (a, b) in before
        .as_array()
        .unwrap()
        .iter()
        .zip(after.as_array().unwrap())
    {
        assert_eq!(a["id"], b["id"]);
        assert_eq!(a["leadgen_id"], b["leadgen_id"]);
        assert_eq!(a["fields"], b["fields"]);
    }
    assert_eq!(
        shared::status_with(&new, &cookie).await,
        200,
        "the session moved"
    );
    // The destination moved with its secret, and its waiting deliveries are sent from here.
    receiver.answer(crate::helpers::receiver::Answer::Ok);
    let got = receiver.wait_for_accepted(5, Duration::from_secs(20)).await;
    assert!(
        got.iter().all(|r| r.verified),
        "signed with the same secret"
    );
    // The waiting job is still there (retried after its backoff) and its lead gets the next
    // id: the sequence continues after the copied ids.
    let last = before[4]["id"].as_i64().unwrap();
    let mut stream = new.open_stream(Some(last)).await;
    let next = stream.leads(1, Duration::from_secs(20)).await;
    assert_eq!(next[0]["leadgen_id"], waiting);
    assert!(next[0]["id"].as_i64().unwrap() > last);

    // Copying again would mix two histories: refused, nothing changed.
    let again = migrate(&sqlite, &db);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("empty database only"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(saved(&db).await.0.len(), 6);
}
