//! A local SMTP server for the e-mail tests: speaks just enough SMTP for a plain relay
//! (`smtp://127.0.0.1:port`), and records each message with its envelope recipients.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One message received: who it was for, and its bytes as sent after `DATA`.
#[derive(Clone, Debug)]
pub struct Mail {
    pub recipients: Vec<String>,
    pub data: Vec<u8>,
}

#[derive(Clone)]
pub struct SmtpServer {
    pub addr: std::net::SocketAddr,
    mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpServer {
    pub async fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let s = SmtpServer {
            addr: listener.local_addr().unwrap(),
            mails: Arc::default(),
        };
        let mails = s.mails.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(session(conn, mails.clone()));
            }
        });
        s
    }

    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }

    pub async fn wait_for_mails(&self, n: usize, timeout: Duration) -> Vec<Mail> {
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.mails();
            if m.len() >= n {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} mails in {timeout:?}",
                m.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn session(conn: tokio::net::TcpStream, mails: Arc<Mutex<Vec<Mail>>>) {
    let (r, mut w) = conn.into_split();
    let mut r = BufReader::new(r);
    let _ = w.write_all(b"220 test ESMTP\r\n").await;
    let mut recipients = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let cmd = line.trim_end().to_ascii_uppercase();
        let reply: &[u8] = if cmd.starts_with("EHLO") {
            b"250-test\r\n250 8BITMIME\r\n"
        } else if cmd.starts_with("HELO")
            || cmd.starts_with("MAIL FROM")
            || cmd == "RSET"
            || cmd == "NOOP"
        {
            b"250 ok\r\n"
        } else if cmd.starts_with("RCPT TO") {
            let addr = line.trim_end()[8..]
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>');
            recipients.push(addr.to_string());
            b"250 ok\r\n"
        } else if cmd == "DATA" {
            let _ = w.write_all(b"354 go on\r\n").await;
            let mut data = Vec::new();
            loop {
                let mut l = Vec::new();
                if r.read_until(b'\n', &mut l).await.unwrap_or(0) == 0 {
                    return;
                }
                if l == b".\r\n" {
                    break;
                }
                // Dot-stuffing undone.
                let l = if l.starts_with(b"..") {
                    &l[1..]
                } else {
                    &l[..]
                };
                data.extend_from_slice(l);
            }
            mails.lock().unwrap().push(Mail {
                recipients: std::mem::take(&mut recipients),
                data,
            });
            b"250 queued\r\n"
        } else if cmd == "QUIT" {
            let _ = w.write_all(b"221 bye\r\n").await;
            return;
        } else {
            b"502 not here\r\n"
        };
        if w.write_all(reply).await.is_err() {
            return;
        }
    }
}
