//! The socket writer: one HTTP/1.x `/api/stream` written straight to its connection, without
//! a general HTTP layer in between.
//!
//! Why: a dashboard holds its stream open for hours, and a general HTTP server keeps a
//! connection's read and write buffers for as long as it lives (hyper: about 20 KiB per idle
//! stream). Here a held stream is its socket, its subscription and one small task; once it is
//! caught up, the [`fanout`](super::fanout) writes its leads and the task only waits.
//!
//! The connection is split: this task keeps the read half (to notice at once when the client
//! leaves) and moves the write half into the fan-out while the stream is a member, getting it
//! back with the eviction.
//!
//! Every write has a deadline: a client that takes nothing for `write_timeout` is closed, and
//! meanwhile it holds one frame here (the channel moves on without it; it is caught up from
//! the database if it reads again in time). Shutdown does not wait for it.

use std::io;
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::fanout::Fanout;
use super::frames::{chunk_size_line, LAST_CHUNK};
use super::stream::LeadStream;
use crate::shutdown::Shutdown;

/// How a stream's body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// HTTP/1.1: each frame is one chunk, so no client waits for more bytes to tell where a
    /// frame ends; caught-up streams are written by the fan-out.
    Chunked,
    /// HTTP/1.0, which has no chunks: the body runs until the connection closes. Written by
    /// the stream's own task, frame by frame.
    CloseDelimited,
}

#[derive(Debug, PartialEq)]
enum Wrote {
    All,
    /// The client is gone, the socket broke, or the client took nothing within the deadline.
    Failed,
    /// Shutdown began while the client was not reading.
    Stopped,
}

/// What a write needs besides the bytes.
struct Out<'a> {
    write: OwnedWriteHalf,
    timeout: Duration,
    stop: &'a Shutdown,
}

impl Out<'_> {
    /// Writes all of `buf` within the deadline.
    async fn all(&mut self, mut buf: impl Buf) -> Wrote {
        let write = tokio::time::timeout(self.timeout, self.write.write_all_buf(&mut buf));
        tokio::select! {
            biased;
            done = write => match done {
                Ok(Ok(())) => Wrote::All,
                Ok(Err(_)) => Wrote::Failed,
                Err(_) => {
                    log::debug!("a stream client took nothing for {:?}; closing", self.timeout);
                    Wrote::Failed
                }
            },
            _ = self.stop.started() => Wrote::Stopped,
        }
    }

    /// Writes one frame, as a chunk or bare. The chunk is written in one vectored call with
    /// no copy of the frame.
    async fn frame(&mut self, framing: Framing, frame: Bytes) -> Wrote {
        match framing {
            Framing::CloseDelimited => self.all(frame).await,
            Framing::Chunked => {
                let size = Bytes::from(chunk_size_line(frame.len()));
                self.all(size.chain(frame).chain(&b"\r\n"[..])).await
            }
        }
    }
}

/// Serves `stream` on `socket` after writing `head` (the answer's status line and headers,
/// made by the HTTP side), until the stream ends (shutdown, logout), the client goes, or a
/// write fails or times out.
pub(super) async fn serve(
    fanout: &Fanout,
    mut stream: LeadStream,
    socket: TcpStream,
    head: Bytes,
    framing: Framing,
    timeout: Duration,
    stop: &Shutdown,
) {
    let (mut read, write) = socket.into_split();
    let mut out = Out {
        write,
        timeout,
        stop,
    };
    if out.all(head).await != Wrote::All {
        return;
    }
    loop {
        if let (Framing::Chunked, Some(last_sent)) = (framing, stream.caught_up()) {
            let session = stream.session().cloned();
            match fanout.join(out.write, last_sent, session).await {
                Ok(mut member) => {
                    let handed_back = tokio::select! {
                        biased;
                        eviction = &mut member.evicted => eviction,
                        _ = client_gone(&mut read) => {
                            member.leave();
                            return;
                        }
                    };
                    // An error means the fan-out is gone without handing back (it hands every
                    // member back at shutdown), and the socket went with it: the client
                    // reconnects with its Last-Event-ID.
                    let Ok(eviction) = handed_back else { return };
                    out.write = eviction.write;
                    stream.sent_elsewhere(eviction.last_sent);
                    if !eviction.rest.is_empty() && out.all(eviction.rest).await != Wrote::All {
                        return;
                    }
                    if eviction.closed {
                        break;
                    }
                }
                // Refused: the fan-out is a lead ahead; this task sends until it is caught up.
                Err(Some(write)) => out.write = write,
                Err(None) => return,
            }
        }
        // Not caught up (replaying, just handed back, refused, or close-delimited): this task
        // sends until it is.
        let frame = tokio::select! {
            biased;
            frame = stream.next() => match frame {
                Some(frame) => frame,
                None => break,
            },
            _ = client_gone(&mut read) => return,
        };
        match out.frame(framing, frame).await {
            Wrote::All => {}
            Wrote::Stopped => break,
            Wrote::Failed => return,
        }
    }
    // A clean end: the last chunk, then FIN (dropping the halves). EventSource reconnects
    // after its retry delay; after `logout` the dashboard goes to the sign-in page instead.
    if framing == Framing::Chunked {
        out.all(LAST_CHUNK).await;
    }
    let _ = out.write.shutdown().await;
}

/// Resolves when the client closes its side (or the socket breaks). A client sends nothing
/// more on a stream, so reading tells us at once when it leaves, instead of at the next
/// keep-alive write, and its subscription is freed.
async fn client_gone(read: &mut OwnedReadHalf) {
    let mut scratch = [0u8; 32];
    loop {
        if read.readable().await.is_err() {
            return;
        }
        match read.try_read(&mut scratch) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}
