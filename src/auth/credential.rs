//! Who a session or a request acts for ([`Principal`]), and what proved it ([`Credential`]).
//!
//! Today there is one credential, the dashboard token, which acts as the principal `admin`. A
//! session remembers the credential that made it, so whatever credential made a session can end
//! it: a changed token ends every session the old one made. A user's password fits the same
//! shape: a kind of its own (`password:NAME`), a fingerprint of its own.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::model::{Role, TOKEN_USER};
use crate::store::password_kind;

/// Who a session (or a request) acts for, and what they may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    name: String,
    role: Role,
}

impl Principal {
    /// The dashboard token acts as the administrator `admin`.
    pub fn admin() -> Principal {
        Principal {
            name: TOKEN_USER.into(),
            role: Role::Admin,
        }
    }

    /// A principal as stored with a session, or as a user logged in.
    pub(super) fn named(name: String, role: Role) -> Principal {
        Principal { name, role }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn role(&self) -> Role {
        self.role
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
        Credential {
            kind: "token".into(),
            fingerprint: fingerprint(secret, salt),
        }
    }

    /// A user's password credential: of the kind `password:NAME`, fingerprinted from the
    /// password's stored hash (a new password makes another fingerprint).
    pub fn password(name: &str, password_hash: &str, salt: &str) -> Credential {
        Credential {
            kind: password_kind(name),
            fingerprint: fingerprint(password_hash, salt),
        }
    }

    /// True when `other` is a credential of the same kind that is not this one (the token
    /// changed since `other` made a session).
    pub(super) fn replaces(&self, other: &Credential) -> bool {
        self.kind == other.kind && self.fingerprint != other.fingerprint
    }
}

fn fingerprint(secret: &str, salt: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(salt.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(secret.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}
