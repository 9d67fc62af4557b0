//! Raw TCP against the server, for tests that must know exactly what went over the wire:
//! framing, pipelining, deadlines, caps.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::app::{TestApp, DASHBOARD_TOKEN};

/// How long a raw test waits for something it expects.
pub const RAW_WAIT: Duration = Duration::from_secs(10);

pub async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// An authorised `GET /api/stream` with `extra_headers` (each ending in CRLF).
pub fn stream_request(extra_headers: &str) -> String {
    format!(
        "GET /api/stream HTTP/1.1\r\nHost: leadstream\r\nAuthorization: Bearer {DASHBOARD_TOKEN}\r\n{extra_headers}\r\n"
    )
}

/// An authorised `GET {path}`.
pub fn get_request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: leadstream\r\nAuthorization: Bearer {DASHBOARD_TOKEN}\r\n\r\n")
}

/// Reads until `needle` is in `buf` (which keeps everything read); panics after [`RAW_WAIT`].
pub async fn read_until(s: &mut TcpStream, buf: &mut Vec<u8>, needle: &str) {
    let found = tokio::time::timeout(RAW_WAIT, async {
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
pub async fn exchange(app: &TestApp, request: &[u8], needle: &str) -> (TcpStream, Vec<u8>) {
    let mut s = connect(app).await;
    s.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    read_until(&mut s, &mut buf, needle).await;
    (s, buf)
}

/// The head of the first answer in `buf`, lower-cased, and the bytes after it.
pub fn split_head(buf: &[u8]) -> (String, Vec<u8>) {
    let text = String::from_utf8_lossy(buf);
    let end = text.find("\r\n\r\n").expect("a whole head") + 4;
    (text[..end].to_ascii_lowercase(), buf[end..].to_vec())
}

/// The value of `name` (lower case) in a lower-cased head.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(str::trim)
}

/// One whole answer from `s` (with what `buf` already holds, which keeps the rest): its
/// lower-cased head and its body, sized or chunked.
pub async fn read_answer(s: &mut TcpStream, buf: &mut Vec<u8>) -> (String, Vec<u8>) {
    read_until(s, buf, "\r\n\r\n").await;
    let (head, mut rest) = split_head(buf);
    let body = if let Some(n) = header(&head, "content-length") {
        let n: usize = n.parse().unwrap();
        while rest.len() < n {
            fill(s, &mut rest).await;
        }
        rest.drain(..n).collect()
    } else if header(&head, "transfer-encoding") == Some("chunked") {
        let mut body = Vec::new();
        loop {
            if let Some(done) = take_chunk(&mut rest, &mut body) {
                if done {
                    break body;
                }
                continue;
            }
            fill(s, &mut rest).await;
        }
    } else {
        Vec::new()
    };
    *buf = rest;
    (head, body)
}

async fn fill(s: &mut TcpStream, buf: &mut Vec<u8>) {
    let mut chunk = [0u8; 8192];
    let n = tokio::time::timeout(RAW_WAIT, s.read(&mut chunk))
        .await
        .expect("more of the answer in time")
        .unwrap();
    assert!(n > 0, "closed mid-answer");
    buf.extend_from_slice(&chunk[..n]);
}

/// Moves one whole chunk from `raw` to `body`: `Some(true)` for the last chunk, `None` when
/// `raw` does not hold a whole chunk yet.
pub fn take_chunk(raw: &mut Vec<u8>, body: &mut Vec<u8>) -> Option<bool> {
    let eol = raw.windows(2).position(|w| w == b"\r\n")?;
    let size = usize::from_str_radix(std::str::from_utf8(&raw[..eol]).unwrap(), 16).unwrap();
    let start = eol + 2;
    if raw.len() < start + size + 2 {
        return None;
    }
    assert_eq!(
        &raw[start + size..start + size + 2],
        b"\r\n",
        "chunk ends in CRLF"
    );
    body.extend_from_slice(&raw[start..start + size]);
    raw.drain(..start + size + 2);
    Some(size == 0)
}

/// Reads until the server closes the connection (or resets it); false if it is still open
/// after `within`.
pub async fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    tokio::time::timeout(within, async {
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
