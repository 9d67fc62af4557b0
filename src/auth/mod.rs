//! Who may read leads: the dashboard token (as `Authorization: Bearer …`) or a session cookie
//! obtained by trading the token at `/login`. Every comparison with a secret is constant time.
//!
//! A request that may read leads is proven by an [`Auth`] value: only [`Gate::check`] makes
//! one, so a handler that takes an `Auth` cannot run for a request without credentials, and a
//! handler without one is visibly public.

mod credential;
mod limiter;
mod proxy;
mod sessions;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Secret;
use crate::logging::escaped;
use crate::store::{Store, StoreError};
pub use credential::{Credential, Principal};
pub use limiter::{client_key, Door, GuessLimiter, GUESS_LIMIT, GUESS_WINDOW};
pub use proxy::ProxyTrust;
pub use sessions::{Admitted, EndedSink, SessionEnd, Sessions, SESSION_COOKIE};

/// Constant-time equality of two secrets. Both are hashed first, so the comparison runs over
/// 32 bytes whatever was sent: not even the token's length shows in the timing (a plain
/// `ct_eq` of the strings returns at once when the lengths differ).
pub fn secret_eq(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes())
        .ct_eq(&Sha256::digest(b.as_bytes()))
        .into()
}

/// Proof that a request carried credentials that open the dashboard and the API (today the
/// dashboard token, or a session traded for it), and for whom. It cannot be made outside this
/// module: a handler receives it from the gate, or does not run.
#[derive(Debug)]
pub struct Auth {
    principal: Principal,
    /// The session it was made from; `None` for the bearer token.
    session: Option<SessionEnd>,
}

impl Auth {
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// Raised when the session these credentials came from ends; `None` for the bearer
    /// token, which lasts as long as the process.
    pub fn session_end(&self) -> Option<&SessionEnd> {
        self.session.as_ref()
    }
}

/// Why the gate said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No credentials, or wrong ones (401).
    Unauthorized,
    /// Too many wrong tokens from this address lately: not even looked at (429); try again
    /// after this long.
    Limited(Duration),
}

/// Decides who may read leads: the dashboard token as a bearer, or a live session. Cheap to
/// clone.
#[derive(Clone)]
pub struct Gate {
    inner: Arc<Inner>,
}

struct Inner {
    token: Secret,
    /// The token's credential, which sessions made by logging in with it remember.
    credential: Credential,
    sessions: Arc<Sessions>,
    guesses: GuessLimiter,
    proxy: ProxyTrust,
    /// Opens `/metrics` only, besides the token.
    metrics_token: Option<Secret>,
}

/// Proof that a request may read `/metrics`: a bearer dashboard token or metrics token. Only
/// [`Gate::check_scraper`] makes one; a session cookie never does (a scraper has none, and a
/// page's cookie should not read what a scraper reads).
#[derive(Debug)]
pub struct Scraper(());

impl Gate {
    /// The gate of `token`. Sessions made with any other token end here: a changed
    /// `DASHBOARD_TOKEN` logs everyone out.
    pub async fn open(
        token: Secret,
        metrics_token: Option<Secret>,
        sessions: Arc<Sessions>,
        store: &Store,
        guesses: GuessLimiter,
        proxy: ProxyTrust,
    ) -> Result<Gate, StoreError> {
        let credential = Credential::token(token.expose(), &store.credential_salt().await?);
        let ended = sessions.end_made_with_other(&credential).await?;
        if ended > 0 {
            log::info!(
                "DASHBOARD_TOKEN changed: {ended} sessions made with the previous token ended"
            );
        }
        Ok(Gate {
            inner: Arc::new(Inner {
                token,
                credential,
                sessions,
                guesses,
                proxy,
                metrics_token,
            }),
        })
    }

    /// An [`Auth`] when `creds` may read leads. A bearer header decides on its own, and a
    /// wrong one counts as a guess from the client's address; without one, a session cookie
    /// may (cookies are 256-bit random values: guessing them is hopeless, so they are not
    /// counted).
    ///
    /// Async: with several instances a session made on another one is read from the database.
    pub async fn check(&self, creds: &Credentials) -> Result<Auth, Refusal> {
        match creds.authorization.as_deref().and_then(bearer_token) {
            Some(t) => {
                self.try_token(t, creds.client, Door::Bearer)?;
                Ok(self.token_auth())
            }
            None => self.session_auth(creds).await.ok_or(Refusal::Unauthorized),
        }
    }

