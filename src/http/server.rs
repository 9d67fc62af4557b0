//! The accept loop: one task per connection. A connection whose first request is an
//! authorised `GET /api/stream` is answered here, by writing SSE frames straight to the
//! socket; every other connection goes to hyper and the warp routes, with the bytes already
//! read put back in front of the socket.
//!
//! Why the stream skips hyper: a dashboard holds its stream open for hours, and hyper keeps a
//! connection's read and write buffers (and, with HTTP/2 detection, a second read buffer) for
//! as long as it lives: about 20 KiB per idle stream. Here a held stream is the socket, its
//! subscription and one small task (the README's table has the measurement). A lead is then one
//! `write` of the shared frame, with no chunk framing and no trip through hyper's dispatcher.
//! Once a stream is caught up, the `fanout` makes that write, and the stream's own task
//! sleeps until its client leaves or the fan-out hands it back.
//!
//! The fast path is deliberately narrow: a complete, well-formed head, GET, exactly
//! `/api/stream`, no body, no upgrade, valid credentials. Anything else, including every error
//! answer, is hyper's and warp's, so there is one place that decides what an error looks like.
//! [`super::stream`] still serves the stream when a browser reuses a connection that carried
//! another request first, and over HTTP/2.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, HeaderName, HeaderValue};
use warp::reply::Response;

use super::auth::{credentials_of, PeerAddr};
use super::headers::{SECURITY_HEADERS, STREAM_HEADERS};
use super::stream::resume_point;
use crate::auth::{Auth, Credentials, Gate, ProxyTrust};
use crate::live::Streams;
use crate::shutdown::Shutdown;

/// What the accept loop needs besides the routes.
pub struct ServerContext {
    /// Decides whether a first request may take the direct stream path.
    pub gate: Gate,
    pub streams: Arc<Streams>,
    /// How long a connection may take to send a whole request head.
    pub head_timeout: Duration,
}

