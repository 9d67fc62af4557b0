//! Who a session or a request acts for ([`Principal`]), and what proved it ([`Credential`]).
//!
//! Today there is one credential, the dashboard token, which acts as the principal `admin`. A
//! session remembers the credential that made it, so whatever credential made a session can end
//! it: a changed token ends every session the old one made. A user's password fits the same
//! shape: a kind of its own (`password:NAME`), a fingerprint of its own.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Who a session (or a request) acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal(String);

impl Principal {
    /// The dashboard token acts as the administrator `admin`.
    pub fn admin() -> Principal {
        Principal("admin".into())
    }

    /// A principal as stored with a session.
    pub(super) fn named(name: String) -> Principal {
        Principal(name)
    }

    pub fn name(&self) -> &str {
        &self.0
    }
}

/// The credential a session was made with: its kind (`token`) and a fingerprint of the secret,
/// an HMAC-SHA256 keyed with a random salt kept in the database. The fingerprint tells one
/// token from another without storing the token; a copy of the database still lets a token be
/// tested offline at SHA-256 speed, which is why the token should be long and random.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub(super) kind: String,
    pub(super) fingerprint: String,
}

impl Credential {
    /// The dashboard token's credential, fingerprinted with `salt`.
    pub fn token(secret: &str, salt: &str) -> Credential {
        let mut mac = Hmac::<Sha256>::new_from_slice(salt.as_bytes())
            .expect("HMAC accepts keys of any length");
        mac.update(secret.as_bytes());
        Credential {
            kind: "token".into(),
            fingerprint: hex::encode(mac.finalize().into_bytes()),
        }
    }

    /// True when `other` is a credential of the same kind that is not this one (the token
    /// changed since `other` made a session).
    pub(super) fn replaces(&self, other: &Credential) -> bool {
        self.kind == other.kind && self.fingerprint != other.fingerprint
    }
}
