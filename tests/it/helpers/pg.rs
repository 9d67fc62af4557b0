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

/// A PostgreSQL server of a test's own (scripts/throwaway-postgres), for a test that
/// restarts it: the shared test server must not go away under the other tests. Stopped and
/// removed when dropped.
pub struct PrivateServer {
    dir: String,
    pub url: String,
}

fn script() -> std::process::Command {
    std::process::Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/throwaway-postgres"
    ))
}

impl PrivateServer {
    pub fn start() -> PrivateServer {
        let out = script()
            .arg("start")
            .output()
            .expect("run throwaway-postgres");
        assert!(
            out.status.success(),
            "throwaway-postgres start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let url = text
            .lines()
            .find_map(|l| l.strip_prefix("export LEADSTREAM_TEST_DATABASE_URL='"))
            .and_then(|l| l.strip_suffix('\''))
            .expect("the URL line")
            .to_string();
        let dir = text
            .lines()
            .find_map(|l| l.rsplit_once(" stop ").map(|(_, d)| d.to_string()))
            .expect("the stop line");
        PrivateServer { dir, url }
    }

    /// `pg_ctl restart -m immediate`: every connection is cut, as in a crash.
    pub fn restart(&self) {
        let out = script()
            .args(["restart", &self.dir])
            .output()
            .expect("run throwaway-postgres");
        assert!(
            out.status.success(),
            "throwaway-postgres restart: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = script().args(["stop", &self.dir]).output();
    }
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
