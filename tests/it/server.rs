//! The accept loop (src/server.rs), over raw TCP so each test knows which path serves it: a
//! fresh connection's stream is written directly, a reused connection's goes through hyper,
//! and everything that is not a plain authorised stream request is hyper's and warp's.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

const WAIT: Duration = Duration::from_secs(10);

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

fn stream_request(extra_headers: &str) -> String {
    format!(
        "GET /api/stream HTTP/1.1\r\nHost: leadstream\r\nAuthorization: Bearer {DASHBOARD_TOKEN}\r\n{extra_headers}\r\n"
    )
}

/// Reads until `needle` is in `buf` (which keeps everything read); panics after `WAIT`.
async fn read_until(s: &mut TcpStream, buf: &mut Vec<u8>, needle: &str) {
    let found = tokio::time::timeout(WAIT, async {
        while !String::from_utf8_lossy(buf).contains(needle) {
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "closed before {needle:?}: {}",
                String::from_utf8_lossy(buf)
            );
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "no {needle:?} in {}",
        String::from_utf8_lossy(buf)
    );
}

/// Opens a connection, sends `request` and reads until `needle`: the connection, and all it read.
async fn exchange(app: &TestApp, request: &[u8], needle: &str) -> (TcpStream, Vec<u8>) {
    let mut s = connect(app).await;
    s.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    read_until(&mut s, &mut buf, needle).await;
    (s, buf)
}

/// The head of the first answer in `buf`, lower-cased, and the bytes after it.
fn split_head(buf: &[u8]) -> (String, Vec<u8>) {
    let text = String::from_utf8_lossy(buf);
    let end = text.find("\r\n\r\n").expect("a whole head") + 4;
    (text[..end].to_ascii_lowercase(), buf[end..].to_vec())
}

/// Sends one lead through the webhook and returns its leadgen id.
async fn send_lead(app: &TestApp, n: u64) -> String {
    let id = add_graph_leads(app, n, 1).remove(0);
    app.deliver(&[&id]).await;
    id
}

#[tokio::test]
async fn a_fresh_connection_gets_a_close_delimited_stream_with_every_security_header() {
    let app = TestApp::spawn().await;
    let (mut s, mut buf) = exchange(&app, stream_request("").as_bytes(), "retry: 2000\n").await;
    let (head, _) = split_head(&buf);
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    for line in [
        "content-type: text/event-stream",
        "cache-control: no-store",
        "x-accel-buffering: no",
        "connection: close",
        "x-content-type-options: nosniff",
        "referrer-policy: no-referrer",
        "x-frame-options: deny",
        "content-security-policy: default-src 'self';",
    ] {
        assert!(
            head.contains(&format!("\r\n{line}")),
            "no {line:?} in {head}"
        );
    }
    assert!(
        !head.contains("transfer-encoding"),
        "served directly, not by hyper: {head}"
    );

    let id = send_lead(&app, 1).await;
    read_until(&mut s, &mut buf, &id).await;
    let (_, body) = split_head(&buf);
    let body = String::from_utf8(body).unwrap();
    let event = body.split("\n\n").find(|e| e.contains(&id)).unwrap();
    let mut lines = event.lines();
    assert_eq!(lines.next(), Some("id: 1"));
    assert_eq!(lines.next(), Some("event: lead"));
    let lead: Value =
        serde_json::from_str(lines.next().unwrap().strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(lead["leadgen_id"], id.as_str());
}

#[tokio::test]
async fn a_stream_on_a_reused_connection_is_served_by_hyper_with_the_same_events() {
    let app = TestApp::spawn().await;
    let first = send_lead(&app, 1).await;
    assert_eq!(app.wait_for_count(1, WAIT).await, 1);
    let (mut s, buf) = exchange(
        &app,
        b"GET /healthz HTTP/1.1\r\nHost: leadstream\r\n\r\n",
        "\r\n\r\n",
    )
    .await;
    let (head, _) = split_head(&buf);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .expect("a sized health answer")
        .trim()
        .parse()
        .unwrap();
    let (_, mut rest) = split_head(&buf);
    while rest.len() < length {
        let mut chunk = [0u8; 1024];
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0);
        rest.extend_from_slice(&chunk[..n]);
    }

    // Same connection, second request: hyper has it now, and answers in chunks.
    s.write_all(stream_request("Last-Event-ID: 0\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    read_until(&mut s, &mut buf, &first).await;
    let (head, _) = split_head(&buf);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(head.contains("content-security-policy:"), "{head}");
    let second = send_lead(&app, 2).await;
    read_until(&mut s, &mut buf, &second).await;
    assert!(String::from_utf8_lossy(&buf).contains("id: 2\nevent: lead\n"));
}

#[tokio::test]
async fn a_head_that_arrives_in_pieces_is_still_served() {
    let app = TestApp::spawn().await;
    let mut s = connect(&app).await;
    let req = stream_request("");
    for piece in [
        &req[..3],
        &req[3..20],
        &req[20..req.len() - 1],
        &req[req.len() - 1..],
    ] {
        s.write_all(piece.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut buf = Vec::new();
    read_until(&mut s, &mut buf, "retry: 2000\n").await;
    let (head, _) = split_head(&buf);
    assert!(head.contains("connection: close"), "{head}");
}

#[tokio::test]
async fn requests_that_are_not_plain_authorised_streams_get_the_routed_answers() {
    let app = TestApp::spawn().await;

    // No credentials: warp's 401, JSON, with the security headers.
    let (_, buf) = exchange(
        &app,
        b"GET /api/stream HTTP/1.1\r\nHost: leadstream\r\n\r\n",
        "\"error\"",
    )
    .await;
    let (head, _) = split_head(&buf);
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(head.contains("content-security-policy:"), "{head}");

    // A head longer than the sniffing reads goes to hyper whole, and is served there.
    let padding = format!("X-Padding: {}\r\n", "p".repeat(20 * 1024));
    let (_, buf) = exchange(&app, stream_request(&padding).as_bytes(), "retry: 2000\n").await;
    let (head, _) = split_head(&buf);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("transfer-encoding: chunked"),
        "via hyper: {head}"
    );

    // Two pipelined requests in one write: both answered, in order.
    let (_, buf) = exchange(
        &app,
        b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /no-such-page HTTP/1.1\r\nHost: a\r\n\r\n",
        "not found",
    )
    .await;
    let text = String::from_utf8_lossy(&buf);
    let statuses: Vec<&str> = text
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &text[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "404"], "{text}");

    // A body on the stream route is not a stream request for the direct path either.
    let mut s = connect(&app).await;
    s.write_all(stream_request("Content-Length: 2\r\n").as_bytes())
        .await
        .unwrap();
    s.write_all(b"hi").await.unwrap();
    let mut buf = Vec::new();
    read_until(&mut s, &mut buf, "\r\n\r\n").await;
    let (head, _) = split_head(&buf);
    assert!(!head.contains("connection: close"), "via hyper: {head}");
}

#[tokio::test]
async fn a_client_that_leaves_frees_its_subscription_without_waiting_for_a_keepalive() {
    // The default 15 s keep-alive: only reading the socket can notice the close in time.
    let app = TestApp::spawn().await;
    let (s, _) = exchange(&app, stream_request("").as_bytes(), "retry: 2000\n").await;
    let status = app
        .wait_for_status(WAIT, |st| st["stream_clients"] == 1)
        .await;
    assert_eq!(status["stream_clients"], 1);
    drop(s);
    let status = app
        .wait_for_status(Duration::from_secs(2), |st| st["stream_clients"] == 0)
        .await;
    assert_eq!(status["stream_clients"], 0, "{status}");
}

#[tokio::test]
async fn shutdown_ends_direct_streams_cleanly_and_closes_idle_connections() {
    let mut app = TestApp::spawn().await;
    let (mut stream, _) = exchange(&app, stream_request("").as_bytes(), "retry: 2000\n").await;
    // Connected, but no request yet.
    let mut idle = connect(&app).await;
    tokio::time::sleep(Duration::from_millis(50)).await;

    let took = app.stop().await;
    assert!(took < Duration::from_secs(2), "stop took {took:?}");
    for s in [&mut stream, &mut idle] {
        let mut rest = Vec::new();
        let end = tokio::time::timeout(Duration::from_secs(1), s.read_to_end(&mut rest)).await;
        assert!(matches!(end, Ok(Ok(_))), "not closed cleanly: {end:?}");
    }
}

/// Reads until the server closes the connection; false if it is still open after `WAIT`.
async fn closed_by_server(s: &mut TcpStream) -> bool {
    tokio::time::timeout(WAIT, async {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = s.read(&mut chunk).await {
            if n == 0 {
                break;
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn a_connection_that_sends_no_request_head_in_time_is_closed_but_streams_stay_open() {
    let app = TestApp::spawn_tuned(|s| {
        s.tuning.request_head_timeout = Duration::from_millis(300);
        s.tuning.keepalive = Duration::from_millis(200);
    })
    .await;
    let health = b"GET /healthz HTTP/1.1\r\nHost: leadstream\r\n\r\n";
    // Streams outlive the timeout: one written directly, one by hyper on a reused connection.
    let (mut direct, _) = exchange(&app, stream_request("").as_bytes(), "\r\n\r\n").await;
    let (mut reused, mut buf) = exchange(&app, health, "\r\n\r\n").await;
    reused
        .write_all(stream_request("").as_bytes())
        .await
        .unwrap();
    read_until(&mut reused, &mut buf, "text/event-stream").await;
    // Three that hold a socket without a request: silent, half a head, idle after an answer.
    let mut silent = connect(&app).await;
    let mut partial = connect(&app).await;
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: leadstream\r\n")
        .await
        .unwrap();
    let (mut idle, _) = exchange(&app, health, "\r\n\r\n").await;

    tokio::time::sleep(Duration::from_millis(900)).await;
    for (name, s) in [
        ("silent", &mut silent),
        ("partial", &mut partial),
        ("idle", &mut idle),
    ] {
        assert!(closed_by_server(s).await, "{name} connection still open");
    }
    for s in [&mut direct, &mut reused] {
        let mut buf = Vec::new();
        read_until(s, &mut buf, ": keep-alive").await;
    }
}