    /// A [`Scraper`] when `creds` carry the dashboard token or the metrics token as a bearer
    /// header; a wrong one counts as a guess from the client's address, as on any route.
    pub fn check_scraper(&self, creds: &Credentials) -> Result<Scraper, Refusal> {
        let Some(t) = creds.authorization.as_deref().and_then(bearer_token) else {
            return Err(Refusal::Unauthorized);
        };
        if let Some(metrics) = &self.inner.metrics_token {
            if !self.inner.guesses.is_limited(creds.client) && secret_eq(t, metrics.expose()) {
                return Ok(Scraper(()));
            }
        }
        self.try_token(t, creds.client, Door::Bearer)?;
        Ok(Scraper(()))
    }

    /// What [`Gate::check`] would answer, without counting a wrong token: for a caller that
    /// hands a refused request on to one that calls `check` (so a guess counts once).
    pub async fn would_admit(&self, creds: &Credentials) -> Option<Auth> {
        match creds.authorization.as_deref().and_then(bearer_token) {
            Some(t) => (!self.inner.guesses.is_limited(creds.client)
                && secret_eq(t, self.inner.token.expose()))
            .then(|| self.token_auth()),
            None => self.session_auth(creds).await,
        }
    }

    /// Checks a token typed into the login form (or carried by the start-up URL) from
    /// `client`, counting a wrong one; `Ok` when it is the dashboard token.
    pub fn log_in(&self, typed: &str, client: Option<IpAddr>) -> Result<(), Refusal> {
        self.try_token(typed, client, Door::Login)?;
        self.inner.guesses.logged_in(client);
        Ok(())
    }

    /// Starts a session for the token's principal, made with the token; the cookie value.
    pub async fn start_session(&self) -> Result<String, StoreError> {
        self.inner
            .sessions
            .create(Principal::admin(), self.inner.credential.clone())
            .await
    }

    /// The sessions the gate accepts, to end them.
    pub fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    /// Whom to believe about a client's address.
    pub fn proxy(&self) -> &ProxyTrust {
        &self.inner.proxy
    }

    /// Logs what guessing went on, one line per address per window, until `stop`; then
    /// whatever is still open.
    pub async fn report_guesses(self, stop: crate::shutdown::Shutdown) {
        let guesses = &self.inner.guesses;
        let tick = (guesses.window() / 4).max(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = stop.started() => break,
            }
            log_guesses(guesses.report(false));
        }
        log_guesses(guesses.report(true));
    }

    fn try_token(&self, t: &str, client: Option<IpAddr>, door: Door) -> Result<(), Refusal> {
        // A limited address is refused before its token is looked at: otherwise the answer
        // would still tell a guesser when it had found the token.
        if let Some(wait) = self.inner.guesses.admit(client) {
            return Err(Refusal::Limited(wait));
        }
        if secret_eq(t.trim(), self.inner.token.expose()) {
            return Ok(());
        }
        log_guesses(self.inner.guesses.failed(client, door));
        Err(Refusal::Unauthorized)
    }

    fn token_auth(&self) -> Auth {
        Auth {
            principal: Principal::admin(),
            session: None,
        }
    }

    async fn session_auth(&self, creds: &Credentials) -> Option<Auth> {
        let Admitted { principal, end } =
            self.inner.sessions.check(creds.session.as_deref()?).await?;
        Some(Auth {
            principal,
            session: Some(end),
        })
    }
}

fn log_guesses(lines: Vec<String>) {
    for line in lines {
        log::warn!("{}", escaped(line));
    }
}

/// The credentials a request carried, and the address it came from.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Credentials {
    pub authorization: Option<String>,
    pub session: Option<String>,
    /// The client's address (see [`ProxyTrust`]); wrong tokens are counted against it.
    pub client: Option<IpAddr>,
}

/// The token of an `Authorization: Bearer <token>` header. The scheme is case-insensitive
/// (RFC 9110); a header with another scheme, or none, is no credential, so a session cookie
/// sent along may still count.
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_token_must_match_exactly() {
        assert!(secret_eq("abc", "abc"));
        assert!(secret_eq("", ""));
        assert!(!secret_eq("abc", "ab"));
        assert!(!secret_eq("abc", "abd"));
        assert!(!secret_eq("abc", "abc\0"));
        assert!(!secret_eq("", "a"));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_other_schemes_are_no_credential() {
        for (header, token) in [
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("BEARER   abc  ", Some("abc")),
            ("Bearer ", Some("")),
            ("Bearer", None),
            ("Basic abc", None),
            ("abc", None),
            ("Bearerabc", None),
        ] {
            assert_eq!(bearer_token(header), token, "{header:?}");
        }
    }
}
