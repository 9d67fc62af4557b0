//! A minimal HTTP/1.1 client: the clients must cost as little CPU as possible, since they share
//! the machine with the server they measure.

use std::io::{self};
use std::net::SocketAddr;

use leadstream::ingest::signature::sign;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{ADSET_ID, AD_ID, APP_SECRET, CREATED, DASHBOARD_TOKEN, FORM_ID, PAGE_ID};

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub(crate) fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// One keep-alive connection.
pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    pub(crate) buf: Vec<u8>,
}

pub(crate) struct Head {
    pub(crate) status: u16,
    pub(crate) content_length: Option<usize>,
    pub(crate) chunked: bool,
    pub(crate) content_type: String,
}

impl Conn {
    pub(crate) async fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(1024),
        })
    }

    pub(crate) async fn fill(&mut self) -> io::Result<()> {
        self.buf.reserve(4096);
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    pub(crate) async fn read_head(&mut self) -> io::Result<Head> {
        let end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await?;
        };
        let text = std::str::from_utf8(&self.buf[..end]).map_err(|_| bad("non-UTF-8 head"))?;
        let mut lines = text.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("bad status line"))?;
        let mut head = Head {
            status,
            content_length: None,
            chunked: false,
            content_type: String::new(),
        };
        for line in lines {
            if let Some((k, v)) = line.split_once(':') {
                let v = v.trim();
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => head.content_length = v.parse().ok(),
                    "transfer-encoding" => head.chunked = v.eq_ignore_ascii_case("chunked"),
                    "content-type" => head.content_type = v.to_string(),
                    _ => {}
                }
            }
        }
        self.buf.drain(..end);
        Ok(head)
    }

    /// Writes `req` and reads the whole answer.
    pub(crate) async fn roundtrip(&mut self, req: &[u8]) -> io::Result<(u16, Vec<u8>)> {
        self.stream.write_all(req).await?;
        let head = self.read_head().await?;
        let body = if let Some(n) = head.content_length {
            while self.buf.len() < n {
                self.fill().await?;
            }
            self.buf.drain(..n).collect()
        } else if head.chunked {
            let mut out = Vec::new();
            while !dechunk(&mut self.buf, &mut out)? {
                self.fill().await?;
            }
            out
        } else {
            return Err(bad("answer without a length"));
        };
        Ok((head.status, body))
    }
}

/// Moves complete chunks from `raw` to `out`; true once the last (empty) chunk was read.
pub(crate) fn dechunk(raw: &mut Vec<u8>, out: &mut Vec<u8>) -> io::Result<bool> {
    let mut at = 0;
    let ended = loop {
        let Some(eol) = find(&raw[at..], b"\r\n") else {
            break false;
        };
        let line = std::str::from_utf8(&raw[at..at + eol]).map_err(|_| bad("chunk size"))?;
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| bad(format!("chunk size {line:?}")))?;
        let start = at + eol + 2;
        if raw.len() < start + size + 2 {
            break false;
        }
        if size == 0 {
            at = start + 2;
            break true;
        }
        out.extend_from_slice(&raw[start..start + size]);
        at = start + size + 2;
    };
    raw.drain(..at);
    Ok(ended)
}

pub(crate) fn get_request(addr: SocketAddr, path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {DASHBOARD_TOKEN}\r\n\r\n"
    )
    .into_bytes()
}

/// An authorised stream request, with the `Accept` an EventSource sends (Nchan needs it).
pub(crate) fn stream_request(addr: SocketAddr, path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\naccept: text/event-stream\r\n\
         authorization: Bearer {DASHBOARD_TOKEN}\r\n\r\n"
    )
    .into_bytes()
}

/// `PATCH /api/leads/{id}`: a change of status on `version`, as a dashboard makes it.
pub(crate) fn change_request(addr: SocketAddr, id: i64, version: i64, status: &str) -> Vec<u8> {
    let body = json!({"status": status, "version": version}).to_string();
    format!(
        "PATCH /api/leads/{id} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         authorization: Bearer {DASHBOARD_TOKEN}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Meta's lead ids are 16 digits; `n` makes them distinct.
pub(crate) fn lead_id(n: u64) -> String {
    (1_000_000_000_000_000u64 + n).to_string()
}

/// A signed `POST /webhook` announcing one lead, as Meta sends it.
pub(crate) fn webhook_request(addr: SocketAddr, leadgen_id: &str) -> Vec<u8> {
    let body = json!({"object": "page", "entry": [{"id": PAGE_ID, "time": CREATED, "changes": [
        {"field": "leadgen", "value": {
            "leadgen_id": leadgen_id, "page_id": PAGE_ID, "form_id": FORM_ID,
            "ad_id": AD_ID, "adgroup_id": ADSET_ID, "created_time": CREATED
        }}
    ]}]})
    .to_string();
    let sig = sign(APP_SECRET.as_bytes(), body.as_bytes());
    format!(
        "POST /webhook HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         x-hub-signature-256: {sig}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Posts one webhook and insists on 200.
pub(crate) async fn post_webhook(conn: &mut Conn, req: &[u8]) -> Result<(), String> {
    match conn.roundtrip(req).await {
        Ok((200, _)) => Ok(()),
        Ok((status, body)) => Err(format!(
            "webhook answered {status}: {}",
            String::from_utf8_lossy(&body)
        )),
        Err(e) => Err(format!("webhook failed: {e}")),
    }
}

/// `(count, last_id)` from `/api/leads/count`.
pub(crate) async fn lead_count(conn: &mut Conn, addr: SocketAddr) -> Result<(i64, i64), String> {
    let (status, body) = conn
        .roundtrip(&get_request(addr, "/api/leads/count"))
        .await
        .map_err(|e| format!("count failed: {e}"))?;
    if status != 200 {
        return Err(format!("count answered {status}"));
    }
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    Ok((
        v["count"].as_i64().unwrap_or(-1),
        v["last_id"].as_i64().unwrap_or(-1),
    ))
}