/// Serves `listener` until shutdown begins, then waits for every connection to end: streams
/// end by themselves on shutdown, hyper connections finish the request in hand.
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<ServerContext>,
    routes: BoxedFilter<(Response,)>,
    stop: Shutdown,
) {
    // Every connection task holds a clone of `alive`; `drained` yields None once all are gone.
    let (alive, mut drained) = mpsc::channel::<()>(1);
    loop {
        let (socket, peer) = tokio::select! {
            biased;
            _ = stop.started() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        let conn = Connection {
            ctx: ctx.clone(),
            routes: routes.clone(),
            peer,
            stop: stop.clone(),
            _alive: alive.clone(),
        };
        tokio::spawn(conn.run(socket));
    }
    drop(listener);
    drop(alive);
    let _ = drained.recv().await;
}

/// A failed accept is the client's problem (it reset before we took it), or ours: out of file
/// descriptors, where retrying at once would spin. Pausing lets connections close meanwhile.
async fn accept_failed(e: io::Error) {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused
    ) {
        return;
    }
    log::error!("cannot accept connections: {e}; pausing for a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

struct Connection {
    ctx: Arc<ServerContext>,
    routes: BoxedFilter<(Response,)>,
    peer: SocketAddr,
    stop: Shutdown,
    _alive: mpsc::Sender<()>,
}

impl Connection {
    async fn run(self, socket: TcpStream) {
        // SSE frames and small JSON answers should leave at once, not wait for Nagle.
        let _ = socket.set_nodelay(true);
        let mut socket = socket;
        let head_timeout = self.ctx.head_timeout;
        let sniffed = tokio::select! {
            sniffed = tokio::time::timeout(head_timeout, sniff(&mut socket, &self.ctx.gate, self.peer)) => {
                match sniffed {
                    Ok(sniffed) => sniffed,
                    Err(_) => {
                        let peer = self.peer;
                        log::debug!("{peer} sent no request head in {head_timeout:?}; closing");
                        return;
                    }
                }
            }
            // A connection that has not sent a whole request by shutdown has nothing to lose.
            _ = self.stop.started() => return,
        };
        match sniffed {
            Sniffed::Stream { resume, auth } => self.stream(socket, resume, auth).await,
            // Boxed: hyper's connection state is large, and an unboxed future would make every
            // stream's task carry room for it.
            Sniffed::Other(head) => Box::pin(self.hyper(socket, head)).await,
            Sniffed::Gone => {}
        }
    }

    /// Writes the SSE answer: our head, then the frames of a [`LeadStream`](crate::live::LeadStream), until the
    /// stream ends (shutdown), the client goes, or a write fails. While the stream is caught
    /// up, the fan-out writes its leads instead and this task only waits.
    async fn stream(self, socket: TcpStream, resume: Option<i64>, _auth: Auth) {
        let streams = &self.ctx.streams;
        // Subscribed before the head goes out: every lead committed after it reaches the client.
        let mut stream = streams.open(resume).await;
        // Shared with the fan-out while it writes for us; only one of us writes at a time.
        let socket = Arc::new(socket);
        let stop = self.stop;
        if write_all(&socket, stream_head().as_bytes(), &stop).await != Wrote::All {
            return;
        }
        loop {
            if let Some(last_sent) = stream.caught_up() {
                if let Some(mut member) = streams.fanout().join(socket.clone(), last_sent).await {
                    let handed_back = tokio::select! {
                        biased;
                        eviction = &mut member.evicted => eviction,
                        _ = client_gone(&socket) => {
                            member.leave();
                            return;
                        }
                        // The fan-out ends its members at shutdown too; this is the backstop.
                        _ = stop.started() => {
                            member.leave();
                            break;
                        }
                    };
                    // An error means the fan-out is gone without handing back, so what it sent
                    // is unknown: ending the stream (the client reconnects with its
                    // Last-Event-ID) is better than risking a repeat.
                    let Ok(eviction) = handed_back else { break };
                    stream.sent_elsewhere(eviction.last_sent);
                    if eviction.closed {
                        break;
                    }
                    if write_all(&socket, &eviction.rest, &stop).await != Wrote::All {
                        return;
                    }
                }
            }
            // Not caught up (replaying, just handed back by a slow write, or the fan-out refused
            // because it is a lead ahead): this task sends until it is.
            let frame = tokio::select! {
                biased;
                frame = stream.next() => match frame {
                    Some(frame) => frame,
                    None => break,
                },
                _ = client_gone(&socket) => return,
            };
            match write_all(&socket, &frame, &stop).await {
                Wrote::All => {}
                Wrote::Stopped => break,
                Wrote::Failed => return,
            }
        }
        // A clean end (FIN, even while the fan-out may still hold a handle for a moment):
        // EventSource reconnects after its retry delay.
        shutdown_write(&socket);
    }

    /// Hands the connection to hyper (HTTP/1 or HTTP/2) and the warp routes.
    async fn hyper(self, socket: TcpStream, head: Vec<u8>) {
        let peer = self.peer;
        let io = TokioIo::new(Replay {
            head: Bytes::from(head),
            socket,
        });
        let routes = warp::service(self.routes);
        let svc = hyper::service::service_fn(move |mut req| {
            req.extensions_mut().insert(PeerAddr(peer));
            tower_service::Service::call(&mut routes.clone(), req)
        });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // hyper times every head it reads: the rest of one the sniff handed over early (it
        // was not a stream request), and each later one, so an idle keep-alive closes too.
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.ctx.head_timeout);
        let mut conn = pin!(builder.serve_connection_with_upgrades(io, svc));
        let stop = self.stop;
        let mut draining = false;
        let outcome = loop {
            tokio::select! {
                outcome = conn.as_mut() => break outcome,
                // Finishes the request in hand, then closes; idle keep-alives close at once.
                _ = stop.started(), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        };
        if let Err(e) = outcome {
            log::debug!("connection from {peer} ended: {e}");
        }
    }
}

#[derive(Debug, PartialEq)]
enum Wrote {
    All,
    /// The client is gone or the socket broke.
    Failed,
    /// Shutdown began while the client was not reading.
    Stopped,
}

/// Writes all of `buf`. A client that stops reading blocks this once its socket buffer is full;
/// the fan-out goes on without it (it catches up from the database when it reads again), and
/// shutdown does not wait for it.
async fn write_all(socket: &TcpStream, mut buf: &[u8], stop: &Shutdown) -> Wrote {
    while !buf.is_empty() {
        match socket.try_write(buf) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                tokio::select! {
                    ready = socket.writable() => if ready.is_err() {
                        return Wrote::Failed;
                    },
                    _ = stop.started() => return Wrote::Stopped,
                }
            }
            Err(_) => return Wrote::Failed,
        }
    }
    Wrote::All
}

