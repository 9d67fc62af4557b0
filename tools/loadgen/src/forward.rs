//! Forwarding under load: the webhook → SSE latency of leads that are also forwarded to a
//! webhook receiver on loopback, beside leads timed without forwarding in the same minutes.
//! Forwarding runs beside ingest, so the p99 must not move. Also how long until every lead was
//! delivered.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::client::{find, Conn};
use crate::measure::{latency_times, spread, Ids, Spread, LATENCY_WARM_UP};
use crate::DASHBOARD_TOKEN;

/// A receiver that answers every request 200 on keep-alive connections and counts them.
async fn start_receiver() -> Result<(SocketAddr, Arc<AtomicUsize>), String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("receiver: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 16 * 1024];
                loop {
                    // One request: its head, then content-length bytes.
                    let Some(end) = find(&buf, b"\r\n\r\n") else {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < end + 4 + len {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..end + 4 + len);
                    counted.fetch_add(1, Ordering::Relaxed);
                    if conn
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Ok((addr, count))
}

/// What forwarding under load measured.
pub(crate) struct Forwarded {
    /// Leads forwarded as they were timed.
    pub(crate) latency: Spread,
    /// Leads timed with no destination, in the blocks between.
    pub(crate) without: Spread,
    /// Leads timed each way.
    pub(crate) each: usize,
    /// The slowest forwarded block: from its first lead sent to its last delivery received.
    pub(crate) block_delivered: Duration,
    pub(crate) delivered: usize,
}

/// Blocks the leads are timed in, alternately without and with a destination.
const BLOCKS: usize = 10;

/// Times `n` leads as [`crate::measure::latency`] does, in [`BLOCKS`] blocks: every other block with a webhook
/// destination to the receiver, added before the block and removed once the receiver has every
/// lead of it. Why blocks: the machine's pace drifts from minute to minute, and forwarding must
/// be compared with no forwarding in the same minutes, not with a run a minute before.
pub(crate) async fn forwarding(addr: SocketAddr, ids: &Ids, n: usize) -> Result<Forwarded, String> {
    let (receiver, count) = start_receiver().await?;
    let mut api = Conn::connect(addr).await.map_err(|e| e.to_string())?;
    let per_block = n.div_ceil(BLOCKS).max(1);
    let mut with = Vec::new();
    let mut without = Vec::new();
    let mut block_delivered = Duration::ZERO;
    let mut expected = 0;
    for block in 0..BLOCKS {
        if block % 2 == 0 {
            without.extend(latency_times(addr, addr, ids, per_block).await?);
            continue;
        }
        let id = add_destination(&mut api, addr, receiver).await?;
        let started = Instant::now();
        with.extend(latency_times(addr, addr, ids, per_block).await?);
        // Every lead sent while the destination was there, warm-up leads too.
        expected += LATENCY_WARM_UP + per_block;
        wait_for(&count, expected).await?;
        block_delivered = block_delivered.max(started.elapsed());
        remove_destination(&mut api, addr, id).await?;
    }
    let each = with.len();
    Ok(Forwarded {
        each,
        latency: spread(with),
        without: spread(without),
        block_delivered,
        delivered: count.load(Ordering::Relaxed),
    })
}

/// Adds a webhook destination to the receiver; its id.
async fn add_destination(
    api: &mut Conn,
    addr: SocketAddr,
    receiver: SocketAddr,
) -> Result<i64, String> {
    let body = format!(r#"{{"kind":"webhook","url":"http://{receiver}/hook"}}"#);
    let req = format!(
        "POST /api/destinations HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {DASHBOARD_TOKEN}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let (status, answer) = api
        .roundtrip(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    if status != 201 {
        return Err(format!(
            "adding the destination answered {status}: {}",
            String::from_utf8_lossy(&answer)
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&answer).map_err(|e| e.to_string())?;
    v["id"]
        .as_i64()
        .ok_or_else(|| "the new destination has no id".to_string())
}

/// Waits until the receiver has `expected` requests, and no more come.
async fn wait_for(count: &AtomicUsize, expected: usize) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = 0;
    loop {
        let got = count.load(Ordering::Relaxed);
        if got >= expected && got == last {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "only {got} of {expected} leads reached the receiver in 120 s"
            ));
        }
        last = got;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn remove_destination(api: &mut Conn, addr: SocketAddr, id: i64) -> Result<(), String> {
    let req = format!(
        "DELETE /api/destinations/{id} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {DASHBOARD_TOKEN}\r\n\r\n"
    );
    // A 204 has no body and no length: write it and read only the head.
    api.stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let head = api.read_head().await.map_err(|e| e.to_string())?;
    if head.status != 204 {
        return Err(format!("removing the destination answered {}", head.status));
    }
    Ok(())
}
