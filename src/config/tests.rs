use super::*;

fn cli(args: &[&str]) -> Cli {
    let mut all = vec!["leadstream"];
    all.extend_from_slice(args);
    Cli::parse_with_empty_unset(all).unwrap()
}

#[test]
fn secrets_never_show_in_debug() {
    let s = format!("{:?}", Secret::new("hunter2"));
    assert!(!s.contains("hunter2"));
}

#[test]
fn demo_mode_with_a_database_url_is_a_one_line_error() {
    let url = ["--database-url", "postgres://localhost/leads"];
    for args in [
        vec!["--demo", "--dashboard-token", "abcdefgh"],
        vec!["--dashboard-token", "abcdefgh"],
    ] {
        let err = cli(&[&args[..], &url[..]].concat())
            .into_settings()
            .unwrap_err();
        assert!(err.contains("SQLite only"), "{err}");
        assert!(!err.contains('\n'));
    }
    // An empty URL is no URL: the demo starts on SQLite.
    let s = cli(&["--demo", "--database-url", " "])
        .into_settings()
        .unwrap();
    assert!(s.demo && s.database_url.is_none());
}

#[test]
fn a_half_configured_app_is_a_one_line_error() {
    let mut c = cli(&["--dashboard-token", "abcdefgh"]);
    c.app_secret = Some(Secret::new("x"));
    let err = c.into_settings().unwrap_err();
    assert!(
        err.contains("META_WEBHOOK_VERIFY_TOKEN is required"),
        "{err}"
    );
    assert!(!err.contains('\n'));
}

#[test]
fn an_empty_value_is_unset_for_every_setting() {
    let s = cli(&[
        "--listen=",
        "--db=",
        "--meta-app-secret=",
        "--meta-webhook-verify-token",
        "",
        "--meta-page-access-token=  ",
        "--meta-page-id=",
        "--meta-graph-url=",
        "--dashboard-token=",
        "--public-url=",
        "--trust-proxy-header=",
        "--max-connections=",
        "--idle-timeout",
        "",
        "--head-timeout=",
    ])
    .into_settings()
    .unwrap();
    assert!(s.meta.is_none() && s.demo, "no Meta app: demo mode");
    assert_eq!(s.demo_reason, Some("no META_* settings were found"));
    assert!(s.token_generated && s.dashboard_token.expose().len() >= 8);
    assert_eq!(s.listen, DEFAULT_LISTEN.parse().unwrap());
    assert_eq!(s.db, PathBuf::from(DEFAULT_DB));
    assert_eq!(s.public_url, None);
    assert_eq!(s.trust_proxy_header, None);
    assert_eq!(s.limits.max_connections, None);
    assert_eq!(s.limits.idle_timeout, Limits::default().idle_timeout);
    assert_eq!(s.limits.head_timeout, Limits::default().head_timeout);

    // An empty line beside a real one is no reason to start half-configured.
    let mut c = cli(&["--meta-app-secret=", "--meta-page-id="]);
    c.verify_token = Some(Secret::new("verify"));
    let err = c.into_settings().unwrap_err();
    assert!(err.starts_with("META_APP_SECRET is required"), "{err}");
}

#[test]
fn page_ids_must_be_digits() {
    assert_eq!(parse_page_ids("1, 2,").unwrap(), vec!["1", "2"]);
    assert!(parse_page_ids("1,../x").is_err());
}

#[test]
fn a_backup_with_a_database_url_points_to_pg_dump() {
    let err = cli(&[
        "backup",
        "copy.db",
        "--database-url",
        "postgres://localhost/leads",
    ])
    .into_invocation()
    .unwrap_err();
    assert!(err.contains("pg_dump"), "{err}");
    assert!(!err.contains('\n'));
    let ok = cli(&["backup", "copy.db", "--database-url", ""]).into_invocation();
    assert!(matches!(ok, Ok(Invocation::Backup { .. })));
}

#[test]
fn the_retention_period_is_whole_days_and_the_metrics_token_at_least_8_characters() {
    let with =
        |args: &[&str]| cli(&[&["--dashboard-token", "abcdefgh"], args].concat()).into_settings();
    let s = with(&["--leads-retention-days", "30"]).unwrap();
    assert_eq!(s.tuning.retention, Some(Duration::from_secs(30 * 86_400)));
    assert_eq!(with(&[]).unwrap().tuning.retention, None);
    for bad in ["0", "-1", "1.5", "a year", "36501"] {
        let err = with(&[&format!("--leads-retention-days={bad}")]).unwrap_err();
        assert!(err.contains("LEADS_RETENTION_DAYS"), "{bad}: {err}");
    }
    assert!(with(&["--metrics-token", "short"])
        .unwrap_err()
        .contains("METRICS_TOKEN"));
    let s = with(&["--metrics-token", "long-enough"]).unwrap();
    assert_eq!(s.metrics_token.unwrap().expose(), "long-enough");
}
