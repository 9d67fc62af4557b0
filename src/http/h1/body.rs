//! A request body, read whole before any route sees it: `Content-Length` or chunked, at most
//! [`MAX_BODY`] bytes (counted on the bytes read, whatever was declared), within one deadline
//! for the whole body, and only as fast as the process-wide body budget has room.
//!
//! So a body that stalls costs its connection and the room its bytes took, for the body
//! timeout at most, and all stalled bodies together cost at most the budget.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use super::head::BodyKind;
use crate::http::limits::{BodyBudget, BudgetRoom};
use crate::http::webhook::MAX_BODY;

/// Bytes read from the socket at a time.
pub const READ_SIZE: usize = 16 * 1024;
/// Longest chunk-size line (with extensions) and longest trailer section.
const MAX_LINE: usize = 1024;
const MAX_TRAILERS: usize = 16 * 1024;

/// Why a body could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// 413
    TooLarge,
    /// 400
    Malformed(&'static str),
    /// 408: the whole body did not arrive before the deadline.
    TimedOut,
    /// 400: the client closed its side (or the socket broke) before the body's end.
    BrokeOff,
}

/// A body read whole, holding its room in the budget until the route drops it.
#[derive(Debug)]
pub struct RequestBody {
    data: Option<Bytes>,
    _room: BudgetRoom,
}

impl RequestBody {
    pub fn empty() -> RequestBody {
        RequestBody {
            data: None,
            _room: BodyBudget::none(),
        }
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        Poll::Ready(
            self.get_mut()
                .data
                .take()
                .map(|d| Ok(http_body::Frame::data(d))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

/// Reads one body from `socket`, starting with what `buf` already holds; bytes after the
/// body stay in `buf` (a pipelined request).
pub struct BodyReader<'a> {
    pub socket: &'a mut TcpStream,
    pub buf: &'a mut BytesMut,
    pub budget: &'a BodyBudget,
    pub deadline: Instant,
}

impl BodyReader<'_> {
    pub async fn read(mut self, kind: BodyKind) -> Result<RequestBody, BodyError> {
        let mut body = Stored {
            data: Vec::new(),
            room: BodyBudget::none(),
        };
        match kind {
            BodyKind::None => return Ok(RequestBody::empty()),
            BodyKind::Length(n) if n > MAX_BODY as u64 => return Err(BodyError::TooLarge),
            BodyKind::Length(n) => self.copy(&mut body, n as usize).await?,
            BodyKind::Chunked => self.chunks(&mut body).await?,
        }
        Ok(RequestBody {
            data: Some(Bytes::from(body.data)),
            _room: body.room,
        })
    }

    /// Reads more bytes into `buf`.
    async fn more(&mut self) -> Result<(), BodyError> {
        self.buf.reserve(READ_SIZE);
        match timeout_at(self.deadline, self.socket.read_buf(self.buf)).await {
            Err(_) => Err(BodyError::TimedOut),
            Ok(Ok(0)) | Ok(Err(_)) => Err(BodyError::BrokeOff),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// Moves `n` bytes of body from the socket (and `buf`) into `body`.
    async fn copy(&mut self, body: &mut Stored, n: usize) -> Result<(), BodyError> {
        let mut left = n;
        while left > 0 {
            if self.buf.is_empty() {
                self.more().await?;
            }
            let k = left.min(self.buf.len());
            // Room for what the body's buffer grows by, before it grows.
            let before = body.data.capacity();
            let wanted = body.data.len() + k;
            if wanted > before {
                let target = wanted.max(before * 2).min(MAX_BODY);
                timeout_at(
                    self.deadline,
                    self.budget.take(&mut body.room, target - before),
                )
                .await
                .map_err(|_| BodyError::TimedOut)?;
                body.data.reserve_exact(target - body.data.len());
            }
            body.data.extend_from_slice(&self.buf[..k]);
            self.buf.advance(k);
            left -= k;
        }
        Ok(())
    }

    /// One line ending in CRLF (a bare LF is refused), without it.
    async fn line(&mut self, max: usize) -> Result<Bytes, BodyError> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                if i == 0 || self.buf[i - 1] != b'\r' {
                    return Err(BodyError::Malformed("a chunk line without CRLF"));
                }
                let line = self.buf.split_to(i + 1).freeze();
                return Ok(line.slice(..i - 1));
            }
            if self.buf.len() > max {
                return Err(BodyError::Malformed("a chunk line too long"));
            }
            self.more().await?;
        }
    }

    async fn chunks(&mut self, body: &mut Stored) -> Result<(), BodyError> {
        loop {
            let line = self.line(MAX_LINE).await?;
            let size = chunk_size(&line)?;
            if size == 0 {
                break;
            }
            if body.data.len() as u64 + size > MAX_BODY as u64 {
                return Err(BodyError::TooLarge);
            }
            self.copy(body, size as usize).await?;
            while self.buf.len() < 2 {
                self.more().await?;
            }
            if &self.buf[..2] != b"\r\n" {
                return Err(BodyError::Malformed("chunk data longer than its size"));
            }
            self.buf.advance(2);
        }
        // Trailers are read and dropped; the empty line ends them.
        let mut trailers = 0;
        loop {
            let line = self.line(MAX_LINE).await?;
            if line.is_empty() {
                return Ok(());
            }
            trailers += line.len();
            if trailers > MAX_TRAILERS {
                return Err(BodyError::Malformed("trailers too long"));
            }
        }
    }
}

struct Stored {
    /// A `Vec` to grow it exactly as far as the budget's room allows.
    data: Vec<u8>,
    room: BudgetRoom,
}

/// The size of a chunk-size line: hex digits, then optional extensions (ignored).
fn chunk_size(line: &[u8]) -> Result<u64, BodyError> {
    let digits = line
        .split(|b| *b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii_end();
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(BodyError::Malformed("malformed chunk size"));
    }
    let text = std::str::from_utf8(digits).map_err(|_| BodyError::Malformed("chunk size"))?;
    u64::from_str_radix(text, 16).map_err(|_| BodyError::Malformed("malformed chunk size"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_are_hex_digits_with_extensions_ignored() {
        assert_eq!(chunk_size(b"1a"), Ok(26));
        assert_eq!(chunk_size(b"0"), Ok(0));
        assert_eq!(chunk_size(b"A;name=value"), Ok(10));
        assert_eq!(chunk_size(b"5 ;x"), Ok(5));
        for bad in [
            &b""[..],
            b" 5",
            b"+5",
            b"0x5",
            b"g",
            b"fffffffffffffffff",
            b";x",
        ] {
            assert!(chunk_size(bad).is_err(), "{bad:?}");
        }
    }
}
