//! The HTTP/1 connection (src/http/h1/) over raw TCP, so each test knows exactly what went
//! over the wire: a stream is written by the socket writer in chunks whatever the connection
//! carried before; other requests are answered in order, with keep-alive, HEAD, 100-continue
//! and chunked bodies; heads that could be read two ways are refused.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::raw::*;
use crate::helpers::*;

/// Sends one lead through the webhook and returns its leadgen id.
async fn send_lead(app: &TestApp, n: u64) -> String {
    let id = add_graph_leads(app, n, 1).remove(0);
    app.deliver(&[&id]).await;
    id
}

/// The SSE text of a chunked stream body read so far (whole chunks only).
fn dechunked(mut raw: Vec<u8>) -> String {
    let mut body = Vec::new();
    while let Some(last) = take_chunk(&mut raw, &mut body) {
        if last {
            break;
        }
    }
    String::from_utf8(body).unwrap()
}

fn assert_stream_head(head: &str) {
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    for line in [
        "content-type: text/event-stream",
        "cache-control: no-store",
        "x-accel-buffering: no",
        "transfer-encoding: chunked",
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
}

/// The stream's own counters: open streams the socket writer serves, and those of them on
/// reused connections.
async fn written(app: &TestApp) -> (Value, Value) {
    let st = app.status().await;
    (
        st["streams_written"]["open"].clone(),
        st["streams_written"]["on_reused_connections"].clone(),
    )
}

#[tokio::test]
async fn a_fresh_connection_gets_a_chunked_stream_with_every_security_header() {
    let app = TestApp::spawn().await;
    let (mut s, mut buf) = exchange(&app, stream_request("").as_bytes(), "retry: 2000\n").await;
    let (head, _) = split_head(&buf);
    assert_stream_head(&head);
    assert_eq!(written(&app).await, (1.into(), 0.into()));

    let id = send_lead(&app, 1).await;
    read_until(&mut s, &mut buf, &id).await;
    read_until(&mut s, &mut buf, "\n\n\r\n").await;
    let (_, body) = split_head(&buf);
    let text = dechunked(body);
    // The hello is lines that dispatch nothing; the lead is one event in one chunk.
    assert!(
        text.starts_with("retry: 2000\n: leadstream\nid: 1\n"),
        "{text:?}"
    );
    let event = text.split("\n\n").find(|e| e.contains(&id)).unwrap();
    let mut lines = event.lines().skip_while(|l| !l.starts_with("id: "));
    assert_eq!(lines.next(), Some("id: 1"));
    assert_eq!(lines.next(), Some("event: lead"));
    let lead: Value =
        serde_json::from_str(lines.next().unwrap().strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(lead["leadgen_id"], id.as_str());
}

#[tokio::test]
async fn a_stream_after_other_requests_on_the_same_connection_is_written_the_same_way() {
    let app = TestApp::spawn().await;
    let first = send_lead(&app, 1).await;
    assert_eq!(app.wait_for_count(1, RAW_WAIT).await, 1);
    let mut s = connect(&app).await;
    let mut buf = Vec::new();
    // What a page does before its EventSource opens: a few API calls on one connection.
    for path in ["/healthz", "/api/leads/count", "/api/status"] {
        s.write_all(get_request(path).as_bytes()).await.unwrap();
        let (head, _) = read_answer(&mut s, &mut buf).await;
        assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
        assert!(!head.contains("connection: close"), "{path}: {head}");
    }
    s.write_all(stream_request("Last-Event-ID: 0\r\n").as_bytes())
        .await
        .unwrap();
    read_until(&mut s, &mut buf, &first).await;
    let (head, _) = split_head(&buf);
    assert_stream_head(&head);
    assert_eq!(written(&app).await, (1.into(), 1.into()));
    let second = send_lead(&app, 2).await;
    read_until(&mut s, &mut buf, &second).await;
    let (_, body) = split_head(&buf);
    assert!(dechunked(body).contains("id: 2\nevent: lead\n"));
}

#[tokio::test]
async fn a_stream_asked_for_with_a_trailing_slash_is_written_the_same_way() {
    let app = TestApp::spawn().await;
    // The routes take `/api/stream/` for the stream too: it must not be the one stream that
    // hyper-style framing, a kept-alive connection and no socket writer serve.
    let req = stream_request("").replace("/api/stream ", "/api/stream/ ");
    let (_s, buf) = exchange(&app, req.as_bytes(), "retry: 2000\n").await;
    let (head, _) = split_head(&buf);
    assert_stream_head(&head);
    assert_eq!(written(&app).await, (1.into(), 0.into()));
}

#[tokio::test]
async fn an_http_1_0_stream_runs_until_the_close_and_still_gets_every_lead() {
    let app = TestApp::spawn().await;
    let req = stream_request("").replace("HTTP/1.1", "HTTP/1.0");
    let (mut s, mut buf) = exchange(&app, req.as_bytes(), "retry: 2000\n").await;
    let (head, _) = split_head(&buf);
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    assert!(!head.contains("transfer-encoding"), "{head}");
    assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
    let id = send_lead(&app, 1).await;
    read_until(&mut s, &mut buf, &id).await;
    let (_, body) = split_head(&buf);
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.starts_with("retry: 2000\n: leadstream\nid: 1\nevent: lead\n"),
        "{text}"
    );
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
    assert_stream_head(&split_head(&buf).0);
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_and_a_stream_among_them_is_last() {
    let app = TestApp::spawn().await;
    let pipelined = format!(
        "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n\
         GET /no-such-page HTTP/1.1\r\nHost: a\r\n\r\n\
         HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n\
         {}",
        get_request("/api/leads/count") + &stream_request("")
    );
    let mut s = connect(&app).await;
    s.write_all(pipelined.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let (head, body) = read_answer(&mut s, &mut buf).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["status"],
        "ok"
    );
    let (head, _) = read_answer(&mut s, &mut buf).await;
    assert!(head.starts_with("http/1.1 404"), "{head}");
    // HEAD: the GET's head, its length included, and no body.
    read_until(&mut s, &mut buf, "\r\n\r\n").await;
    let (head, _) = split_head(&buf);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(header(&head, "content-length").is_some(), "{head}");
    buf.drain(..head.len());
    let (head, body) = read_answer(&mut s, &mut buf).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["count"], 0);
    read_until(&mut s, &mut buf, "retry: 2000\n").await;
    assert_stream_head(&split_head(&buf).0);
}

#[tokio::test]
async fn a_chunked_webhook_with_expect_continue_is_told_to_go_on_and_taken() {
    let app = TestApp::spawn().await;
    let id = add_graph_leads(&app, 1, 1).remove(0);
    let body = leadgen_body(&[&id]);
    let sig = leadstream::ingest::signature::sign(APP_SECRET.as_bytes(), &body);
    let head = format!(
        "POST /webhook HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n\
         X-Hub-Signature-256: {sig}\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
    );
    let (mut s, mut buf) = exchange(&app, head.as_bytes(), "\r\n\r\n").await;
    assert_eq!(
        String::from_utf8_lossy(&buf),
        "HTTP/1.1 100 Continue\r\n\r\n",
        "the go-ahead, before any body byte"
    );
    buf.clear();
    let (a, b) = body.split_at(body.len() / 2);
    let mut chunked = Vec::new();
    for part in [a, b] {
        chunked.extend_from_slice(format!("{:x};ext=1\r\n", part.len()).as_bytes());
        chunked.extend_from_slice(part);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\nX-Trailer: ignored\r\n\r\n");
    s.write_all(&chunked).await.unwrap();
    let (head, body) = read_answer(&mut s, &mut buf).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(body, b"EVENT_RECEIVED");
    assert_eq!(app.wait_for_count(1, RAW_WAIT).await, 1);
}

#[tokio::test]
async fn heads_that_two_servers_could_read_two_ways_are_refused_with_400_and_closed() {
    let app = TestApp::spawn().await;
    for framing in [
        "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
        "Transfer-Encoding: gzip, chunked\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
        "Content-Length: 4\r\nContent-Length: 5\r\n",
        "Content-Length: 4, 4\r\n",
        "Content-Length: +4\r\n",
    ] {
        // Whatever follows would be a second request to a server that read the body
        // differently; it must never be answered.
        let req = format!(
            "POST /webhook HTTP/1.1\r\nHost: a\r\n{framing}\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
        );
        let (mut s, mut buf) = exchange(&app, req.as_bytes(), "\r\n\r\n").await;
        let (head, body) = read_answer(&mut s, &mut buf).await;
        assert!(head.starts_with("http/1.1 400"), "{framing:?}: {head}");
        assert!(head.contains("connection: close"), "{framing:?}: {head}");
        assert!(
            head.contains("content-security-policy:"),
            "{framing:?}: {head}"
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert!(v["error"].is_string(), "{v}");
        let rest = tokio::time::timeout(RAW_WAIT, s.read_to_end(&mut buf)).await;
        assert!(
            matches!(rest, Ok(Ok(_))),
            "{framing:?}: not closed: {rest:?}"
        );
        assert!(
            !String::from_utf8_lossy(&buf).contains("HTTP/1.1"),
            "{framing:?}"
        );
    }
}

/// The first frame the server sends on HTTP/2 stream 1 after a request on it: its type and
/// payload.
async fn first_frame_on_stream_1(s: &mut tokio::net::TcpStream) -> (u8, Vec<u8>) {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // Frames: a 9-byte header (24-bit length, type, flags, stream id), then the payload.
        while raw.len() >= 9 {
            let len = u32::from_be_bytes([0, raw[0], raw[1], raw[2]]) as usize;
            if raw.len() < 9 + len {
                break;
            }
            let stream = u32::from_be_bytes([raw[5], raw[6], raw[7], raw[8]]) & 0x7fff_ffff;
            let frame: Vec<u8> = raw.drain(..9 + len).collect();
            if stream == 1 {
                return (frame[3], frame[9..].to_vec());
            }
        }
        let n = tokio::time::timeout(RAW_WAIT, s.read(&mut chunk))
            .await
            .expect("a frame in time")
            .unwrap();
        assert!(n > 0, "closed without a frame on stream 1");
        raw.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn a_request_target_without_a_path_gets_400_on_http_1_and_http_2() {
    let app = TestApp::spawn().await;
    // CONNECT's authority form, and the same target with another method: no path, so no route
    // (warp's path filters cannot even look at such a URI).
    for target in [
        "CONNECT 127.0.0.1:22",
        "GET 127.0.0.1:22",
        "OPTIONS example.com:443",
    ] {
        let req = format!("{target} HTTP/1.1\r\nHost: a\r\n\r\n");
        let (mut s, mut buf) = exchange(&app, req.as_bytes(), "\r\n\r\n").await;
        let (head, body) = read_answer(&mut s, &mut buf).await;
        assert!(head.starts_with("http/1.1 400"), "{target}: {head}");
        assert!(
            head.contains("content-security-policy:"),
            "{target}: {head}"
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert!(v["error"].is_string(), "{v}");
    }

    // HTTP/2 (h2c, as a proxy speaks it): CONNECT carries :authority and no :path. HPACK by
    // hand: literal fields with the static table's names, :authority (1) and :method (2).
    let mut block = vec![0x02, 7];
    block.extend_from_slice(b"CONNECT");
    block.extend_from_slice(&[0x01, 12]);
    block.extend_from_slice(b"127.0.0.1:22");
    let mut h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0".to_vec();
    // HEADERS, END_STREAM | END_HEADERS, stream 1.
    h2.extend_from_slice(&[0, 0, block.len() as u8, 0x01, 0x05, 0, 0, 0, 1]);
    h2.extend_from_slice(&block);
    let mut s = connect(&app).await;
    s.write_all(&h2).await.unwrap();
    let (kind, payload) = first_frame_on_stream_1(&mut s).await;
    assert_eq!(kind, 0x01, "an answer's HEADERS, not a reset: {payload:?}");
    // :status 400 is entry 12 of the static table, sent indexed.
    assert_eq!(payload.first(), Some(&0x8c), "{payload:?}");

    // And the server goes on as before.
    let (mut s, mut buf) = exchange(
        &app,
        b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n",
        "\r\n\r\n",
    )
    .await;
    let (head, _) = read_answer(&mut s, &mut buf).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
}

#[tokio::test]
async fn an_oversized_body_is_refused_before_it_is_read_and_a_huge_head_gets_431() {
    let app = TestApp::spawn().await;
    let req = "POST /login HTTP/1.1\r\nHost: a\r\nContent-Length: 4194305\r\n\r\n";
    let (mut s, mut buf) = exchange(&app, req.as_bytes(), "\r\n\r\n").await;
    let (head, _) = read_answer(&mut s, &mut buf).await;
    assert!(head.starts_with("http/1.1 413"), "{head}");

    let padding = format!("X-Padding: {}\r\n", "p".repeat(20 * 1024));
    let (mut s, mut buf) = exchange(&app, stream_request(&padding).as_bytes(), "\r\n\r\n").await;
    let (head, _) = read_answer(&mut s, &mut buf).await;
    assert!(head.starts_with("http/1.1 431"), "{head}");
}

#[tokio::test]
async fn requests_that_are_not_authorised_streams_get_the_routed_answers() {
    let app = TestApp::spawn().await;
    // No credentials: the routes' 401, JSON, with the security headers.
    let (mut s, mut buf) = exchange(
        &app,
        b"GET /api/stream HTTP/1.1\r\nHost: leadstream\r\n\r\n",
        "\r\n\r\n",
    )
    .await;
    let (head, body) = read_answer(&mut s, &mut buf).await;
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(head.contains("content-security-policy:"), "{head}");
    assert!(serde_json::from_slice::<Value>(&body).unwrap()["error"].is_string());
    // The connection stays usable.
    s.write_all(get_request("/healthz").as_bytes())
        .await
        .unwrap();
    let (head, _) = read_answer(&mut s, &mut buf).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
}

#[tokio::test]
async fn a_client_that_leaves_frees_its_subscription_without_waiting_for_a_keepalive() {
    // The default 15 s keep-alive: only reading the socket can notice the close in time.
    let app = TestApp::spawn().await;
    let (s, _) = exchange(&app, stream_request("").as_bytes(), "retry: 2000\n").await;
    let status = app
        .wait_for_status(RAW_WAIT, |st| st["stream_clients"] == 1)
        .await;
    assert_eq!(status["stream_clients"], 1);
    drop(s);
    let status = app
        .wait_for_status(Duration::from_secs(2), |st| st["stream_clients"] == 0)
        .await;
    assert_eq!(status["stream_clients"], 0, "{status}");
}

#[tokio::test]
async fn shutdown_ends_streams_with_their_last_chunk_and_closes_idle_connections() {
    let mut app = TestApp::spawn().await;
    let (mut stream, _) = exchange(&app, stream_request("").as_bytes(), "retry: 2000\n").await;
    // Connected, but no request yet.
    let mut idle = connect(&app).await;
    tokio::time::sleep(Duration::from_millis(50)).await;

    let took = app.stop().await;
    assert!(took < Duration::from_secs(2), "stop took {took:?}");
    let mut rest = Vec::new();
    let end = tokio::time::timeout(Duration::from_secs(1), stream.read_to_end(&mut rest)).await;
    assert!(matches!(end, Ok(Ok(_))), "not closed cleanly: {end:?}");
    assert!(
        rest.ends_with(b"0\r\n\r\n"),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
    let end = tokio::time::timeout(Duration::from_secs(1), idle.read_to_end(&mut rest)).await;
    assert!(matches!(end, Ok(Ok(_))), "not closed cleanly: {end:?}");
}
