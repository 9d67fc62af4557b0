//! Writing a route's answer on an HTTP/1.x connection: the status line and headers, then the
//! body with a `content-length` when its size is known, in chunks when it is not (HTTP/1.1),
//! or until the close (HTTP/1.0). Every write has the write deadline.
//!
//! A body that fails after its first byte ends the connection without the last chunk, so no
//! client can take a broken answer (a CSV export that failed half-way) for a complete one.

use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use warp::http::{header, StatusCode, Version};
use warp::reply::Response;

use crate::http::headers::http_date;
use crate::live::frames::{chunk_size_line, LAST_CHUNK};

/// Bodies of a known size up to this go out in the same write as the head.
const ONE_WRITE: u64 = 64 * 1024;

/// What the request said about how to answer it.
#[derive(Debug, Clone, Copy)]
pub struct Asked {
    pub version: Version,
    /// HEAD: the head only.
    pub head_only: bool,
    /// The connection may carry another request after this answer (the client's wish, and
    /// ours).
    pub keep_alive: bool,
}

/// Why an answer was not written whole.
#[derive(Debug, PartialEq, Eq)]
pub enum Unwritten {
    /// The client took nothing for the whole write deadline.
    TimedOut,
    /// The socket broke, or the body failed half-way.
    Broken,
}

/// Writes `res`; `Ok(true)` when the connection may carry another request.
pub async fn write(
    socket: &mut TcpStream,
    res: Response,
    asked: Asked,
    timeout: Duration,
) -> Result<bool, Unwritten> {
    let (parts, mut body) = res.into_parts();
    let status = parts.status;
    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let length = body.size_hint().exact();
    let chunked = !bodiless && length.is_none() && asked.version == Version::HTTP_11;
    // Without a length or chunks, only the close can end the body.
    let keep_alive = asked.keep_alive && (bodiless || length.is_some() || chunked);

    let mut head = Vec::with_capacity(512);
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        // Framing and the connection's fate are decided here, not by the route.
        if matches!(
            *name,
            header::CONNECTION | header::TRANSFER_ENCODING | header::CONTENT_LENGTH
        ) || name.as_str() == "keep-alive"
        {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if !parts.headers.contains_key(header::DATE) {
        head.extend_from_slice(format!("date: {}\r\n", http_date()).as_bytes());
    }
    match (bodiless, length) {
        (true, _) => {}
        (false, Some(n)) => head.extend_from_slice(format!("content-length: {n}\r\n").as_bytes()),
        (false, None) if chunked => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        (false, None) => {}
    }
    match (keep_alive, asked.version) {
        (false, _) => head.extend_from_slice(b"connection: close\r\n"),
        (true, Version::HTTP_10) => head.extend_from_slice(b"connection: keep-alive\r\n"),
        (true, _) => {}
    }
    head.extend_from_slice(b"\r\n");

    let mut out = Out { socket, timeout };
    if bodiless || asked.head_only {
        out.all(&head[..]).await?;
        return Ok(keep_alive);
    }
    if length.is_some_and(|n| n <= ONE_WRITE) {
        // The usual JSON answer: head and body in one write.
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| Unwritten::Broken)?;
            if let Ok(data) = frame.into_data() {
                head.extend_from_slice(&data);
            }
        }
        out.all(&head[..]).await?;
        return Ok(keep_alive);
    }
    out.all(&head[..]).await?;
    drop(head);
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| Unwritten::Broken)?.into_data() else {
            continue; // trailers: not sent
        };
        if data.is_empty() {
            continue;
        }
        if chunked {
            let size = Bytes::from(chunk_size_line(data.len()));
            out.all(size.chain(data).chain(&b"\r\n"[..])).await?;
        } else {
            out.all(data).await?;
        }
    }
    if chunked {
        out.all(LAST_CHUNK).await?;
    }
    Ok(keep_alive)
}

struct Out<'a> {
    socket: &'a mut TcpStream,
    timeout: Duration,
}

impl Out<'_> {
    async fn all(&mut self, mut buf: impl Buf) -> Result<(), Unwritten> {
        match tokio::time::timeout(self.timeout, self.socket.write_all_buf(&mut buf)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Unwritten::Broken),
            Err(_) => Err(Unwritten::TimedOut),
        }
    }
}
