//! The fan-out: many idle streams, their cost in server memory, and the time from one
//! publication to its arrival at the last of them. For leadstream, a publication is a signed
//! webhook (so the time covers the whole path: signature, commits, Graph, push), and then a
//! change to a lead (`PATCH`, pushed as `event: update`); for the peer it is a `POST` to its
//! publisher.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, Notify, Semaphore};

use crate::client::{change_request, lead_count, post_webhook, webhook_request, Conn};
use crate::measure::{spread, Ids, Spread};
use crate::nchan::publish_request;
use crate::sse::{Peer, Sse, Via};

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
    fn new() -> Round {
        Round {
            remaining: AtomicUsize::new(0),
            last: AtomicU64::new(0),
            done: Notify::new(),
            extra: AtomicUsize::new(0),
            failures: Mutex::new(Vec::new()),
        }
    }

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

/// Publishes one lead: to leadstream as a signed webhook, to Nchan as a `POST`.
pub(crate) struct Publisher<'a> {
    conn: Conn,
    addr: SocketAddr,
    peer: Peer,
    ids: &'a Ids,
    /// What the next publication is.
    kind: Publish,
}

/// A new lead, or a change to one lead (its id and current version).
#[derive(Clone, Copy)]
enum Publish {
    NewLead,
    Change { id: i64, version: i64 },
}

impl<'a> Publisher<'a> {
    pub(crate) async fn connect(
        addr: SocketAddr,
        peer: Peer,
        ids: &'a Ids,
    ) -> Result<Self, String> {
        let conn = Conn::connect(addr).await.map_err(|e| e.to_string())?;
        Ok(Publisher {
            conn,
            addr,
            peer,
            ids,
            kind: Publish::NewLead,
        })
    }

    /// From now on, each publication changes the newest lead (leadstream only).
    async fn change_newest(&mut self) -> Result<(), String> {
        let (_, id) = lead_count(&mut self.conn, self.addr).await?;
        let (status, body) = self
            .conn
            .roundtrip(&crate::client::get_request(
                self.addr,
                &format!("/api/leads/{id}"),
            ))
            .await
            .map_err(|e| format!("reading lead {id}: {e}"))?;
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        let version = v["version"].as_i64().filter(|_| status == 200);
        let version = version.ok_or_else(|| format!("lead {id} answered {status}"))?;
        self.kind = Publish::Change { id, version };
        Ok(())
    }

    /// Publishes a new lead, or a change; returns when it started.
    async fn publish(&mut self) -> Result<SystemTime, String> {
        if let Publish::Change { id, version } = self.kind {
            // Back and forth, so every change is one.
            let status = if version % 2 == 1 {
                "contacted"
            } else {
                "qualified"
            };
            let req = change_request(self.addr, id, version, status);
            let started = SystemTime::now();
            match self.conn.roundtrip(&req).await {
                Ok((200, _)) => {}
                other => return Err(format!("change of lead {id}: {:?}", other.map(|r| r.0))),
            }
            self.kind = Publish::Change {
                id,
                version: version + 1,
            };
            return Ok(started);
        }
        let leadgen_id = self.ids.next();
        let req = match self.peer {
            Peer::Leadstream => webhook_request(self.addr, &leadgen_id),
            // About the size of a lead's frame, so both write the same bytes.
            Peer::Nchan => publish_request(self.addr, &nchan_message(&leadgen_id)),
        };
        let started = SystemTime::now();
        match self.peer {
            Peer::Leadstream => post_webhook(&mut self.conn, &req).await?,
            Peer::Nchan => match self.conn.roundtrip(&req).await {
                Ok((200..=202, _)) => {}
                other => return Err(format!("Nchan publish: {:?}", other.map(|r| r.0))),
            },
        }
        Ok(started)
    }
}

/// A lead as JSON, as leadstream would send it, for the peer to publish.
fn nchan_message(leadgen_id: &str) -> String {
    serde_json::json!({
        "id": 1, "leadgen_id": leadgen_id, "page_id": crate::PAGE_ID, "form_id": crate::FORM_ID,
        "form_name": "Spring open day", "ad_id": crate::AD_ID, "adgroup_id": crate::ADSET_ID,
        "campaign_id": crate::CAMPAIGN_ID, "created_time": "2026-11-28T14:02:11Z",
        "received_at": "2026-11-28T14:02:12.345Z",
        "fields": {"full_name": "Ada Lovelace", "email": "ada@example.com", "phone_number": "+44 20 7946 0018"},
        "field_data": [{"name": "full_name", "values": ["Ada Lovelace"]},
            {"name": "email", "values": ["ada@example.com"]},
            {"name": "phone_number", "values": ["+44 20 7946 0018"]}],
        "source": "webhook"
    })
    .to_string()
}