/// Sends FIN on a socket that others may still hold (an `Arc` whose count is not known).
fn shutdown_write(socket: &TcpStream) {
    // SAFETY: shutdown(2) on a descriptor the `TcpStream` owns and keeps open for the call.
    unsafe {
        libc::shutdown(socket.as_raw_fd(), libc::SHUT_WR);
    }
}

/// Resolves when the client closes its side (or the socket breaks). A client sends nothing
/// more on a stream, so reading tells us at once when it leaves, instead of at the next
/// keep-alive write, and its subscription is freed.
async fn client_gone(socket: &TcpStream) {
    let mut scratch = [0u8; 32];
    loop {
        if socket.readable().await.is_err() {
            return;
        }
        match socket.try_read(&mut scratch) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

enum Sniffed {
    /// An authorised stream request; the client's resume point.
    Stream { resume: Option<i64>, auth: Auth },
    /// Anything else, with the bytes read so far.
    Other(Vec<u8>),
    /// Closed before it sent anything.
    Gone,
}

/// Heads longer than this go to hyper undecided (it has its own limits and answers).
const SNIFF_LIMIT: usize = 16 * 1024;

/// Reads the first request's head, just far enough to tell whether this module serves it.
async fn sniff(socket: &mut TcpStream, gate: &Gate, peer: SocketAddr) -> Sniffed {
    // Nothing is allocated for a connection that has sent nothing yet: browsers open spares.
    if socket.readable().await.is_err() {
        return Sniffed::Gone;
    }
    let mut buf = Vec::with_capacity(2048);
    loop {
        if buf.capacity() - buf.len() < 512 {
            buf.reserve(2048);
        }
        match socket.read_buf(&mut buf).await {
            Ok(0) | Err(_) if buf.is_empty() => return Sniffed::Gone,
            // Hyper reads the rest (the end, or the error) and answers as it does.
            Ok(0) | Err(_) => return Sniffed::Other(buf),
            Ok(_) => {}
        }
        match inspect(&buf, peer, gate.proxy()) {
            Head::Incomplete if buf.len() < SNIFF_LIMIT => {}
            Head::Stream {
                credentials,
                resume,
            } => match gate.would_admit(&credentials) {
                Some(auth) => return Sniffed::Stream { resume, auth },
                // warp's route answers the 401 or 429 (and counts a wrong token, once).
                None => return Sniffed::Other(buf),
            },
            _ => return Sniffed::Other(buf),
        }
    }
}

#[derive(Debug, PartialEq)]
enum Head {
    Incomplete,
    /// A head this module does not serve (or cannot parse).
    Other,
    Stream {
        credentials: Credentials,
        resume: Option<i64>,
    },
}

/// What the bytes read so far say about the first request from `peer`.
fn inspect(buf: &[u8], peer: SocketAddr, proxy: &ProxyTrust) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let Ok(status) = req.parse(buf) else {
        return Head::Other;
    };
    // The request line alone settles most connections, before the headers are in.
    if let (Some(method), Some(target)) = (req.method, req.path) {
        let path = target.split_once('?').map_or(target, |(p, _)| p);
        if method != "GET" || path != "/api/stream" {
            return Head::Other;
        }
    }
    if status.is_partial() {
        return Head::Incomplete;
    }
    let mut map = HeaderMap::new();
    for h in req.headers.iter() {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(h.value),
        ) else {
            return Head::Other;
        };
        // A body or a protocol switch is not a plain stream request.
        let plain = match name.as_str() {
            "content-length" => value.as_bytes() == b"0",
            "transfer-encoding" | "upgrade" | "expect" => false,
            _ => true,
        };
        if !plain {
            return Head::Other;
        }
        map.append(name, value);
    }
    let query = req
        .path
        .and_then(|t| t.split_once('?'))
        .map_or("", |(_, q)| q);
    let query: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    Head::Stream {
        credentials: credentials_of(&map, Some(peer), proxy),
        resume: resume_point(&map, &query),
    }
}

