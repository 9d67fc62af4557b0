//! What a client may hold, over raw TCP: every wait has a deadline (idle, head, body, each
//! write; HTTP/2 idle), request bodies share one budget, and connections are capped in all
//! and per address, with a clear 503 beyond. Streams and webhooks keep working meanwhile.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::raw::*;
use crate::helpers::*;

const SHORT: Duration = Duration::from_millis(400);

/// A signed `POST /webhook` for `id`, whole.
fn signed_webhook(id: &str) -> Vec<u8> {
    signed_webhook_of(&leadgen_body(&[id]))
}

/// A signed `POST /webhook` of `body`, whole.
fn signed_webhook_of(body: &[u8]) -> Vec<u8> {
    let sig = leadstream::ingest::signature::sign(APP_SECRET.as_bytes(), body);
    let mut req = format!(
        "POST /webhook HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n\
         X-Hub-Signature-256: {sig}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

#[tokio::test]
async fn a_silent_connection_and_a_half_sent_head_are_closed_in_time_while_streams_stay_open() {
    let app = TestApp::spawn_tuned(|s| {
        s.limits.idle_timeout = SHORT;
        s.limits.head_timeout = SHORT;
        s.tuning.keepalive = Duration::from_millis(200);
    })
    .await;
    let health = get_request("/healthz");
    // Streams outlive every timeout: one on a fresh connection, one after another request.
    let (mut fresh, _) = exchange(&app, stream_request("").as_bytes(), "\r\n\r\n").await;
    let (mut reused, mut buf) = exchange(&app, health.as_bytes(), "\r\n\r\n").await;
    read_answer(&mut reused, &mut buf).await;
    reused
        .write_all(stream_request("").as_bytes())
        .await
        .unwrap();
    read_until(&mut reused, &mut buf, "text/event-stream").await;
    // Three that hold a socket without a request: silent, half a head, idle after an answer.
    let started = Instant::now();
    let mut silent = connect(&app).await;
    let mut partial = connect(&app).await;
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: leadstream\r\n")
        .await
        .unwrap();
    let (mut idle, mut buf) = exchange(&app, health.as_bytes(), "\r\n\r\n").await;
    read_answer(&mut idle, &mut buf).await;
    for (name, s) in [
        ("silent", &mut silent),
        ("partial", &mut partial),
        ("idle", &mut idle),
    ] {
        assert!(
            closed_by_server(s, RAW_WAIT).await,
            "{name} connection still open"
        );
    }
    assert!(started.elapsed() >= SHORT, "closed before the timeout");
    tokio::time::sleep(SHORT * 2).await;
    for s in [&mut fresh, &mut reused] {
        let mut buf = Vec::new();
        read_until(s, &mut buf, ": keep-alive\n").await;
    }
}

#[tokio::test]
async fn a_body_that_stalls_gets_408_within_the_body_timeout_and_its_connection_closes() {
    let app = TestApp::spawn_tuned(|s| s.limits.body_timeout = SHORT).await;
    let started = Instant::now();
    let (mut s, mut buf) = exchange(
        &app,
        b"POST /webhook HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n{",
        "\r\n\r\n",
    )
    .await;
    let took = started.elapsed();
    let (head, _) = read_answer(&mut s, &mut buf).await;
    assert!(head.starts_with("http/1.1 408"), "{head}");
    assert!(head.contains("content-security-policy:"), "{head}");
    assert!(took >= SHORT && took < SHORT * 5, "answered after {took:?}");
    assert!(closed_by_server(&mut s, RAW_WAIT).await);
}

#[tokio::test]
async fn stalled_bodies_hold_no_more_than_the_body_budget_and_release_it_at_their_deadline() {
    let timeout = Duration::from_millis(1500);
    let app = TestApp::spawn_tuned(|s| {
        s.limits.body_budget = 4 * 1024 * 1024;
        s.limits.body_timeout = timeout;
    })
    .await;
    // Takes most of the budget (its buffer grows to all of it), then stalls.
    let started = Instant::now();
    let mut staller = connect(&app).await;
    staller
        .write_all(b"POST /webhook HTTP/1.1\r\nHost: a\r\nContent-Length: 4194304\r\n\r\n")
        .await
        .unwrap();
    staller.write_all(&vec![b' '; 3 << 20]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A real webhook of 1.5 MiB must wait for room: it is answered only once the staller's
    // deadline gave its room back, and in time for its own.
    let id = add_graph_leads(&app, 1, 1).remove(0);
    let hook = signed_webhook_of(&padded_json(&leadgen_body(&[&id]), 3 << 19));
    let (mut s, mut buf) = exchange(&app, &hook, "\r\n\r\n").await;
    let answered = started.elapsed();
    let (head, _) = read_answer(&mut s, &mut buf).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        answered >= timeout,
        "answered {answered:?} after the staller took the budget, before its deadline"
    );
    let mut buf = Vec::new();
    let (head, _) = read_answer(&mut staller, &mut buf).await;
    assert!(head.starts_with("http/1.1 408"), "{head}");
    assert_eq!(app.wait_for_count(1, RAW_WAIT).await, 1);
}

/// `body` (a JSON object) with spaces added before its closing brace, to `len` bytes.
fn padded_json(body: &[u8], len: usize) -> Vec<u8> {
    let mut out = body[..body.len() - 1].to_vec();
    out.resize(len - 1, b' ');
    out.push(b'}');
    out
}

/// A connection whose receive window is small, so the server's answers back up quickly.
async fn connect_with_small_window(app: &TestApp) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let addr = app.base.trim_start_matches("http://").parse().unwrap();
    socket.connect(addr).await.unwrap()
}

#[tokio::test]
async fn a_client_that_pipelines_requests_without_reading_answers_is_closed() {
    let app = TestApp::spawn_tuned(|s| s.limits.write_timeout = SHORT).await;
    let mut s = connect_with_small_window(&app).await;
    let request = "GET / HTTP/1.1\r\nHost: a\r\n\r\n".repeat(2_000);
    // Written by a task of its own: the server stops reading once its answers back up.
    let (mut read, mut write) = s.split();
    let send = async {
        let _ = write.write_all(request.as_bytes()).await;
    };
    let wait = tokio::time::sleep(SHORT * 4);
    tokio::join!(send, wait);
    // Now read everything there is: the server has given up on this client, so the
    // connection ends well before two thousand login pages.
    let mut got = Vec::new();
    let end = tokio::time::timeout(RAW_WAIT, read.read_to_end(&mut got)).await;
    assert!(end.is_ok(), "still open after {RAW_WAIT:?}");
    let answers = String::from_utf8_lossy(&got)
        .matches("HTTP/1.1 200")
        .count();
    assert!(answers < 2_000, "{answers} answers: all of them");
    drop(s);
    // The server is unharmed.
    assert_eq!(app.get_authed("/healthz").await.status(), 200);
}

#[tokio::test]
async fn a_stream_whose_client_stops_reading_is_closed_after_the_write_timeout() {
    let app = TestApp::spawn_tuned(|s| s.limits.write_timeout = SHORT).await;
    let mut s = connect_with_small_window(&app).await;
    s.write_all(stream_request("").as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    read_until(&mut s, &mut buf, "retry: 2000\n").await;
    assert_eq!(app.status().await["stream_clients"], 1);
    // Never read again while big leads go out: the socket fills, and the stream must be let
    // go of rather than held (with its frames) for ever.
    let ids = add_big_graph_leads(&app, 1, 30);
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(app.post_webhook(&leadgen_body(&ids)).await.status(), 200);
    assert_eq!(app.wait_for_count(30, RAW_WAIT).await, 30);
    let st = app
        .wait_for_status(RAW_WAIT, |st| st["stream_clients"] == 0)
        .await;
    assert_eq!(st["stream_clients"], 0, "{st}");
    assert_eq!(st["streams_written"]["open"], 0, "{st}");
}

/// Opens connections until one is refused; returns the admitted ones and the refusal.
async fn fill_up(app: &TestApp, most: usize) -> (Vec<TcpStream>, String) {
    let mut held = Vec::new();
    for _ in 0..most {
        let mut s = connect(app).await;
        // An admitted connection answers; a refused one has its 503 waiting.
        s.write_all(get_request("/healthz").as_bytes())
            .await
            .unwrap();
        let mut buf = Vec::new();
        let (head, body) = read_answer(&mut s, &mut buf).await;
        if head.starts_with("http/1.1 503") {
            return (held, head + &String::from_utf8_lossy(&body));
        }
        assert!(head.starts_with("http/1.1 200"), "{head}");
        held.push(s);
    }
    panic!("{most} connections, none refused");
}

#[tokio::test]
async fn connections_over_the_cap_get_a_short_503_and_the_ones_inside_keep_working() {
    let app = TestApp::spawn_tuned(|s| s.limits.max_connections = Some(6)).await;
    // The test's own clients may hold a pooled connection or two.
    let mut stream = app.open_stream(None).await;
    let (mut held, refusal) = fill_up(&app, 6).await;
    assert!(refusal.contains("retry-after: 5"), "{refusal}");
    assert!(refusal.contains("content-type: text/plain"), "{refusal}");
    assert!(refusal.contains("connection: close"), "{refusal}");
    assert!(refusal.contains("too many connections"), "{refusal}");
    // Inside the cap, all is well: an open stream gets its lead.
    let mut s = held.pop().unwrap();
    let id = add_graph_leads(&app, 1, 1).remove(0);
    s.write_all(&signed_webhook(&id)).await.unwrap();
    let mut buf = Vec::new();
    let (head, _) = read_answer(&mut s, &mut buf).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(
        stream.leads(1, RAW_WAIT).await[0]["leadgen_id"],
        id.as_str()
    );
    // Room again once connections close.
    drop(held);
    drop(s);
    let deadline = Instant::now() + RAW_WAIT;
    loop {
        let mut s = connect(&app).await;
        s.write_all(get_request("/healthz").as_bytes())
            .await
            .unwrap();
        let mut buf = Vec::new();
        if read_answer(&mut s, &mut buf)
            .await
            .0
            .starts_with("http/1.1 200")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no room after closing connections"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn loopback_is_not_counted_per_address_unless_asked_and_then_gets_a_503() {
    // A reverse proxy on this machine: every client arrives from 127.0.0.1.
    let proxied = TestApp::spawn_tuned(|s| s.limits.max_connections_per_ip = 2).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        let (s, _) = exchange(&proxied, get_request("/healthz").as_bytes(), "200 OK").await;
        held.push(s);
    }
    // Clients that reach leadstream on loopback themselves.
    let direct = TestApp::spawn_tuned(|s| {
        s.limits.max_connections_per_ip = 3;
        s.limits.limit_loopback = true;
    })
    .await;
    let (held, refusal) = fill_up(&direct, 4).await;
    assert!(held.len() <= 3, "{} admitted", held.len());
    assert!(refusal.contains("from your address"), "{refusal}");
    assert!(refusal.contains("retry-after: 5"), "{refusal}");
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_and_one_with_an_open_stream_is_kept() {
    let app = TestApp::spawn_tuned(|s| {
        s.limits.idle_timeout = SHORT;
        s.tuning.keepalive = Duration::from_millis(200);
    })
    .await;
    // The preface and an empty SETTINGS frame, then nothing.
    let mut idle = connect(&app).await;
    idle.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let started = Instant::now();
    assert!(closed_by_server(&mut idle, RAW_WAIT).await, "still open");
    assert!(started.elapsed() >= SHORT, "closed before the idle timeout");

    // A stream over HTTP/2 (as a proxy speaking h2c upstream opens it) stays open and live.
    let res = app.stream_via(Via::Http2, "", None).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut stream = SseClient::new(res);
    tokio::time::sleep(SHORT * 3).await;
    let id = add_graph_leads(&app, 1, 1).remove(0);
    app.deliver(&[&id]).await;
    assert_eq!(
        stream.leads(1, RAW_WAIT).await[0]["leadgen_id"],
        id.as_str()
    );
    assert!(stream.comments >= 2, "keep-alives over HTTP/2");
}
