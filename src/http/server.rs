//! The accept loop: admits connections within the caps (a short `503` beyond them), and gives
//! each its own task, which tells HTTP/2 with prior knowledge from HTTP/1 by the first bytes:
//! HTTP/1.x goes to our own connection loop (`h1`), HTTP/2 to hyper (`h2`).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::{timeout, timeout_at, Instant};
use warp::filters::BoxedFilter;
use warp::reply::Response;

use super::limits::{
    cap_for_fd_limit, raise_fd_limit, refusals_for_fd_limit, Admitted, BodyBudget, ConnectionCap,
    Refused,
};
use super::{h1, h2};
use crate::auth::Gate;
use crate::config::Limits;
use crate::live::Streams;
use crate::shutdown::Shutdown;

/// What every connection needs.
pub struct ServerContext {
    /// Decides who may open a stream.
    pub gate: Gate,
    pub streams: Arc<Streams>,
    pub routes: BoxedFilter<(Response,)>,
    pub limits: Limits,
    /// Room for request bodies, shared by every connection.
    pub budget: BodyBudget,
}

/// How HTTP/2 with prior knowledge starts (RFC 9113, 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const REFUSAL_LINGER: Duration = Duration::from_secs(1);
/// When a refused client may try again.
const RETRY_AFTER_SECS: u32 = 5;

/// Raises the open-files limit and sizes the connection cap to it (unless set), logging both.
pub fn connection_cap(limits: &Limits) -> Arc<ConnectionCap> {
    let fds = raise_fd_limit();
    let fitting = fds.map(cap_for_fd_limit);
    let max = match (limits.max_connections, fitting) {
        (Some(set), Some(fit)) if set > fit => {
            log::warn!(
                "MAX_CONNECTIONS={set} is more than {fit}, what the open-files limit of {} \
                 leaves room for: past that, connections fail instead of getting a 503",
                fds.unwrap_or_default()
            );
            set
        }
        (Some(set), _) => set,
        (None, Some(fit)) => fit,
        (None, None) => 10_000,
    };
    let per_ip = match (limits.max_connections_per_ip, limits.limit_loopback) {
        (0, _) => "no limit per address".to_string(),
        (n, true) => format!("{n} per address"),
        (n, false) => format!("{n} per address, loopback not counted"),
    };
    match fds {
        Some(fds) => log::info!("open-files limit {fds}: at most {max} connections ({per_ip})"),
        None => log::info!("at most {max} connections ({per_ip})"),
    }
    Arc::new(ConnectionCap::new(max, limits).with_refusals(refusals_for_fd_limit(fds)))
}

/// Serves `listener` until shutdown begins, then waits for every connection to end: streams
/// end by themselves on shutdown, other connections finish the request in hand.
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<ServerContext>,
    cap: Arc<ConnectionCap>,
    stop: Shutdown,
) {
    // Every connection task holds a clone of `alive`; `drained` yields None once all are gone.
    let (alive, mut drained) = mpsc::channel::<()>(1);
    // Beyond this many refusals in progress, a refused connection is just closed (each
    // answer holds a socket for up to `REFUSAL_LINGER`).
    let refusals = Arc::new(Semaphore::new(cap.refusals()));
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
        match cap.admit(peer.ip()) {
            Ok(admitted) => {
                let conn = Connection {
                    ctx: ctx.clone(),
                    peer,
                    stop: stop.clone(),
                    _admitted: admitted,
                    _alive: alive.clone(),
                };
                tokio::spawn(conn.run(socket));
            }
            Err(why) => refuse(socket, peer, why, &refusals),
        }
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

/// Answers a connection over a cap with a short `503` and closes it, without reading its
/// request: the answer is written at once, then the socket lingers a moment so the close does
/// not reset the connection before the client has read it. At most `ConnectionCap::refusals`
/// at once.
fn refuse(socket: TcpStream, peer: SocketAddr, why: Refused, refusals: &Arc<Semaphore>) {
    let Ok(slot) = refusals.clone().try_acquire_owned() else {
        return;
    };
    let words = match why {
        Refused::Full => "the server is busy: too many connections; try again shortly\n",
        Refused::TooManyFromAddress => "too many connections from your address\n",
    };
    log::debug!("refused a connection from {peer}: {}", words.trim_end());
    tokio::spawn(async move {
        let _slot = slot;
        let mut socket = socket;
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
             retry-after: {RETRY_AFTER_SECS}\r\ncache-control: no-store\r\nconnection: close\r\n\
             content-length: {}\r\n\r\n{words}",
            words.len()
        );
        let _ = timeout(REFUSAL_LINGER, async {
            socket.write_all(answer.as_bytes()).await?;
            socket.shutdown().await?;
            let mut scratch = [0u8; 1024];
            while socket.read(&mut scratch).await? > 0 {}
            Ok::<(), io::Error>(())
        })
        .await;
    });
}

