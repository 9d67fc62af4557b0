//! `contrib/leadstream.service`: the sandbox it promises, and `systemd-analyze verify` where
//! systemd is installed (the test says so when it is not).

use std::path::Path;
use std::process::Command;

fn unit() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/leadstream.service"),
    )
    .unwrap()
}

#[test]
fn the_unit_runs_leadstream_sandboxed_with_its_secrets_in_an_environment_file() {
    let unit = unit();
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for directive in [
        "DynamicUser=yes",
        "StateDirectory=leadstream",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "LimitNOFILE=65536",
        "EnvironmentFile=/etc/leadstream.env",
        "Environment=LEADS_DB=/var/lib/leadstream/leads.db",
    ] {
        assert!(lines.contains(&directive), "{directive} is missing");
    }
}

#[test]
fn systemd_analyze_verify_finds_nothing_to_say() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: systemd-analyze is not installed, so contrib/leadstream.service was not verified");
        return;
    }
    // verify insists that ExecStart exists: point it at the binary these tests built.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leadstream.service");
    let unit = unit().replace(
        "/usr/local/bin/leadstream",
        env!("CARGO_BIN_EXE_leadstream"),
    );
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    // Unknown keys are only warnings (the exit code stays 0), so what it says counts too.
    let about_ours: Vec<&str> = said.lines().filter(|l| l.contains("leadstream")).collect();
    assert!(out.status.success(), "{said}");
    assert!(about_ours.is_empty(), "{about_ours:#?}");
}
