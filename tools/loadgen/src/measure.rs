//! The measurements: latency, fan-out, memory per stream, ingest.

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, Notify, Semaphore};

use crate::client::{lead_count, lead_id, post_webhook, webhook_request, Conn};
use crate::server::Server;
use crate::sse::Sse;

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

/// 1: one subscriber (on `stream_from`); each lead sent (to `post_to`) after the previous one
/// arrived.
pub(crate) async fn latency(
    post_to: SocketAddr,
    stream_from: SocketAddr,
    ids: &Ids,
    n: usize,
) -> Result<Spread, String> {
    let addr = post_to;
    let mut sse = Sse::open(stream_from).await?;
    let mut poster = Conn::connect(addr).await.map_err(|e| e.to_string())?;
    // Warm-up, not timed: the first leads open the worker's pooled Graph connection and the
    // reader connections, which a running server has already done.
    let warmup = 20;
    let mut times = Vec::with_capacity(n);
    for i in 0..warmup + n {
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
        if i >= warmup {
            times.push(seen.at.duration_since(started).unwrap_or_default());
        }
    }
    Ok(spread(times))
}

/// What the subscribers of a fan-out round report.
pub(crate) struct Round {
    /// Subscribers that have not yet seen this round's lead.
    pub(crate) remaining: AtomicUsize,
    /// The latest arrival among them, nanoseconds since the epoch.
    pub(crate) last: AtomicU64,
    pub(crate) done: Notify,
    /// Events beyond one per subscriber and round (must stay 0).
    pub(crate) extra: AtomicUsize,
    /// Why subscribers stopped reading (must stay empty).
    pub(crate) failures: Mutex<Vec<String>>,
}

