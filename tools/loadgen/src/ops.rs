//! For the people who run it: what one Prometheus scrape of `/metrics` costs, and how long
//! erasing a lead takes (`DELETE /api/leads/{id}`: the transaction, its fsync and, with
//! SQLite, the checkpoint that empties the write-ahead log). Run after the ingest, so the
//! database holds its leads.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::bench::{spread_text, thousands, Table};
use crate::client::{get_request, Conn};
use crate::measure::spread;
use crate::DASHBOARD_TOKEN;

/// Scrapes `/metrics` `scrapes` times, then erases up to `erasures` leads one at a time, and
/// adds their rows to `t`.
pub(crate) async fn ops_rows(
    addr: SocketAddr,
    scrapes: usize,
    erasures: usize,
    t: &mut Table,
) -> Result<(), String> {
    let mut conn = Conn::connect(addr)
        .await
        .map_err(|e| format!("cannot reach the server: {e}"))?;
    if scrapes > 0 {
        eprintln!("loadgen: {scrapes} scrapes of /metrics…");
        let mut took = Vec::with_capacity(scrapes);
        let mut size = 0;
        for _ in 0..scrapes {
            let t0 = Instant::now();
            let (status, body) = conn
                .roundtrip(&get_request(addr, "/metrics"))
                .await
                .map_err(|e| format!("/metrics: {e}"))?;
            took.push(t0.elapsed());
            if status != 200 {
                return Err(format!("/metrics answered {status}"));
            }
            size = body.len();
        }
        let s = spread(took);
        t.row(
            format!(
                "GET /metrics, {} scrapes one after another ({} KiB each)",
                thousands(scrapes),
                size.div_ceil(1024)
            ),
            spread_text(s),
            None,
            "p99 ≤ 50 ms",
            Some(s.p99 <= Duration::from_millis(50)),
        );
    }
    if erasures > 0 {
        let (status, body) = conn
            .roundtrip(&get_request(
                addr,
                &format!("/api/leads?limit={}", erasures.min(1000)),
            ))
            .await
            .map_err(|e| format!("/api/leads: {e}"))?;
        if status != 200 {
            return Err(format!("/api/leads answered {status}"));
        }
        let list: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        let ids: Vec<i64> = list["leads"]
            .as_array()
            .map(|a| a.iter().filter_map(|l| l["id"].as_i64()).collect())
            .unwrap_or_default();
        if ids.is_empty() {
            return Ok(());
        }
        eprintln!("loadgen: erasing {} leads one at a time…", ids.len());
        let mut took = Vec::with_capacity(ids.len());
        for id in &ids {
            let req = format!(
                "DELETE /api/leads/{id} HTTP/1.1\r\nhost: {addr}\r\n\
                 authorization: Bearer {DASHBOARD_TOKEN}\r\ncontent-length: 0\r\n\r\n"
            );
            let t0 = Instant::now();
            let (status, _) = conn
                .roundtrip(req.as_bytes())
                .await
                .map_err(|e| format!("DELETE /api/leads/{id}: {e}"))?;
            took.push(t0.elapsed());
            if status != 200 {
                return Err(format!("DELETE /api/leads/{id} answered {status}"));
            }
        }
        let s = spread(took);
        t.row(
            format!(
                "DELETE /api/leads/{{id}}, {} leads erased one after another",
                thousands(ids.len())
            ),
            spread_text(s),
            None,
            "p99 ≤ 100 ms",
            Some(s.p99 <= Duration::from_millis(100)),
        );
    }
    Ok(())
}
