//! The flood: thousands of connections that hold the server without ever finishing a request,
//! as an anonymous client on the internet can open them, while a dashboard stream and signed
//! webhooks go on. Measured: `/healthz` and webhook latency during the flood (each on a fresh
//! connection, as a monitor and Meta open them), the server's peak resident memory, and how
//! long until its timeouts have closed every flood connection.
//!
//! The flood, in equal parts: silent connections; half request heads; webhook bodies that stall
//! after their first byte; idle HTTP/2 prior-knowledge connections; clients that pipeline two
//! hundred requests and never read an answer. Besides, a few 4 MiB bodies that stall one byte
//! before their end, holding half of the body budget.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

use crate::client::{get_request, webhook_request, Conn};
use crate::measure::{spread, Ids, Spread};
use crate::server::Server;
use crate::sse::{Peer, Sse, Via};

/// 4 MiB bodies that stall one byte short: 8 of them hold 32 MiB, half the default budget.
const BIG_BODIES: usize = 8;
/// How often the latency probes run during the flood.
const PROBE_EVERY: Duration = Duration::from_millis(100);

pub(crate) struct Flood {
    /// Flood connections open when the probing began.
    pub(crate) held: usize,
    pub(crate) healthz: Spread,
    pub(crate) webhook: Spread,
    /// Probes that failed (must stay 0).
    pub(crate) failures: Vec<String>,
    pub(crate) rss_before: u64,
    pub(crate) rss_peak: u64,
    /// Leads the dashboard stream received during the flood, of those sent.
    pub(crate) streamed: (usize, usize),
    /// From the end of the opening burst until the server had closed every flood connection.
    pub(crate) cleared: Option<Duration>,
}

/// What each kind of flood connection sends, then it goes quiet.
#[derive(Clone, Copy)]
enum Kind {
    Silent,
    HalfHead,
    StalledBody,
    IdleHttp2,
    Pipeliner,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::Silent,
        Kind::HalfHead,
        Kind::StalledBody,
        Kind::IdleHttp2,
        Kind::Pipeliner,
    ];

    fn opening(self) -> Vec<u8> {
        match self {
            Kind::Silent => Vec::new(),
            Kind::HalfHead => b"POST /webhook HTTP/1.1\r\nHost: flood\r\n".to_vec(),
            Kind::StalledBody => {
                b"POST /webhook HTTP/1.1\r\nHost: flood\r\nContent-Length: 100\r\n\r\n{".to_vec()
            }
            Kind::IdleHttp2 => b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0".to_vec(),
            Kind::Pipeliner => "GET / HTTP/1.1\r\nHost: flood\r\n\r\n"
                .repeat(200)
                .into_bytes(),
        }
    }
}

/// One flood connection: opened, its bytes sent as far as the socket takes them at once.
async fn open(addr: SocketAddr, kind: Kind) -> Result<TcpStream, String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    // A pipeliner's small window makes the server's answers back up at once.
    if matches!(kind, Kind::Pipeliner) {
        socket
            .set_recv_buffer_size(4096)
            .map_err(|e| e.to_string())?;
    }
    let s = socket
        .connect(addr)
        .await
        .map_err(|e| format!("flood connect: {e}"))?;
    let bytes = kind.opening();
    if !bytes.is_empty() {
        let _ = s.try_write(&bytes);
    }
    Ok(s)
}

/// A 4 MiB webhook body that stops one byte short, written by a task of its own (the server
/// reads it only as fast as its budget has room).
fn big_body(addr: SocketAddr) -> tokio::task::JoinHandle<Option<TcpStream>> {
    tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.ok()?;
        let len = 4 * 1024 * 1024;
        let head =
            format!("POST /webhook HTTP/1.1\r\nHost: flood\r\nContent-Length: {len}\r\n\r\n");
        s.write_all(head.as_bytes()).await.ok()?;
        s.write_all(&vec![b' '; len - 1]).await.ok()?;
        Some(s)
    })
}