impl Round {
    pub(crate) fn arrived(&self, at: SystemTime) {
        let nanos = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64;
        // Before counting down, so the last count-down sees every arrival time.
        self.last.fetch_max(nanos, Ordering::AcqRel);
        match self
            .remaining
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| r.checked_sub(1))
        {
            Ok(1) => self.done.notify_one(),
            Ok(_) => {}
            Err(_) => {
                self.extra.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The open streams of the fan-out, each read by its own task.
pub(crate) struct Subscribers {
    pub(crate) round: Arc<Round>,
    pub(crate) tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The low-priority runtime the subscriber tasks run on.
    pub(crate) readers: tokio::runtime::Handle,
}

impl Subscribers {
    /// Opens streams until `n` are open, 64 connecting at a time (a burst of 10,000 at once
    /// would only measure the listen backlog).
    pub(crate) async fn grow_to(&mut self, addr: SocketAddr, n: usize) -> Result<(), String> {
        let parallel = Arc::new(Semaphore::new(64));
        let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Result<(), String>>();
        let new = n.saturating_sub(self.tasks.len());
        for _ in 0..new {
            let round = self.round.clone();
            let parallel = parallel.clone();
            let ready = ready_tx.clone();
            self.tasks.push(self.readers.spawn(async move {
                let permit = parallel.acquire_owned().await.expect("open");
                let mut sse = match Sse::open(addr).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                drop(permit);
                let _ = ready.send(Ok(()));
                loop {
                    match sse.next_lead().await {
                        Ok(seen) => round.arrived(seen.at),
                        Err(e) => {
                            round.failures.lock().expect("lock").push(e);
                            return;
                        }
                    }
                }
            }));
        }
        drop(ready_tx);
        for _ in 0..new {
            match ready_rx.recv().await {
                Some(Ok(())) => {}
                Some(Err(e)) => return Err(e),
                None => return Err("a subscriber task vanished".into()),
            }
        }
        Ok(())
    }

    /// Sends one lead and waits until every subscriber has it; the time from sending to the
    /// last arrival.
    pub(crate) async fn one_event(
        &self,
        poster: &mut Conn,
        addr: SocketAddr,
        ids: &Ids,
    ) -> Result<Duration, String> {
        let n = self.tasks.len();
        self.round.last.store(0, Ordering::Release);
        self.round.remaining.store(n, Ordering::Release);
        let req = webhook_request(addr, &ids.next());
        let started = SystemTime::now();
        post_webhook(poster, &req).await?;
        let all = tokio::time::timeout(Duration::from_secs(20), self.round.done.notified()).await;
        if let Some(e) = self.round.failures.lock().expect("lock").first() {
            return Err(format!("a subscriber failed: {e}"));
        }
        if all.is_err() {
            return Err(format!(
                "{} of {n} subscribers still waited for the lead after 20 s",
                self.round.remaining.load(Ordering::Acquire)
            ));
        }
        let extra = self.round.extra.load(Ordering::Relaxed);
        if extra > 0 {
            return Err(format!(
                "subscribers saw {extra} events more than were sent"
            ));
        }
        let last = UNIX_EPOCH + Duration::from_nanos(self.round.last.load(Ordering::Acquire));
        Ok(last.duration_since(started).unwrap_or_default())
    }

    /// Ends every subscriber and returns once their sockets are closed.
    pub(crate) async fn close(self) {
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

pub(crate) struct FanOut {
    pub(crate) n: usize,
    pub(crate) spread: Spread,
    /// Server CPU time per event (all threads, user and kernel).
    pub(crate) cpu: Duration,
}

pub(crate) struct Memory {
    pub(crate) n: usize,
    pub(crate) before: u64,
    pub(crate) after: u64,
}

impl Memory {
    pub(crate) fn per_connection(&self) -> f64 {
        self.after.saturating_sub(self.before) as f64 / self.n as f64
    }
}

/// Resident memory once it has stopped moving (allocations of the opening burst settle).
pub(crate) async fn settled_rss(server: &Server) -> Result<u64, String> {
    let mut last = server.rss()?;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = server.rss()?;
        if now.abs_diff(last) < 64 * 1024 {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

/// 2 and 3: streams opened in steps; memory read with them idle, then `events` leads timed.
pub(crate) async fn fan_out(
    server: &Server,
    ids: &Ids,
    sizes: &[usize],
    events: usize,
    readers: tokio::runtime::Handle,
) -> Result<(Vec<FanOut>, Vec<Memory>), String> {
    let addr = server.addr;
    let mut poster = Conn::connect(addr).await.map_err(|e| e.to_string())?;
    let mut subs = Subscribers {
        round: Arc::new(Round {
            remaining: AtomicUsize::new(0),
            last: AtomicU64::new(0),
            done: Notify::new(),
            extra: AtomicUsize::new(0),
            failures: Mutex::new(Vec::new()),
        }),
        tasks: Vec::new(),
        readers,
    };
    let before = settled_rss(server).await?;
    let mut fan = Vec::new();
    let mut mem = Vec::new();
    for &n in sizes {
        subs.grow_to(addr, n).await?;
        let after = settled_rss(server).await?;
        mem.push(Memory { n, before, after });
        // One untimed lead, so every new stream has been polled once with a lead in flight.
        subs.one_event(&mut poster, addr, ids).await?;
        let mut times = Vec::with_capacity(events);
        let cpu_before = server.cpu();
        for _ in 0..events {
            times.push(subs.one_event(&mut poster, addr, ids).await?);
        }
        fan.push(FanOut {
            n,
            spread: spread(times),
            cpu: server.cpu().saturating_sub(cpu_before) / events as u32,
        });
    }
    subs.close().await;
    Ok((fan, mem))
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
pub(crate) async fn ingest(
    servers: &[Server],
    ids: &Ids,
    n: usize,
    connections: usize,
) -> Result<Ingest, String> {
    let addr = servers[0].addr;
    // Connection `i` goes to server `i % servers`.
    let to = |i: usize| servers[i % servers.len()].addr;
    let cpu = || servers.iter().map(Server::cpu).sum::<Duration>();
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
    let mut sse = Sse::open(addr).await?;
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