/// The answer's head. The body runs until the connection closes (no chunking: one write per
/// frame), which `Connection: close` announces. The same headers as every routed answer.
fn stream_head() -> String {
    let mut head = String::with_capacity(640);
    head.push_str("HTTP/1.1 200 OK\r\nconnection: close\r\n");
    for (name, value) in STREAM_HEADERS.iter().chain(&SECURITY_HEADERS) {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    let now = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT");
    head.push_str(&format!("date: {now}\r\n\r\n"));
    head
}

/// A socket with the bytes the sniffing consumed put back in front of it, for hyper.
struct Replay {
    head: Bytes,
    socket: TcpStream,
}

impl AsyncRead for Replay {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.head.is_empty() {
            return Pin::new(&mut this.socket).poll_read(cx, buf);
        }
        let n = this.head.len().min(buf.remaining());
        buf.put_slice(&this.head.split_to(n));
        if this.head.is_empty() {
            this.head = Bytes::new(); // frees the sniffing buffer
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().socket).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().socket).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.socket.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().socket).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().socket).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: &str = "192.0.2.7:5123";

    /// The head as it arrives from [`PEER`], with no proxy header trusted.
    fn inspect(buf: &[u8]) -> Head {
        super::inspect(buf, PEER.parse().unwrap(), &ProxyTrust::default())
    }

    fn stream(authorization: Option<&str>, session: Option<&str>, resume: Option<i64>) -> Head {
        Head::Stream {
            credentials: Credentials {
                authorization: authorization.map(str::to_string),
                session: session.map(str::to_string),
                client: Some(PEER.parse::<SocketAddr>().unwrap().ip()),
            },
            resume,
        }
    }

    #[test]
    fn a_plain_stream_request_is_ours() {
        let head = b"GET /api/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n\r\n";
        assert_eq!(inspect(head), stream(Some("Bearer t"), None, None));
        let head = b"GET /api/stream?last_event_id=7 HTTP/1.1\r\nCookie: a=b; leadstream_session=s1\r\n\r\n";
        assert_eq!(inspect(head), stream(None, Some("s1"), Some(7)));
        // The header wins over the query, as in the routed stream.
        let head = b"GET /api/stream?last_event_id=7 HTTP/1.0\r\nLast-Event-ID: 9\r\n\r\n";
        assert_eq!(inspect(head), stream(None, None, Some(9)));
    }

    #[test]
    fn the_request_line_decides_early() {
        assert_eq!(
            inspect(b"GET /api/stream HTTP/1.1\r\nHost:"),
            Head::Incomplete
        );
        assert_eq!(inspect(b"GET /api/str"), Head::Incomplete);
        assert_eq!(inspect(b"POST /webhook HTTP/1.1\r\nHo"), Head::Other);
        assert_eq!(inspect(b"GET /api/leads HTTP/1.1\r\n"), Head::Other);
        assert_eq!(inspect(b"GET /api/stream/ HTTP/1.1\r\n\r\n"), Head::Other);
        assert_eq!(inspect(b"HEAD /api/stream HTTP/1.1\r\n\r\n"), Head::Other);
        // HTTP/2 with prior knowledge, and garbage.
        assert_eq!(inspect(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Head::Other);
        assert_eq!(inspect(b"\x16\x03\x01\x02\x00"), Head::Other);
    }

    #[test]
    fn bodies_and_upgrades_go_to_hyper() {
        for extra in [
            "Content-Length: 5\r\n",
            "Transfer-Encoding: chunked\r\n",
            "Upgrade: h2c\r\n",
            "Expect: 100-continue\r\n",
        ] {
            let head = format!("GET /api/stream HTTP/1.1\r\n{extra}\r\n");
            assert_eq!(inspect(head.as_bytes()), Head::Other, "{extra}");
        }
        let head = b"GET /api/stream HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(inspect(head), Head::Stream { .. }));
    }

    #[test]
    fn the_head_carries_the_security_headers() {
        let head = stream_head();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(head.ends_with("\r\n\r\n"));
        for (name, value) in SECURITY_HEADERS {
            assert!(head.contains(&format!("\r\n{name}: {value}\r\n")), "{name}");
        }
        assert!(head.contains("\r\ncontent-type: text/event-stream\r\n"));
        assert!(head.contains("\r\nx-accel-buffering: no\r\n"));
    }
}
