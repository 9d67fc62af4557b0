//! Our HTTP/1.x connection: requests read one at a time (pipelined ones answered in order),
//! each handed to the warp routes as a tower service, each answer written back; and any
//! authorised `GET /api/stream`, whatever the connection carried before, handed with the
//! socket to the stream's socket writer.
//!
//! Why our own loop and not hyper's: a stream must leave the general HTTP machinery behind
//! (its buffers cost about 20 KiB per idle stream, and its chunking is one more trip per
//! frame), and hyper cannot give a connection back after a `200`. Browsers open their
//! `EventSource` on a connection that already carried the page's API calls, and proxies pool
//! their upstream connections, so a stream on a reused connection is the usual case, not the
//! exception. The README's Performance section has the measurements.
//!
//! Every wait has a deadline: the next request's first byte ([`Limits::idle_timeout`]), the
//! rest of its head (`head_timeout`), its body (`body_timeout`, and room in the body budget),
//! each write of the answer (`write_timeout`).
//!
//! [`Limits::idle_timeout`]: crate::config::Limits::idle_timeout

mod answer;
mod body;
mod head;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at, Instant};
use warp::http::{Method, Request};

use super::auth::PeerAddr;
use super::error::{before_routes, AppError};
use super::server::ServerContext;
use super::stream;
use crate::shutdown::Shutdown;
use answer::{Asked, Unwritten};
use body::{BodyError, BodyReader, RequestBody};
use head::{Bad, BodyKind, Head};

/// Longest request head; longer is answered 431. Browsers send a few KiB at most.
const MAX_HEAD: usize = 16 * 1024;
/// How long an answer to a refused request waits for the client to stop sending before the
/// close (a close with unread bytes would reset the connection and lose the answer).
const LINGER: Duration = Duration::from_secs(2);

/// Serves HTTP/1.x requests on `socket` (with `buf`, the bytes already read) until the client
/// leaves, asks for a stream, breaks a rule or times out, or shutdown begins.
pub(super) async fn serve(
    ctx: &ServerContext,
    mut socket: TcpStream,
    buf: BytesMut,
    peer: SocketAddr,
    stop: &Shutdown,
) {
    // Boxed, and dropped once a stream begins: an open stream's task then holds the stream's
    // own state only, not room for reading heads, bodies and routes' answers (a few KiB per
    // stream otherwise, measured).
    let requests = Box::pin(requests(ctx, &mut socket, buf, peer, stop)).await;
    if let Some(stream) = requests {
        ctx.streams.serve(socket, stream).await;
    }
}

/// The requests of one connection, one at a time; the stream asked for, if one was.
async fn requests(
    ctx: &ServerContext,
    socket: &mut TcpStream,
    mut buf: BytesMut,
    peer: SocketAddr,
    stop: &Shutdown,
) -> Option<crate::live::SocketStream> {
    let mut served = 0usize;
    loop {
        let head = match next_head(ctx, socket, &mut buf, peer, stop).await {
            Next::Head(head) => head,
            Next::Closed => return None,
            Next::Refused(e) => {
                refuse(socket, e, ctx.limits.write_timeout).await;
                return None;
            }
        };
        // Boxed: only a request in progress needs room for a body and a route's future, not
        // an idle keep-alive connection.
        let outcome = Box::pin(request(ctx, socket, &mut buf, head, served, peer, stop)).await;
        match outcome {
            Outcome::Answered { keep_alive: true } if !stop.is_started() => served += 1,
            Outcome::Answered { .. } | Outcome::Closed => return None,
            Outcome::Refused(e) => {
                refuse(socket, e, ctx.limits.write_timeout).await;
                return None;
            }
            Outcome::Stream(s) => return Some(s),
        }
    }
}

enum Next {
    Head(Box<Head>),
    /// The client left, stayed idle or took too long with its head, or shutdown began.
    Closed,
    Refused(AppError),
}

/// Waits for the next request's head.
async fn next_head(
    ctx: &ServerContext,
    socket: &mut TcpStream,
    buf: &mut BytesMut,
    peer: SocketAddr,
    stop: &Shutdown,
) -> Next {
    let limits = &ctx.limits;
    if buf.is_empty() {
        // No buffer for a connection that has sent nothing yet: browsers open spares, and an
        // idle keep-alive should cost only its socket.
        *buf = BytesMut::new();
        tokio::select! {
            ready = timeout(limits.idle_timeout, socket.readable()) => match ready {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Next::Closed,
                Err(_) => {
                    log::debug!("{peer} sent no request for {:?}; closing", limits.idle_timeout);
                    return Next::Closed;
                }
            },
            _ = stop.started() => return Next::Closed,
        }
    }
    let deadline = Instant::now() + limits.head_timeout;
    loop {
        if !buf.is_empty() {
            match head::parse(buf) {
                Ok(Some((head, len))) => {
                    buf.advance(len);
                    return Next::Head(Box::new(head));
                }
                Ok(None) if buf.len() < MAX_HEAD => {}
                Ok(None) | Err(Bad::TooLarge) => return Next::Refused(AppError::HeadTooLarge),
                Err(Bad::Malformed(why)) => return Next::Refused(AppError::BadRequest(why.into())),
            }
        }
        buf.reserve(4096);
        tokio::select! {
            read = timeout_at(deadline, socket.read_buf(buf)) => match read {
                Ok(Ok(n)) if n > 0 => {}
                Ok(_) => return Next::Closed,
                Err(_) => {
                    log::debug!("{peer} sent no whole request head in {:?}; closing", limits.head_timeout);
                    return Next::Closed;
                }
            },
            // A request not yet whole at shutdown has nothing to lose.
            _ = stop.started() => return Next::Closed,
        }
    }
}

