//! Working the leads as a team: users and their logins, changes with their version, notes,
//! the `update` events on the stream, erasing a lead the team worked on, and the upgrade from
//! a database that had none.

mod changes;
mod erasure;
mod upgrade;
mod users;

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

pub const WAIT: Duration = Duration::from_secs(10);
pub const PASSWORD: &str = "a long enough password";

/// Adds a user through the API with the dashboard token (an admin).
pub async fn add_user(app: &TestApp, name: &str, admin: bool) {
    let r = app
        .client
        .post(app.url("/api/users"))
        .bearer_auth(DASHBOARD_TOKEN)
        .json(&json!({"name": name, "password": PASSWORD, "admin": admin}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

/// A client that does not follow redirects (a login answers 303).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Logs in by name and password; the answer.
pub async fn log_in(app: &TestApp, name: &str, password: &str) -> reqwest::Response {
    browser()
        .post(app.url("/login"))
        .form(&[("name", name), ("password", password)])
        .send()
        .await
        .unwrap()
}

/// The `leadstream_session=…` pair of a good login.
pub async fn session(app: &TestApp, name: &str) -> String {
    let r = log_in(app, name, PASSWORD).await;
    assert_eq!(r.status(), 303, "{name} logs in");
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_string()
}

/// A request with the session `cookie`, and its status and JSON answer (or Null).
pub async fn call(
    app: &TestApp,
    cookie: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = browser()
        .request(method, app.url(path))
        .header("cookie", cookie);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Saves `n` leads through the webhook (ids from `first`); their rows, oldest first.
pub async fn saved_leads(app: &TestApp, first: u64, n: u64) -> Vec<Value> {
    let before = app.lead_count().await;
    let ids = add_graph_leads(app, first, n);
    for id in &ids {
        app.deliver(&[id]).await;
    }
    let want = before + n as i64;
    assert_eq!(app.wait_for_count(want, WAIT).await, want);
    let mut leads = app.leads("sort=received_at&order=asc&limit=500").await["leads"]
        .as_array()
        .unwrap()
        .clone();
    leads.retain(|l| ids.contains(&l["leadgen_id"].as_str().unwrap().to_string()));
    leads
}
