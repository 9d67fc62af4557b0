//! Who may read leads: the dashboard token (as `Authorization: Bearer …`) or a session cookie
//! obtained by trading the token at `/login`. Every comparison with a secret is constant time.
//!
//! A request that may read leads is proven by an [`Auth`] value: only [`Gate::check`] makes
//! one, so a handler that takes an `Auth` cannot run for a request without credentials, and a
//! handler without one is visibly public.

mod limiter;
mod sessions;

use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Secret;
pub use limiter::LoginLimiter;
pub use sessions::{EndedSink, SessionEnd, Sessions, SESSION_COOKIE};

/// Constant-time equality of two secrets. Both are hashed first, so the comparison runs over
/// 32 bytes whatever was sent: not even the token's length shows in the timing (a plain
/// `ct_eq` of the strings returns at once when the lengths differ).
pub fn secret_eq(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes())
        .ct_eq(&Sha256::digest(b.as_bytes()))
        .into()
}

/// Proof that a request carried credentials that open the dashboard and the API (today the
/// dashboard token, or a session traded for it). It cannot be made outside this module: a
/// handler receives it from the gate, or does not run.
#[derive(Debug)]
pub struct Auth {
    /// The session it was made from; `None` for the bearer token.
    session: Option<SessionEnd>,
}

impl Auth {
    /// Raised when the session these credentials came from ends; `None` for the bearer
    /// token, which lasts as long as the process.
    pub fn session_end(&self) -> Option<&SessionEnd> {
        self.session.as_ref()
    }
}

/// Decides who may read leads: the dashboard token as a bearer, or a live session.
#[derive(Clone)]
pub struct Gate {
    token: Secret,
    sessions: Arc<Sessions>,
}

impl Gate {
    pub fn new(token: Secret, sessions: Arc<Sessions>) -> Gate {
        Gate { token, sessions }
    }

    /// An [`Auth`] when `creds` may read leads. A bearer header decides on its own; without
    /// one, a session cookie may.
    pub async fn check(&self, creds: &Credentials) -> Option<Auth> {
        match creds.authorization.as_deref().and_then(bearer_token) {
            Some(t) => secret_eq(t, self.token.expose()).then_some(Auth { session: None }),
            None => {
                let end = self.sessions.check(creds.session.as_deref()?).await?;
                Some(Auth { session: Some(end) })
            }
        }
    }

    /// True when `typed` is the dashboard token (the login form).
    pub fn is_token(&self, typed: &str) -> bool {
        secret_eq(typed, self.token.expose())
    }

    /// The sessions the gate accepts, to start and end them.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }
}

/// The credentials a request carried.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Credentials {
    pub authorization: Option<String>,
    pub session: Option<String>,
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