struct Connection {
    ctx: Arc<ServerContext>,
    peer: SocketAddr,
    stop: Shutdown,
    _admitted: Admitted,
    _alive: mpsc::Sender<()>,
}

impl Connection {
    async fn run(self, socket: TcpStream) {
        // Answers and frames should leave at once, not wait for Nagle.
        let _ = socket.set_nodelay(true);
        let Some(first) = self.first_bytes(&socket).await else {
            return;
        };
        let ctx = &self.ctx;
        // Boxed for the same reason: only a connection that splits its preface needs it.
        match Box::pin(self.protocol(socket, first)).await {
            Some(Protocol::Http1(socket, buf)) => {
                h1::serve(ctx, socket, buf, self.peer, &self.stop).await
            }
            // Boxed: hyper's connection state is large, and an unboxed future would make
            // every stream's task carry room for it.
            Some(Protocol::Http2(socket, read)) => {
                Box::pin(h2::serve(ctx, socket, read, self.peer, &self.stop)).await
            }
            None => {}
        }
    }

    /// Waits (for the idle timeout at most) until the client sends something, and looks at
    /// it without taking it off the socket. Nothing is allocated for a connection that has
    /// sent nothing yet: browsers open spares.
    async fn first_bytes(&self, socket: &TcpStream) -> Option<([u8; 24], usize)> {
        let mut peeked = [0u8; 24];
        let idle = self.ctx.limits.idle_timeout;
        tokio::select! {
            n = timeout(idle, socket.peek(&mut peeked)) => match n {
                Ok(Ok(n)) if n > 0 => Some((peeked, n)),
                Ok(_) => None,
                Err(_) => {
                    log::debug!("{} sent nothing for {idle:?}; closing", self.peer);
                    None
                }
            },
            // A connection that has not sent a request by shutdown has nothing to lose.
            _ = self.stop.started() => None,
        }
    }

    /// HTTP/2 when the connection opens with its preface, else HTTP/1. Only a client that
    /// sends the start of the preface in pieces has its bytes read here (and handed on).
    async fn protocol(&self, mut socket: TcpStream, first: ([u8; 24], usize)) -> Option<Protocol> {
        let (peeked, n) = first;
        if peeked[..n] != H2_PREFACE[..n] {
            return Some(Protocol::Http1(socket, BytesMut::new()));
        }
        if n == H2_PREFACE.len() {
            return Some(Protocol::Http2(socket, Bytes::new()));
        }
        let deadline = Instant::now() + self.ctx.limits.head_timeout;
        let mut buf = BytesMut::with_capacity(H2_PREFACE.len());
        while buf.len() < H2_PREFACE.len() {
            match timeout_at(deadline, socket.read_buf(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return None,
            }
            let seen = buf.len().min(H2_PREFACE.len());
            if buf[..seen] != H2_PREFACE[..seen] {
                return Some(Protocol::Http1(socket, buf));
            }
        }
        Some(Protocol::Http2(socket, buf.freeze()))
    }
}

enum Protocol {
    /// With the bytes already read.
    Http1(TcpStream, BytesMut),
    Http2(TcpStream, Bytes),
}
