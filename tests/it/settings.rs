//! Settings as people write them: an empty value is unset wherever it comes from (a flag, the
//! environment or `.env`), so the copied `.env.example` starts demo mode and an empty secret is
//! never a key. The real binary, started in a directory of its own.

use std::path::Path;
use std::time::{Duration, Instant};

use leadstream::ingest::signature::sign;

use crate::helpers::bodies::leadgen_body;
use crate::helpers::lead_id;
use crate::helpers::process::Process;

/// `.env.example` as shipped, copied to `dir/.env` (`cp .env.example .env`).
fn copy_env_example(dir: &Path) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join(".env.example");
    std::fs::copy(example, dir.join(".env")).unwrap();
}

/// Waits for the start-up line on stdout; returns it.
async fn started(p: &mut Process) -> String {
    p.first_stdout_line(Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("no start-up line: {:?}", p.log()))
}

/// Checks that the process runs the simulated Meta with a generated token, and that a webhook
/// signed with an empty key (which anyone can compute) is refused.
async fn assert_demo_mode_with_a_generated_token(p: &mut Process) {
    let line = started(p).await;
    assert!(line.contains("/?token="), "a generated token: {line}");
    assert!(
        p.logged(
            "demo mode (no META_* settings were found)",
            Duration::from_secs(5)
        )
        .await,
        "{:?}",
        p.log()
    );
    let base = p.base_url().await;
    let body = leadgen_body(&[&lead_id(1)]);
    let r = reqwest::Client::new()
        .post(format!("{base}/webhook"))
        .header("x-hub-signature-256", sign(b"", &body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "HMAC(\"\", body) is no signature");
}

/// Waits for the process to exit; returns its code and its log.
async fn exited(p: &mut Process) -> (Option<i32>, Vec<String>) {
    let code = p.exit_code(Duration::from_secs(20)).await;
    // The threads reading the pipes may lag behind the exit by a moment.
    let deadline = Instant::now() + Duration::from_secs(2);
    while p.log().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (code, p.log())
}

#[tokio::test]
async fn a_copied_env_example_with_nothing_filled_in_starts_demo_mode() {
    let dir = tempfile::tempdir().unwrap();
    copy_env_example(dir.path());
    // The example's port may be taken on this machine; the environment wins over `.env`.
    let mut p = Process::start(dir.path(), &[("LISTEN_ADDR", "127.0.0.1:0")]);
    assert_demo_mode_with_a_generated_token(&mut p).await;
    assert!(dir.path().join("leads.db").exists(), "LEADS_DB from .env");
}

#[tokio::test]
async fn empty_environment_variables_are_unset() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = vec![("LISTEN_ADDR", "127.0.0.1:0")];
    for name in [
        "META_APP_SECRET",
        "META_WEBHOOK_VERIFY_TOKEN",
        "META_PAGE_ACCESS_TOKEN",
        "META_PAGE_ID",
        "META_GRAPH_URL",
        "DASHBOARD_TOKEN",
        "LEADS_DB",
        "PUBLIC_URL",
        "LEADSTREAM_DEMO",
        "TRUST_PROXY_HEADER",
        "MAX_CONNECTIONS",
        "MAX_CONNECTIONS_PER_IP",
        "IDLE_TIMEOUT",
        "HEAD_TIMEOUT",
        "BODY_TIMEOUT",
        "WRITE_TIMEOUT",
        "BODY_BUDGET_MIB",
    ] {
        env.push((name, ""));
    }
    let mut p = Process::start(dir.path(), &env);
    assert_demo_mode_with_a_generated_token(&mut p).await;
    assert!(dir.path().join("leads.db").exists(), "the default LEADS_DB");
}

#[tokio::test]
async fn empty_flags_are_unset() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Process::start_with_args(
        dir.path(),
        &[],
        &[
            "--listen",
            "127.0.0.1:0",
            "--meta-app-secret=",
            "--meta-webhook-verify-token",
            "",
            "--meta-page-access-token=",
            "--dashboard-token=",
            "--public-url=",
            "--trust-proxy-header=",
            "--max-connections=",
            "--idle-timeout",
            "",
            "--body-budget-mib= ",
        ],
    );
    assert_demo_mode_with_a_generated_token(&mut p).await;
}

#[tokio::test]
async fn an_empty_environment_variable_lets_env_file_speak() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "DASHBOARD_TOKEN=from-the-env-file-123\n",
    )
    .unwrap();
    let mut p = Process::start(
        dir.path(),
        &[("LISTEN_ADDR", "127.0.0.1:0"), ("DASHBOARD_TOKEN", "")],
    );
    let line = started(&mut p).await;
    assert!(
        !line.contains("token="),
        "the token is not generated: {line}"
    );
    let base = p.base_url().await;
    let r = reqwest::Client::new()
        .get(format!("{base}/api/leads/count"))
        .bearer_auth("from-the-env-file-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the token from .env opens the API");
}

#[tokio::test]
async fn a_half_configured_meta_app_is_one_line_and_exit_code_2_from_env_and_env_file() {
    // The environment: one secret given, the others empty.
    let dir = tempfile::tempdir().unwrap();
    let mut p = Process::start(
        dir.path(),
        &[
            ("LISTEN_ADDR", "127.0.0.1:0"),
            ("META_APP_SECRET", "a-real-secret"),
            ("META_WEBHOOK_VERIFY_TOKEN", ""),
            ("META_PAGE_ACCESS_TOKEN", ""),
        ],
    );
    let (code, log) = exited(&mut p).await;
    assert_eq!(code, Some(2), "{log:?}");
    assert_eq!(log.len(), 1, "one line: {log:?}");
    assert!(
        log[0].contains("META_WEBHOOK_VERIFY_TOKEN is required"),
        "{log:?}"
    );

    // `.env`: the example with only the page token filled in.
    let dir = tempfile::tempdir().unwrap();
    copy_env_example(dir.path());
    let env = std::fs::read_to_string(dir.path().join(".env")).unwrap();
    let env = env.replace(
        "META_PAGE_ACCESS_TOKEN=\n",
        "META_PAGE_ACCESS_TOKEN=EAAG-token\n",
    );
    std::fs::write(dir.path().join(".env"), env).unwrap();
    let mut p = Process::start(dir.path(), &[("LISTEN_ADDR", "127.0.0.1:0")]);
    let (code, log) = exited(&mut p).await;
    assert_eq!(code, Some(2), "{log:?}");
    assert_eq!(log.len(), 1, "one line: {log:?}");
    assert!(log[0].contains("META_APP_SECRET is required"), "{log:?}");
    assert!(p.stdout().is_empty(), "nothing starts: {:?}", p.stdout());
}

#[tokio::test]
async fn a_timeout_too_long_to_count_is_a_one_line_error_not_a_server_that_answers_nothing() {
    // Such a deadline overflows the clock: every connection's task would panic, so the server
    // would listen and never answer.
    for name in [
        "IDLE_TIMEOUT",
        "HEAD_TIMEOUT",
        "BODY_TIMEOUT",
        "WRITE_TIMEOUT",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Process::start(
            dir.path(),
            &[
                ("LISTEN_ADDR", "127.0.0.1:0"),
                (name, "18446744073709551615"),
            ],
        );
        let (code, log) = exited(&mut p).await;
        assert_eq!(code, Some(2), "{name}: {log:?}");
        assert_eq!(log.len(), 1, "one line: {log:?}");
        assert!(log[0].contains(name), "{log:?}");
        assert!(p.stdout().is_empty(), "nothing starts: {:?}", p.stdout());
    }
}