enum Outcome {
    Answered {
        keep_alive: bool,
    },
    Closed,
    Refused(AppError),
    /// An authorised stream request: the connection is the socket writer's now.
    Stream(crate::live::SocketStream),
}

/// Reads one request's body and answers it (or hands it to the stream).
async fn request(
    ctx: &ServerContext,
    socket: &mut TcpStream,
    buf: &mut BytesMut,
    head: Box<Head>,
    served: usize,
    peer: SocketAddr,
    stop: &Shutdown,
) -> Outcome {
    let limits = &ctx.limits;
    let too_large = matches!(head.body, BodyKind::Length(n) if n > super::webhook::MAX_BODY as u64);
    if head.expect_continue && head.body != BodyKind::None && !too_large {
        let go_ahead = timeout(
            limits.write_timeout,
            socket.write_all(b"HTTP/1.1 100 Continue\r\n\r\n"),
        );
        if !matches!(go_ahead.await, Ok(Ok(()))) {
            return Outcome::Closed;
        }
    }
    let reader = BodyReader {
        socket,
        buf,
        budget: &ctx.budget,
        deadline: Instant::now() + limits.body_timeout,
    };
    let body = match reader.read(head.body).await {
        Ok(body) => body,
        // It may still read: a half-closed client is told why nothing happened.
        Err(BodyError::BrokeOff) => {
            return Outcome::Refused(AppError::BadRequest(
                "the request body ended before its length".into(),
            ))
        }
        Err(BodyError::TooLarge) => return Outcome::Refused(AppError::PayloadTooLarge),
        Err(BodyError::Malformed(why)) => {
            return Outcome::Refused(AppError::BadRequest(why.into()))
        }
        Err(BodyError::TimedOut) => {
            log::debug!("{peer} sent no whole body in {:?}", limits.body_timeout);
            return Outcome::Refused(AppError::RequestTimeout);
        }
    };
    if let Some(s) = stream::for_socket(&head.parts, &ctx.gate, peer, served > 0).await {
        return Outcome::Stream(s);
    }
    let Head {
        mut parts,
        keep_alive,
        ..
    } = *head;
    let asked = Asked {
        version: parts.version,
        head_only: parts.method == Method::HEAD,
        keep_alive: keep_alive && !stop.is_started(),
    };
    // HEAD is answered as GET would be, without the body.
    if asked.head_only {
        parts.method = Method::GET;
    }
    parts.extensions.insert(PeerAddr(peer));
    let res = call_routes(ctx, Request::from_parts(parts, body)).await;
    match answer::write(socket, res, asked, limits.write_timeout).await {
        Ok(keep_alive) => Outcome::Answered { keep_alive },
        Err(Unwritten::TimedOut) => {
            log::debug!(
                "{peer} took no answer for {:?}; closing",
                limits.write_timeout
            );
            Outcome::Closed
        }
        Err(Unwritten::Broken) => Outcome::Closed,
    }
}

async fn call_routes(ctx: &ServerContext, req: Request<RequestBody>) -> warp::reply::Response {
    let mut service = warp::service(ctx.routes.clone());
    match tower_service::Service::call(&mut service, req).await {
        Ok(res) => res,
        Err(never) => match never {},
    }
}

/// Answers a request the loop refuses by itself, then closes: after a broken rule the rest
/// of the bytes cannot be trusted to start a request.
async fn refuse(socket: &mut TcpStream, e: AppError, write_timeout: Duration) {
    let asked = Asked {
        version: warp::http::Version::HTTP_11,
        head_only: false,
        keep_alive: false,
    };
    if answer::write(socket, before_routes(e), asked, write_timeout)
        .await
        .is_err()
    {
        return;
    }
    // Shut our side, then read what the client still sends for a moment: closing with unread
    // bytes would make the kernel reset the connection, and the client might lose the answer.
    let _ = socket.shutdown().await;
    let mut scratch = [0u8; 4096];
    let _ = timeout(LINGER, async {
        while matches!(socket.read(&mut scratch).await, Ok(n) if n > 0) {}
    })
    .await;
}
