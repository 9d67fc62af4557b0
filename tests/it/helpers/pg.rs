//! The PostgreSQL side of the tests: `LEADSTREAM_TEST_DATABASE_URL` names a server (the
//! Makefile starts a throwaway one with scripts/throwaway-postgres), and then every test app
//! runs on a database of its own, made with CREATE DATABASE. Unset, the tests run on SQLite.

use std::time::Duration;

use tokio_postgres::NoTls;

/// The test server's URL, when the suite runs on PostgreSQL.
pub fn server_url() -> Option<String> {
    std::env::var("LEADSTREAM_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
}

/// True when the suite runs on PostgreSQL.
pub fn on_postgres() -> bool {
    server_url().is_some()
}

/// For tests about SQLite itself (its file, one process's start-up): true, with a line
/// saying why, when the suite runs on PostgreSQL; the test then returns.
pub fn skip_on_postgres(why: &str) -> bool {
    let skip = on_postgres();
    if skip {
        eprintln!("skipped on PostgreSQL: {why}");
    }
    skip
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let mut u = url::Url::parse(url).expect("LEADSTREAM_TEST_DATABASE_URL is a URL");
        u.set_path(&format!("/{name}"));
        u.to_string()
    } else {
        // key=value form: a later key wins.
        format!("{url} dbname={name}")
    }
}

/// A connection to `url`, driven on a task of its own.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL ({url}): {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A new, empty database on the test server; its URL. `None` when the suite runs on SQLite.
pub async fn fresh_database() -> Option<String> {
    let server = server_url()?;
    let name = format!("t_{}", leadstream::config::random_token(6));
    let admin = connect(&server).await;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    Some(with_database(&server, &name))
}

/// Restarts the test server the way a crash would (`pg_ctl restart -m immediate`), when the
/// Makefile's throwaway server runs the tests (it says how). `false` when it cannot.
pub fn restart_server() -> bool {
    let (Ok(pg_ctl), Ok(data)) = (
        std::env::var("LEADSTREAM_TEST_PG_CTL"),
        std::env::var("LEADSTREAM_TEST_PG_DATA"),
    ) else {
        return false;
    };
    // As root the cluster belongs to `postgres` (PostgreSQL refuses to run as root).
    let as_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let mut cmd = if as_root {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--", &pg_ctl]);
        c
    } else {
        std::process::Command::new(&pg_ctl)
    };
    let out = cmd
        .args(["-D", &data, "-m", "immediate", "-w", "-t", "30"])
        .args(["-l", &format!("{data}/../server.log"), "restart"])
        .output()
        .expect("run pg_ctl");
    assert!(
        out.status.success(),
        "pg_ctl restart failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

/// Waits until `url` answers again (after a restart).
pub async fn wait_until_up(url: &str, timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    while tokio_postgres::connect(url, NoTls).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "PostgreSQL did not come back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