/// The open streams of a fan-out, each read by its own task.
pub(crate) struct Subscribers {
    addr: SocketAddr,
    peer: Peer,
    via: Via,
    round: Arc<Round>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The low-priority runtime the subscriber tasks run on.
    readers: tokio::runtime::Handle,
}

impl Subscribers {
    pub(crate) fn new(
        addr: SocketAddr,
        peer: Peer,
        via: Via,
        readers: tokio::runtime::Handle,
    ) -> Subscribers {
        Subscribers {
            addr,
            peer,
            via,
            round: Arc::new(Round::new()),
            tasks: Vec::new(),
            readers,
        }
    }

    /// Opens streams until `n` are open, 64 connecting at a time (a burst of 10,000 at once
    /// would only measure the listen backlog).
    pub(crate) async fn grow_to(&mut self, n: usize) -> Result<(), String> {
        let parallel = Arc::new(Semaphore::new(64));
        let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Result<(), String>>();
        let new = n.saturating_sub(self.tasks.len());
        for _ in 0..new {
            let round = self.round.clone();
            let parallel = parallel.clone();
            let ready = ready_tx.clone();
            let (addr, peer, via) = (self.addr, self.peer, self.via);
            self.tasks.push(self.readers.spawn(async move {
                let permit = parallel.acquire_owned().await.expect("open");
                let mut sse = match Sse::open(addr, peer, via).await {
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

    /// Publishes one lead and waits until every subscriber has it; the time from publishing
    /// to the last arrival.
    pub(crate) async fn one_event(
        &self,
        publisher: &mut Publisher<'_>,
    ) -> Result<Duration, String> {
        let n = self.tasks.len();
        self.round.last.store(0, Ordering::Release);
        self.round.remaining.store(n, Ordering::Release);
        let started = publisher.publish().await?;
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

/// Time from publication to the last subscriber, for `n` of them.
pub(crate) struct FanOut {
    pub(crate) n: usize,
    pub(crate) spread: Spread,
    /// Server CPU time per event (all threads and processes, user and kernel).
    pub(crate) cpu: Duration,
    /// The same for a change to a lead (`event: update`), leadstream only.
    pub(crate) update: Option<(Spread, Duration)>,
}

/// Resident memory with `n` idle streams open, and before.
pub(crate) struct Memory {
    pub(crate) n: usize,
    pub(crate) before: u64,
    pub(crate) after: u64,
}

impl Memory {
    pub(crate) fn per_stream(&self) -> f64 {
        self.after.saturating_sub(self.before) as f64 / self.n as f64
    }
}

/// A server the fan-out measures: where it listens, what it is, its memory and CPU.
pub(crate) trait Measured {
    fn addr(&self) -> SocketAddr;
    fn peer(&self) -> Peer;
    fn rss(&self) -> Result<u64, String>;
    fn cpu(&self) -> Duration;
}

impl Measured for crate::server::Server {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn peer(&self) -> Peer {
        Peer::Leadstream
    }
    fn rss(&self) -> Result<u64, String> {
        crate::server::Server::rss(self)
    }
    fn cpu(&self) -> Duration {
        crate::server::Server::cpu(self)
    }
}

impl Measured for crate::nchan::Nchan {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn peer(&self) -> Peer {
        Peer::Nchan
    }
    fn rss(&self) -> Result<u64, String> {
        crate::nchan::Nchan::rss(self)
    }
    fn cpu(&self) -> Duration {
        crate::nchan::Nchan::cpu(self)
    }
}

/// Resident memory once it has stopped moving (allocations of the opening burst settle).
pub(crate) async fn settled_rss(server: &dyn Measured) -> Result<u64, String> {
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

/// Streams opened and closed before the baseline is read: as many as open at once.
const WARM_UP: usize = 64;

/// One server's part in [`fan_out`].
struct Side<'a> {
    server: &'a dyn Measured,
    publisher: Publisher<'a>,
    subs: Subscribers,
    before: u64,
    fan: Vec<FanOut>,
    mem: Vec<Memory>,
}

impl Side<'_> {
    /// Opens streams up to `n` and reads the memory they take.
    async fn grow_to(&mut self, n: usize) -> Result<(), String> {
        self.subs.grow_to(n).await?;
        let after = settled_rss(self.server).await?;
        self.mem.push(Memory {
            n,
            before: self.before,
            after,
        });
        Ok(())
    }

    /// One untimed lead, so every new stream has been polled once with a lead in flight.
    async fn warm(&mut self) -> Result<(), String> {
        self.subs.one_event(&mut self.publisher).await.map(drop)
    }

    /// One timed publication: its time to the last stream, and the server's CPU for it.
    async fn timed(&mut self) -> Result<(Duration, Duration), String> {
        tokio::time::sleep(SETTLE).await;
        let cpu_before = self.server.cpu();
        let took = self.subs.one_event(&mut self.publisher).await?;
        Ok((took, self.server.cpu().saturating_sub(cpu_before)))
    }

    /// `events` timed publications in a row: their times, and the server's CPU for them all.
    async fn timed_in_a_row(&mut self, events: usize) -> Result<(Vec<Duration>, Duration), String> {
        let mut times = Vec::with_capacity(events);
        let mut cpu = Duration::ZERO;
        for _ in 0..events {
            let (took, used) = self.timed().await?;
            times.push(took);
            cpu += used;
        }
        Ok((times, cpu))
    }

    /// Records the leads' times at `n` streams, after timing as many changes to the newest
    /// lead, pushed as `event: update` (leadstream only; no peer has a counterpart).
    async fn finish(
        &mut self,
        n: usize,
        times: Vec<Duration>,
        cpu: Duration,
    ) -> Result<(), String> {
        let events = times.len();
        let update = if self.server.peer() == Peer::Leadstream {
            self.publisher.change_newest().await?;
            let (times, cpu) = self.timed_in_a_row(events).await?;
            self.publisher.kind = Publish::NewLead;
            Some((spread(times), cpu / events as u32))
        } else {
            None
        };
        self.fan.push(FanOut {
            n,
            spread: spread(times),
            cpu: cpu / events as u32,
            update,
        });
        Ok(())
    }
}

/// The pause before each timed publication. Without it, a publication is timed while the
/// server that took the previous one is still busy with its after-work (its readers, log lines,
/// bookkeeping): with the servers alternating, each would be timed against the other's
/// leftovers. Leads come seconds apart in life, so a pause is also the more faithful load.
const SETTLE: Duration = Duration::from_millis(50);

/// Descriptors this process keeps for other things than the streams.
const FD_MARGIN: usize = 264;

/// For each server, streams opened `via` in steps of `sizes`; memory read with them idle,
/// then `events` publications timed at each size (none when 0).
///
/// With two servers (leadstream and its peer), both sets of streams stay open and the events
/// alternate between them, one for each in every round, the first turn switching sides from
/// round to round. Why: on a shared machine the time a fan-out takes drifts by half from
/// minute to minute (a neighbour's load, the host's own work), and with one server measured
/// after the other the comparison was decided as often by that drift as by the servers.
/// Side by side, both see the same minute. A size whose two sets would not fit under this
/// process's open-files limit is measured one server after the other, each set closed after.
pub(crate) async fn fan_out<'a>(
    servers: &[&'a dyn Measured],
    via: Via,
    ids: &'a Ids,
    sizes: &[usize],
    events: usize,
    readers: tokio::runtime::Handle,
) -> Result<Vec<(Vec<FanOut>, Vec<Memory>)>, String> {
    let fd_limit = crate::bench::raise_nofile(0) as usize;
    let mut sides = Vec::with_capacity(servers.len());
    for &server in servers {
        let publisher = Publisher::connect(server.addr(), server.peer(), ids).await?;
        // A round of streams opened and closed first: what the server allocates once (caches,
        // per-thread pools, the first answers of a route) is then in the baseline, not spread
        // over the streams counted.
        let mut warm_up = Subscribers::new(server.addr(), server.peer(), via, readers.clone());
        warm_up.grow_to(WARM_UP).await?;
        warm_up.close().await;
        let subs = Subscribers::new(server.addr(), server.peer(), via, readers.clone());
        let before = settled_rss(server).await?;
        sides.push(Side {
            server,
            publisher,
            subs,
            before,
            fan: Vec::new(),
            mem: Vec::new(),
        });
    }
    for &n in sizes {
        if sides.len() * n + FD_MARGIN <= fd_limit {
            for side in sides.iter_mut() {
                side.grow_to(n).await?;
            }
            if events == 0 {
                continue;
            }
            for side in sides.iter_mut() {
                side.warm().await?;
            }
            let mut times = vec![Vec::with_capacity(events); sides.len()];
            let mut cpu = vec![Duration::ZERO; sides.len()];
            for round in 0..events {
                for turn in 0..sides.len() {
                    let i = (turn + round) % sides.len();
                    let (took, used) = sides[i].timed().await?;
                    times[i].push(took);
                    cpu[i] += used;
                }
            }
            for ((side, times), cpu) in sides.iter_mut().zip(times).zip(cpu) {
                side.finish(n, times, cpu).await?;
            }
        } else {
            // One after the other; each set closed after its turn (so a later size starts
            // from no streams on that server).
            for side in sides.iter_mut() {
                side.grow_to(n).await?;
                if events > 0 {
                    side.warm().await?;
                    let (times, cpu) = side.timed_in_a_row(events).await?;
                    side.finish(n, times, cpu).await?;
                }
                let server = side.server;
                let fresh = Subscribers::new(server.addr(), server.peer(), via, readers.clone());
                std::mem::replace(&mut side.subs, fresh).close().await;
            }
        }
    }
    let mut out = Vec::with_capacity(sides.len());
    for side in sides {
        side.subs.close().await;
        out.push((side.fan, side.mem));
    }
    Ok(out)
}
