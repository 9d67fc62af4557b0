//! The measurements of one subscriber's latency and of ingest, and their figures (the fan-out
//! and memory per stream are in `fanout`).

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::client::{lead_count, lead_id, post_webhook, webhook_request, Conn};
use crate::server::Server;
use crate::sse::{Peer, Sse, Via};

/// p50, p99 and max (nearest rank).
#[derive(Clone, Copy)]
pub(crate) struct Spread {
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) max: Duration,
}

pub(crate) fn spread(mut v: Vec<Duration>) -> Spread {
    assert!(!v.is_empty());
    v.sort();
    let rank = |p: f64| v[((p / 100.0 * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Spread {
        p50: rank(50.0),
        p99: rank(99.0),
        max: *v.last().expect("not empty"),
    }
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Hands out distinct lead ids across phases.
pub(crate) struct Ids(pub(crate) AtomicU64);

impl Ids {
    pub(crate) fn next(&self) -> String {
        lead_id(self.0.fetch_add(1, Ordering::Relaxed))
    }
}

/// 1: one subscriber on a browser-style connection; each lead sent after the previous one
/// arrived.
/// `stream_from`: where the subscriber is (another instance than `addr`, which gets the
/// webhooks, to time the way between instances).
pub(crate) async fn latency(
    addr: SocketAddr,
    stream_from: SocketAddr,
    ids: &Ids,
    n: usize,
) -> Result<Spread, String> {
    latency_times(addr, stream_from, ids, n).await.map(spread)
}

/// Leads [`latency`] sends untimed first.
pub(crate) const LATENCY_WARM_UP: usize = 20;

/// [`latency`]'s times, one per lead, in the order sent.
pub(crate) async fn latency_times(
    addr: SocketAddr,
    stream_from: SocketAddr,
    ids: &Ids,
    n: usize,
) -> Result<Vec<Duration>, String> {
    let mut sse = Sse::open(stream_from, Peer::Leadstream, Via::Browser).await?;
    let mut poster = Conn::connect(addr).await.map_err(|e| e.to_string())?;
    // Warm-up, not timed: the first leads open the worker's pooled Graph connection and the
    // reader connections, which a running server has already done.
    let mut times = Vec::with_capacity(n);
    for i in 0..LATENCY_WARM_UP + n {
        let leadgen_id = ids.next();
        let req = webhook_request(addr, &leadgen_id);
        let started = SystemTime::now();
        let (posted, seen) = tokio::join!(post_webhook(&mut poster, &req), sse.next_lead());
        posted?;
        let seen = seen?;
        if seen.leadgen_id != leadgen_id {
            return Err(format!(
                "stream sent lead {} (#{}) while {leadgen_id} was expected",
                seen.leadgen_id, seen.id
            ));
        }
        if i >= LATENCY_WARM_UP {
            times.push(seen.at.duration_since(started).unwrap_or_default());
        }
    }
    Ok(times)
}

/// Bytes per send in [`bare_sends`]; a lead's frame in this benchmark is about this size.
pub(crate) const BARE_FRAME: usize = 512;

pub(crate) struct Bare {
    pub(crate) threads: usize,
    pub(crate) spread: Spread,
}

/// The kernel's share of a fan-out: one send to each of `n` loopback sockets from as many
/// plain threads as the server has workers, with no server, no runtime and no reader awake.
/// On loopback a send also runs the receiving side's TCP; what the server takes beyond this
/// is its own.
pub(crate) fn bare_sends(n: usize, rounds: usize) -> io::Result<Bare> {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut receivers = Vec::with_capacity(n);
    let mut senders = Vec::with_capacity(n);
    for _ in 0..n {
        receivers.push(std::net::TcpStream::connect(addr)?);
        let (sender, _) = listener.accept()?;
        sender.set_nodelay(true)?;
        senders.push(sender);
    }
    let threads = std::thread::available_parallelism().map_or(2, |t| t.get());
    let frame = [b'x'; BARE_FRAME];
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        std::thread::scope(|scope| {
            let workers: Vec<_> = senders
                .chunks_mut(n.div_ceil(threads).max(1))
                .map(|chunk| {
                    scope.spawn(move || chunk.iter_mut().try_for_each(|s| s.write_all(&frame)))
                })
                .collect();
            workers
                .into_iter()
                .try_for_each(|w| w.join().expect("a send thread panicked"))
        })?;
        times.push(started.elapsed());
        let mut got = [0u8; BARE_FRAME];
        for r in &mut receivers {
            r.read_exact(&mut got)?;
        }
    }
    Ok(Bare {
        threads,
        spread: spread(times),
    })
}

pub(crate) struct Ingest {
    pub(crate) n: usize,
    pub(crate) connections: usize,
    pub(crate) acked: Duration,
    /// Until the dashboard stream had every lead.
    pub(crate) saved: Duration,
    /// Server CPU until every webhook was answered, and until every lead was saved.
    pub(crate) server_cpu_acked: Duration,
    pub(crate) server_cpu: Duration,
}

/// 4: `n` webhooks over `connections` keep-alive connections, as fast as they are answered,
/// with one dashboard stream open that must see every lead once, in id order.
/// Several `servers` (instances on one PostgreSQL database) share the connections: connection
/// `i` goes to server `i % servers`; the dashboard stream is on the first.
pub(crate) async fn ingest(
    servers: &[&Server],
    ids: &Ids,
    n: usize,
    connections: usize,
) -> Result<Ingest, String> {
    let addr = servers[0].addr;
    let to = |c: usize| servers[c % servers.len()].addr;
    let cpu = || servers.iter().map(|s| s.cpu()).sum::<Duration>();
    let mut counter = Conn::connect(addr).await.map_err(|e| e.to_string())?;
    let (base, _) = lead_count(&mut counter, addr).await?;
    // Requests are built and signed before the clock starts: the client's work is not the
    // server's throughput.
    let mut per_conn: Vec<Vec<Vec<u8>>> = vec![Vec::new(); connections];
    for i in 0..n {
        let c = i % connections;
        per_conn[c].push(webhook_request(to(c), &ids.next()));
    }
    let mut conns = Vec::with_capacity(connections);
    for c in 0..connections {
        conns.push(Conn::connect(to(c)).await.map_err(|e| e.to_string())?);
    }
    let mut sse = Sse::open(addr, Peer::Leadstream, Via::Browser).await?;
    let dashboard = tokio::spawn(async move {
        let mut last_id = 0;
        for _ in 0..n {
            let seen = sse.next_lead().await?;
            if seen.id <= last_id {
                return Err(format!(
                    "stream sent #{} after #{last_id}: out of order or twice",
                    seen.id
                ));
            }
            last_id = seen.id;
        }
        Ok::<Instant, String>(Instant::now())
    });

    let cpu_before = cpu();
    let started = Instant::now();
    let mut senders = Vec::with_capacity(connections);
    for (mut conn, reqs) in conns.into_iter().zip(per_conn) {
        senders.push(tokio::spawn(async move {
            for req in reqs {
                post_webhook(&mut conn, &req).await?;
            }
            Ok::<(), String>(())
        }));
    }
    for s in senders {
        s.await.map_err(|e| e.to_string())??;
    }
    let acked = started.elapsed();
    // The dashboard stream sees each lead right after its commit, so its last arrival is
    // when the last lead was saved (and shown). Counting rows meanwhile would itself load
    // the server; the count is checked once, at the end.
    let server_cpu_acked = cpu().saturating_sub(cpu_before);
    let saved = tokio::time::timeout(Duration::from_secs(120), dashboard)
        .await
        .map_err(|_| "not every lead reached the dashboard stream within 120 s".to_string())?
        .map_err(|e| e.to_string())??
        - started;
    let server_cpu = cpu().saturating_sub(cpu_before);
    // A connection of its own: the first may have idled past the server's idle timeout.
    let mut counter = Conn::connect(addr).await.map_err(|e| e.to_string())?;
    let (count, _) = lead_count(&mut counter, addr).await?;
    if count != base + n as i64 {
        return Err(format!("{} leads saved for {n} webhooks", count - base));
    }
    Ok(Ingest {
        n,
        connections,
        acked,
        saved,
        server_cpu_acked,
        server_cpu,
    })
}
