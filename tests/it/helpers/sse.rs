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
    /// The event whose lines are being read, and whether it has a `data:` line yet.
    building: Option<SseEvent>,
    has_data: bool,
}

impl SseClient {
    pub fn new(res: reqwest::Response) -> SseClient {
        SseClient {
            body: Box::pin(res.bytes_stream()),
            buf: String::new(),
            comments: 0,
            retry: None,
            building: None,
            has_data: false,
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

    /// Parses whole lines as EventSource does: a blank line dispatches the event being built,
    /// if it has data; comments and `retry:` take effect on their own line.
    fn take_event(&mut self) -> Option<SseEvent> {
        while let Some(end) = self.buf.find('\n') {
            let line: String = self.buf.drain(..end + 1).collect();
            let line = line.trim_end_matches('\n').trim_end_matches('\r');
            if line.is_empty() {
                let ev = self.building.take();
                match ev {
                    Some(ev) if self.has_data => {
                        self.has_data = false;
                        return Some(ev);
                    }
                    _ => {
                        self.has_data = false;
                        continue;
                    }
                }
            }
            if line.starts_with(':') {
                self.comments += 1;
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            if field == "retry" {
                self.retry = value.parse().ok();
                continue;
            }
            let ev = self.building.get_or_insert_with(|| SseEvent {
                id: None,
                event: "message".into(),
                data: String::new(),
            });
            match field {
                "id" => ev.id = Some(value.to_string()),
                "event" => ev.event = value.to_string(),
                "data" => {
                    if self.has_data {
                        ev.data.push('\n');
                    }
                    ev.data.push_str(value);
                    self.has_data = true;
                }
                _ => {}
            }
        }
        None
    }
}
