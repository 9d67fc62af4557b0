//! Sending one event to a webhook: a `POST` of the stored body, signed the Standard Webhooks
//! way (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`).
//!
//! What keeps a destination URL from being turned against the machine (it is chosen by an
//! admin, so this is about mistakes and hostile answers, not hostile admins): https only
//! except to loopback, redirects never followed, an answer read at most [`MAX_ANSWER`] bytes,
//! and one deadline for the whole try.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Attempt;
use crate::logging::escaped;

/// At most this much of an answer is read; the rest is never downloaded.
pub const MAX_ANSWER: usize = 64 * 1024;
/// At most this many characters of an answer are kept with a failed delivery.
const SNIPPET: usize = 200;

/// `v1,<base64 of HMAC-SHA256 over "{id}.{timestamp}.{body}">`, keyed with the secret's
/// decoded bytes (the part after `whsec_`). `None` for a secret that is not base64 (we made
/// it, so that is a broken database, not a user's mistake).
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    Some(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The HTTP client every webhook try goes through.
#[derive(Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    timeout: Duration,
}

impl WebhookClient {
    pub fn new(timeout: Duration) -> WebhookClient {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .user_agent(concat!("leadstream/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client with rustls");
        WebhookClient { http, timeout }
    }

    /// One try: `POST url` with `body`, signed with `secret` at this moment.
    pub async fn send(&self, url: &str, secret: &str, webhook_id: &str, body: &str) -> Attempt {
        let timestamp = chrono::Utc::now().timestamp();
        let Some(sig) = signature(secret, webhook_id, timestamp, body) else {
            return Attempt::failed(None, "the destination's signing secret is unreadable");
        };
        let request = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", webhook_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", sig)
            .body(body.to_string())
            .send();
        match tokio::time::timeout(self.timeout, async {
            let mut res = request.await?;
            let status = res.status();
            let mut answer = Vec::new();
            while answer.len() < MAX_ANSWER {
                match res.chunk().await? {
                    Some(c) => {
                        answer.extend_from_slice(&c[..c.len().min(MAX_ANSWER - answer.len())])
                    }
                    None => break,
                }
            }
            Ok::<_, reqwest::Error>((status, answer))
        })
        .await
        {
            Err(_) => Attempt::failed(
                None,
                format!("no answer within {} s", self.timeout.as_secs_f64()),
            ),
            Ok(Err(e)) => Attempt::failed(None, connection_trouble(&e)),
            Ok(Ok((status, _))) if status.is_success() => Attempt::delivered(status.as_u16()),
            Ok(Ok((status, answer))) => {
                let text = String::from_utf8_lossy(&answer);
                let snippet: String = text.chars().take(SNIPPET).collect();
                let mut error = format!("HTTP {}", status.as_u16());
                if status.is_redirection() {
                    error.push_str(" (redirects are not followed: give the final URL)");
                }
                if !snippet.trim().is_empty() {
                    error.push_str(&format!(": {}", escaped(snippet.trim())));
                }
                Attempt::failed(Some(status.as_u16() as i64), error)
            }
        }
    }
}

/// A failed connection in words, without the URL (its path may hold the receiver's secret).
fn connection_trouble(e: &reqwest::Error) -> String {
    let what = if e.is_connect() {
        "could not connect"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_body() || e.is_decode() {
        "the answer broke off"
    } else {
        "the request failed"
    };
    // reqwest's chain ends with the cause (refused, reset, TLS); the URL is only in the top.
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        what.to_string()
    } else {
        format!("{what}: {}", escaped(cause))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let sig = signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(
            sig.as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }
}