/// Times one request on a fresh connection; the answer must be 200.
async fn probe(addr: SocketAddr, req: &[u8]) -> Result<Duration, String> {
    let started = Instant::now();
    let mut conn = Conn::connect(addr).await.map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(10), conn.roundtrip(req)).await {
        Ok(Ok((200, _))) => Ok(started.elapsed()),
        Ok(Ok((status, _))) => Err(format!("answered {status}")),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 10 s".into()),
    }
}

/// Open connections as the server counts them (`/api/status`).
async fn open_connections(addr: SocketAddr) -> Result<u64, String> {
    let mut conn = Conn::connect(addr).await.map_err(|e| e.to_string())?;
    let (status, body) = conn
        .roundtrip(&get_request(addr, "/api/status"))
        .await
        .map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("/api/status answered {status}"));
    }
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    v["connections"]["open"]
        .as_u64()
        .ok_or_else(|| "no connections.open in /api/status".into())
}

/// Floods `server` with `n` connections and probes it for `window`.
pub(crate) async fn flood(
    server: &Server,
    ids: &Ids,
    n: usize,
    window: Duration,
) -> Result<Flood, String> {
    let addr = server.addr;
    let rss_before = server.rss()?;
    let mut dashboard = Sse::open(addr, Peer::Leadstream, Via::Browser).await?;
    let baseline = open_connections(addr).await?;

    let bigs: Vec<_> = (0..BIG_BODIES).map(|_| big_body(addr)).collect();
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        held.push(open(addr, Kind::ALL[i % Kind::ALL.len()]).await?);
    }
    // Once the big bodies' bytes are in, they stall.
    let mut big_held = Vec::new();
    for b in bigs {
        if let Ok(Some(s)) = tokio::time::timeout(Duration::from_secs(10), b)
            .await
            .unwrap_or(Ok(None))
        {
            big_held.push(s);
        }
    }
    let opened = Instant::now();
    let flooding = open_connections(addr).await?.saturating_sub(baseline + 1) as usize;

    let mut healthz = Vec::new();
    let mut webhook = Vec::new();
    let mut failures = Vec::new();
    let mut rss_peak = server.rss()?;
    let mut sent = 0;
    let health = get_request(addr, "/healthz");
    while opened.elapsed() < window {
        let tick = tokio::time::sleep(PROBE_EVERY);
        let hook = webhook_request(addr, &ids.next());
        let (h, w) = tokio::join!(probe(addr, &health), probe(addr, &hook));
        sent += 1;
        for (r, into, what) in [(h, &mut healthz, "healthz"), (w, &mut webhook, "webhook")] {
            match r {
                Ok(d) => into.push(d),
                Err(e) => failures.push(format!("{what}: {e}")),
            }
        }
        rss_peak = rss_peak.max(server.rss()?);
        tick.await;
    }
    // Every webhook's lead, on the dashboard stream opened before the flood.
    let mut streamed = 0;
    while streamed < sent {
        match tokio::time::timeout(Duration::from_secs(10), dashboard.next_lead()).await {
            Ok(Ok(_)) => streamed += 1,
            _ => break,
        }
    }
    // Now the server's timeouts: every flood connection must be closed by them.
    let deadline = opened + Duration::from_secs(90);
    let cleared = loop {
        rss_peak = rss_peak.max(server.rss()?);
        if open_connections(addr).await? <= baseline + 1 {
            break Some(opened.elapsed());
        }
        if Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    drop(held);
    drop(big_held);
    if healthz.is_empty() || webhook.is_empty() {
        return Err(format!("no probe answered during the flood: {failures:?}"));
    }
    Ok(Flood {
        held: flooding,
        healthz: spread(healthz),
        webhook: spread(webhook),
        failures,
        rss_before,
        rss_peak,
        streamed: (streamed, sent),
        cleared,
    })
}
