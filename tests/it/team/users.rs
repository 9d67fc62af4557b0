//! Users: who may manage them, wrong passwords, removal ending sessions and streams, and
//! passwords kept out of logs and answers.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::*;
use crate::helpers::process::{meta_env, Process};

#[tokio::test]
async fn a_member_cannot_manage_users_but_may_list_them() {
    let app = TestApp::spawn().await;
    add_user(&app, "ada", false).await;
    add_user(&app, "boss", true).await;
    let (ada, boss) = (session(&app, "ada").await, session(&app, "boss").await);
    let new = json!({"name": "eve", "password": PASSWORD});
    let (status, _) = call(&app, &ada, Method::POST, "/api/users", Some(new.clone())).await;
    assert_eq!(status, 403);
    let (status, _) = call(&app, &ada, Method::DELETE, "/api/users/boss", None).await;
    assert_eq!(status, 403);
    let (status, list) = call(&app, &ada, Method::GET, "/api/users", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["me"], json!({"name": "ada", "role": "member"}));
    let names: Vec<&str> = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ada", "boss"]);
    // An admin may; a name taken in another case is refused.
    let (status, _) = call(&app, &boss, Method::POST, "/api/users", Some(new)).await;
    assert_eq!(status, 201);
    let again = json!({"name": "EVE", "password": PASSWORD});
    let (status, _) = call(&app, &boss, Method::POST, "/api/users", Some(again)).await;
    assert_eq!(status, 400);
    let short = json!({"name": "bob", "password": "short"});
    let (status, answer) = call(&app, &boss, Method::POST, "/api/users", Some(short)).await;
    assert_eq!(status, 400);
    assert!(answer["error"].as_str().unwrap().contains("too short"));
}

#[tokio::test]
async fn wrong_passwords_are_limited_like_token_guesses() {
    let app = TestApp::spawn().await;
    add_user(&app, "ada", false).await;
    for i in 1..=10 {
        let r = log_in(&app, "ada", &format!("wrong password {i}")).await;
        assert_eq!(r.status(), 401, "attempt {i}");
        assert!(r.headers().get("set-cookie").is_none());
    }
    // An unknown name counts too, and says no more than a wrong password.
    let r = log_in(&app, "ada", PASSWORD).await;
    assert_eq!(
        r.status(),
        429,
        "the right password does not bypass the limit"
    );
    let r = browser()
        .post(app.url("/login"))
        .form(&[("token", DASHBOARD_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429, "one limit for both doors");
    assert_eq!(app.get_authed("/api/leads").await.status(), 429);
}

#[tokio::test]
async fn removing_a_user_ends_their_session_and_their_stream() {
    let app = TestApp::spawn().await;
    add_user(&app, "ada", false).await;
    add_user(&app, "grace", false).await;
    let (ada, grace) = (session(&app, "ada").await, session(&app, "grace").await);
    let res = app
        .stream_with(Via::Browser, Creds::Cookie(&ada), "", None)
        .await;
    assert_eq!(res.status(), 200);
    let mut stream = SseClient::new(res);
    let r = app
        .client
        .delete(app.url("/api/users/ada"))
        .bearer_auth(DASHBOARD_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let ev = stream
        .next_event(WAIT)
        .await
        .expect("an event before the end");
    assert_eq!(ev.event, "logout");
    assert!(stream.next_event(WAIT).await.is_none(), "the stream ends");
    let (status, _) = call(&app, &ada, Method::GET, "/api/leads", None).await;
    assert_eq!(status, 401);
    let r = log_in(&app, "ada", PASSWORD).await;
    assert_eq!(r.status(), 401, "a removed user cannot log in");
    let (status, _) = call(&app, &grace, Method::GET, "/api/leads", None).await;
    assert_eq!(status, 200, "other users' sessions go on");
}

/// Runs `leadstream users …` on the database in `dir` with `stdin`; exit code, stdout, stderr.
fn users_cmd(dir: &std::path::Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_leadstream"));
    cmd.arg("--db")
        .arg(dir.join("leads.db"))
        .arg("users")
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "trace")
        .env_remove("DATABASE_URL")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_users_command_and_passwords_never_in_logs_or_answers() {
    if crate::helpers::pg::skip_on_postgres("runs the binary on its own SQLite file") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let secret = "s3cret-Horse-battery";
    let (code, out, err) = users_cmd(dir.path(), &["add", "Ada"], &format!("{secret}\n"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "added Ada (member)");
    let (code, _, err) = users_cmd(dir.path(), &["add", "ada"], &format!("{secret}\n"));
    assert_eq!((code, err.contains("already")), (1, true), "{err}");
    let (code, _, err) = users_cmd(dir.path(), &["add", "bob"], "short\n");
    assert_eq!((code, err.contains("too short")), (2, true), "{err}");
    let (code, _, err) = users_cmd(dir.path(), &["add", "bob"], "");
    assert_eq!((code, err.contains("empty")), (2, true), "{err}");
    let (code, out, _) = users_cmd(
        dir.path(),
        &["add", "boss", "--admin"],
        &format!("{secret}\n"),
    );
    assert_eq!((code, out.trim()), (0, "added boss (admin)"));
    let (code, out, _) = users_cmd(dir.path(), &["list"], "");
    assert_eq!(code, 0);
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!((lines[0][0], lines[0][1]), ("Ada", "member"));
    assert_eq!((lines[1][0], lines[1][1]), ("boss", "admin"));
    let (code, _, err) = users_cmd(dir.path(), &["remove", "nobody"], "");
    assert_eq!((code, err.contains("no user named nobody")), (1, true));
    let mut logs = Vec::new();

    // The server on that file, logging everything it can.
    let graph = FakeGraph::start(PAGE_TOKEN, APP_SECRET).await;
    let graph_url = graph.url();
    let mut env = meta_env(&graph_url);
    env.retain(|(k, _)| *k != "RUST_LOG");
    env.push(("RUST_LOG", "trace"));
    let mut server = Process::start(dir.path(), &env);
    let base = server.base_url().await;
    let client = browser();
    let mut answers = Vec::new();
    let r = client
        .post(format!("{base}/login"))
        .form(&[("name", "ada"), ("password", secret)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "a user made by the command logs in");
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let r = client
        .post(format!("{base}/login"))
        .form(&[("name", "ada"), ("password", &format!("{secret}x"))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    answers.push(r.text().await.unwrap());
    for path in ["/api/users", "/api/leads", "/api/status"] {
        let r = client
            .get(format!("{base}{path}"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        answers.push(r.text().await.unwrap());
    }
    let r = client
        .post(format!("{base}/api/users"))
        .bearer_auth(DASHBOARD_TOKEN)
        .json(&json!({"name": "eve", "password": secret}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    answers.push(r.text().await.unwrap());

    // A new password from the shell ends the session, in the running server too.
    let (code, _, err) = users_cmd(dir.path(), &["passwd", "ada"], "another long password\n");
    assert_eq!(code, 0, "{err}");
    logs.push(err);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let r = client
            .get(format!("{base}/api/leads"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        if r.status() == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the session outlived the password"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    logs.extend(server.log());
    let all = format!("{}\n{}", logs.join("\n"), answers.join("\n"));
    assert!(
        all.contains("dashboard login: Ada"),
        "the logs were captured"
    );
    assert!(
        !all.contains(secret),
        "a password reached a log or an answer"
    );
    assert!(
        !all.contains("argon2"),
        "a password hash reached a log or an answer"
    );
}
