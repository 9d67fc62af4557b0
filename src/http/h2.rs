//! HTTP/2 with prior knowledge, as a reverse proxy may speak it upstream (h2c): hyper's
//! HTTP/2 server with the warp routes, the stream included (its body framed by hyper).
//!
//! Deadlines, as on HTTP/1: a connection with no open request for the idle timeout is closed;
//! hyper pings the client and closes a connection that does not answer; each request body
//! must arrive within the body timeout and takes room in the body budget as it arrives; and
//! a stream that is not read stops being polled once hyper's small send buffer is full, so it
//! holds no more than that (the channel moves on without it, and it is caught up from the
//! database when read again).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use sync_wrapper::SyncWrapper;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Sleep;
use warp::http::Request;

use super::auth::PeerAddr;
use super::error::{before_routes, AppError};
use super::limits::{BodyBudget, BudgetRoom};
use super::replay::Replay;
use super::server::ServerContext;
use super::NO_PATH;
use crate::shutdown::Shutdown;

/// Pings every so often, and closes a connection whose ping is not answered in as long.
const PING_EVERY: Duration = Duration::from_secs(20);
/// Streams (requests) open at once on one connection.
const MAX_STREAMS: u32 = 64;
/// Flow-control windows: what a client may send ahead of what the routes read.
const STREAM_WINDOW: u32 = 64 * 1024;
const CONNECTION_WINDOW: u32 = 256 * 1024;
/// What hyper buffers of a response the client does not read yet (an idle stream's frames).
const SEND_BUFFER: usize = 64 * 1024;
const MAX_HEADERS: u32 = 16 * 1024;
/// How long an idle connection told to go away may take to finish.
const GOAWAY_GRACE: Duration = Duration::from_secs(1);

/// Serves one HTTP/2 connection (`read`: the bytes already read, the preface among them).
pub(super) async fn serve(
    ctx: &ServerContext,
    socket: TcpStream,
    read: Bytes,
    peer: SocketAddr,
    stop: &Shutdown,
) {
    let open = Arc::new(OpenRequests::default());
    let routes = warp::service(ctx.routes.clone());
    let budget = ctx.budget.clone();
    let body_timeout = ctx.limits.body_timeout;
    let requests = open.clone();
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let guard = OpenRequest::new(&requests);
        // As on HTTP/1 (`h1::head`): a CONNECT carries no :path, and no route may see it.
        let routable = req.uri().path_and_query().is_some();
        let mut req = req.map(|body| Limited::new(body, budget.clone(), body_timeout));
        req.extensions_mut().insert(PeerAddr(peer));
        let answer = routable.then(|| tower_service::Service::call(&mut routes.clone(), req));
        async move {
            let res = match answer {
                Some(answer) => answer.await?,
                None => before_routes(AppError::BadRequest(NO_PATH.into())),
            };
            Ok::<_, std::convert::Infallible>(res.map(|body| Tracked {
                body,
                _guard: guard,
            }))
        }
    });
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .keep_alive_interval(PING_EVERY)
        .keep_alive_timeout(PING_EVERY)
        .max_concurrent_streams(MAX_STREAMS)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_send_buf_size(SEND_BUFFER)
        .max_header_list_size(MAX_HEADERS);
    let io = TokioIo::new(Replay::new(read, socket));
    let conn = builder.serve_connection(io, svc);
    tokio::pin!(conn);
    let idle = open.idle_for(ctx.limits.idle_timeout);
    tokio::pin!(idle);
    // After a GOAWAY, hyper waits for the client to answer a ping; one that does not is
    // dropped after a moment (nothing is in flight on an idle connection).
    let gone = tokio::time::sleep(Duration::MAX);
    tokio::pin!(gone);
    let mut closing = false;
    loop {
        tokio::select! {
            outcome = conn.as_mut() => {
                if let Err(e) = outcome {
                    log::debug!("HTTP/2 connection from {peer} ended: {e}");
                }
                return;
            }
            _ = &mut idle, if !closing => {
                log::debug!("HTTP/2 connection from {peer} idle for {:?}; closing", ctx.limits.idle_timeout);
                closing = true;
                conn.as_mut().graceful_shutdown();
                gone.as_mut().reset(tokio::time::Instant::now() + GOAWAY_GRACE);
            }
            // Finishes the requests in hand (a stream ends at shutdown by itself), then
            // closes.
            _ = stop.started(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = &mut gone => return,
        }
    }
}

/// The requests open on one connection, and a wake-up whenever that number changes.
#[derive(Default)]
struct OpenRequests {
    n: AtomicUsize,
    changed: Notify,
}

impl OpenRequests {
    /// Resolves once no request has been open for `limit` in a row.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let changed = self.changed.notified();
            if self.n.load(Ordering::Acquire) == 0 {
                if tokio::time::timeout(limit, changed).await.is_err()
                    && self.n.load(Ordering::Acquire) == 0
                {
                    return;
                }
            } else {
                changed.await;
            }
        }
    }
}

/// One open request: from the call until its answer's body is dropped (a stream's lasts).
struct OpenRequest(Arc<OpenRequests>);

impl OpenRequest {
    fn new(open: &Arc<OpenRequests>) -> OpenRequest {
        open.n.fetch_add(1, Ordering::AcqRel);
        open.changed.notify_one();
        OpenRequest(open.clone())
    }
}

impl Drop for OpenRequest {
    fn drop(&mut self) {
        self.0.n.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_one();
    }
}

/// An answer's body that keeps its request counted as open.
struct Tracked<B> {
    body: B,
    _guard: OpenRequest,
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

type Waiting = SyncWrapper<Pin<Box<dyn Future<Output = BudgetRoom> + Send>>>;

/// A request body with a deadline for all of it, taking room in the body budget for each
/// frame before the route gets it.
struct Limited {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    budget: BodyBudget,
    room: BudgetRoom,
    /// A frame waiting for room, and the wait.
    waiting: Option<(Frame<Bytes>, Waiting)>,
}

/// The error of a body that broke a limit; the route answers it as a body it could not read.
#[derive(Debug)]
struct TooSlow;

impl std::fmt::Display for TooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl std::error::Error for TooSlow {}

impl Limited {
    fn new(inner: Incoming, budget: BodyBudget, timeout: Duration) -> Limited {
        Limited {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            budget,
            room: BodyBudget::none(),
            waiting: None,
        }
    }
}

impl Body for Limited {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(TooSlow))));
        }
        if let Some((_, wait)) = &mut this.waiting {
            let Poll::Ready(room) = wait.get_mut().as_mut().poll(cx) else {
                return Poll::Pending;
            };
            this.room.merge(room);
            let (frame, _) = this.waiting.take().expect("waiting");
            return Poll::Ready(Some(Ok(frame)));
        }
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        let n = frame.data_ref().map_or(0, Bytes::len);
        if n == 0 {
            return Poll::Ready(Some(Ok(frame)));
        }
        let wait: Pin<Box<dyn Future<Output = BudgetRoom> + Send>> =
            Box::pin(this.budget.clone().room(n));
        this.waiting = Some((frame, SyncWrapper::new(wait)));
        // Polled at once: it is ready unless the budget is spent.
        Pin::new(this).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.waiting.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
