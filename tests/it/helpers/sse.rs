//! A minimal SSE reader over a streaming reqwest response, as a browser's EventSource parses.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;

/// One parsed SSE event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap()
    }
}

/// A minimal SSE reader over a streaming reqwest response.
pub struct SseClient {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
    /// Comment lines seen (keep-alives).
    pub comments: usize,
    /// `retry:` hint seen.
    pub retry: Option<u64>,
}

impl SseClient {
    pub fn new(res: reqwest::Response) -> SseClient {
        SseClient {
            body: Box::pin(res.bytes_stream()),
            buf: String::new(),
            comments: 0,
            retry: None,
        }
    }

    /// The next event (comments skipped), or `None` when the stream ended or `timeout` passed.
    pub async fn next_event(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(ev) = self.take_event() {
                return Some(ev);
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Ok(Some(Ok(chunk))) => self.buf.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }

    /// Reads `n` lead events (panics with what it got if they do not come in `timeout`).
    pub async fn leads(&mut self, n: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left).await {
                Some(ev) if ev.event == "lead" => {
                    let v = ev.json();
                    assert_eq!(
                        ev.id.as_deref(),
                        Some(v["id"].to_string().as_str()),
                        "SSE id must be the row id"
                    );
                    out.push(v);
                }
                Some(_) => {}
                None => panic!("stream gave {} of {n} leads", out.len()),
            }
        }
        out
    }

    /// True when the server ended the stream within `timeout`.
    pub async fn ends_within(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(_))) => continue,
                Err(_) => return false,
            }
        }
    }

    fn take_event(&mut self) -> Option<SseEvent> {
        loop {
            let end = self.buf.find("\n\n")?;
            let block: String = self.buf.drain(..end + 2).collect();
            let mut ev = SseEvent {
                id: None,
                event: "message".into(),
                data: String::new(),
            };
            let mut has_data = false;
            for line in block.lines() {
                if line.starts_with(':') {
                    self.comments += 1;
                } else if let Some(v) = line.strip_prefix("id: ") {
                    ev.id = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("event: ") {
                    ev.event = v.to_string();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    if has_data {
                        ev.data.push('\n');
                    }
                    ev.data.push_str(v);
                    has_data = true;
                } else if let Some(v) = line.strip_prefix("retry: ") {
                    self.retry = v.parse().ok();
                }
            }
            if has_data {
                return Some(ev);
            }
        }
    }
}
