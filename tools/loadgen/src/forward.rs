//! Forwarding under load: the webhook → SSE latency measured again while every lead is also
//! forwarded to a webhook receiver on loopback, beside the run without forwarding. Forwarding
//! runs beside ingest, so the p99 must not move. Also how long until every lead was delivered.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::client::{find, Conn};
use crate::measure::{latency, Ids, Spread};
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
    pub(crate) latency: Spread,
    /// From the first lead sent to the last delivery received.
    pub(crate) all_delivered: Duration,
    pub(crate) delivered: usize,
}

/// Adds a webhook destination to the receiver, times `n` leads as [`latency`] does, waits
/// until the receiver has every one, and removes the destination.
pub(crate) async fn forwarding(addr: SocketAddr, ids: &Ids, n: usize) -> Result<Forwarded, String> {
    let (receiver, count) = start_receiver().await?;
    let mut api = Conn::connect(addr).await.map_err(|e| e.to_string())?;
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
    let id = v["id"].as_i64().unwrap_or(0);
    let started = Instant::now();
    let lat = latency(addr, addr, ids, n).await?;
    // `latency` sends some warm-up leads too: every lead sent since the destination was added.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = 0;
    loop {
        let got = count.load(Ordering::Relaxed);
        if got >= n && got == last {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "only {got} of {n}+ leads reached the receiver in 120 s"
            ));
        }
        last = got;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let all_delivered = started.elapsed();
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
    Ok(Forwarded {
        latency: lat,
        all_delivered,
        delivered: count.load(Ordering::Relaxed),
    })
}
