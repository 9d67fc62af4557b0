//! A webhook receiver for the forwarding tests: a small HTTP/1.1 server on a random port that
//! checks every request's signature with the Standard Webhooks project's own library (not
//! leadstream's signing code), records what it got, and answers as the test tells it: 200, a
//! status with a body, slowly, or not at all (down: nothing listens on its port).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How the receiver answers.
#[derive(Clone, Debug)]
pub enum Answer {
    Ok,
    /// This status, with this body.
    Status(u16, String),
    /// 200, after this long.
    Slow(Duration),
}

/// One request received.
#[derive(Clone, Debug)]
pub struct Received {
    pub webhook_id: String,
    pub body: Value,
    /// Whether `standardwebhooks` accepted its signature with the secret set then.
    pub verified: bool,
    /// Whether it was answered 2xx.
    pub accepted: bool,
}

struct State {
    secret: Option<String>,
    answer: Answer,
    received: Vec<Received>,
}

pub struct Receiver {
    pub addr: std::net::SocketAddr,
    state: Arc<Mutex<State>>,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let r = Receiver {
            addr: listener.local_addr().unwrap(),
            state: Arc::new(Mutex::new(State {
                secret: None,
                answer: Answer::Ok,
                received: Vec::new(),
            })),
            server: Mutex::new(None),
        };
        r.serve(listener);
        r
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn serve(&self, listener: TcpListener) {
        let state = self.state.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(handle(conn, state.clone()));
            }
        });
        *self.server.lock().unwrap() = Some(task);
    }

    /// The destination's signing secret, to verify with.
    pub fn set_secret(&self, secret: &str) {
        self.state.lock().unwrap().secret = Some(secret.to_string());
    }

    pub fn answer(&self, a: Answer) {
        self.state.lock().unwrap().answer = a;
    }

    /// Stops listening: connections to its port are refused until [`Self::up`].
    pub fn down(&self) {
        if let Some(t) = self.server.lock().unwrap().take() {
            t.abort();
        }
    }

    pub async fn up(&self) {
        // The aborted task drops its listener soon after; bind again once the port is free.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => return self.serve(l),
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Err(e) => panic!("could not listen on {} again: {e}", self.addr),
            }
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// The requests answered 2xx.
    pub fn accepted(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.accepted).collect()
    }

    /// Waits until `n` requests were answered 2xx; returns them.
    pub async fn wait_for_accepted(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.accepted();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver got {} of {n} deliveries in {timeout:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `n` requests arrived, however they were answered.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.received().len() < n {
            assert!(
                Instant::now() < deadline,
                "fewer than {n} requests in {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.down();
    }
}

/// One connection: one request, one answer, then close.
async fn handle(mut conn: TcpStream, state: Arc<Mutex<State>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let Ok(n) = conn.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut headers = warp::http::HeaderMap::new();
    for line in head.lines().skip(1) {
        if let Some((k, v)) = line.split_once(':') {
            if let (Ok(k), Ok(v)) = (
                warp::http::HeaderName::from_bytes(k.trim().as_bytes()),
                warp::http::HeaderValue::from_str(v.trim()),
            ) {
                headers.append(k, v);
            }
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let Ok(n) = conn.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = &buf[head_end..head_end + len];
    let (secret, answer) = {
        let s = state.lock().unwrap();
        (s.secret.clone(), s.answer.clone())
    };
    let verified = secret.is_some_and(|s| {
        standardwebhooks::Webhook::new(&s)
            .and_then(|w| w.verify(body, &headers))
            .is_ok()
    });
    let (status, text) = match &answer {
        Answer::Ok => (200, String::new()),
        Answer::Status(s, t) => (*s, t.clone()),
        Answer::Slow(d) => {
            tokio::time::sleep(*d).await;
            (200, String::new())
        }
    };
    let reply = format!(
        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    );
    let written = conn.write_all(reply.as_bytes()).await.is_ok() && conn.flush().await.is_ok();
    state.lock().unwrap().received.push(Received {
        webhook_id: headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
        verified,
        accepted: written && (200..300).contains(&status),
    });
}
