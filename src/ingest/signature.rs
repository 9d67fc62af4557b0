//! `X-Hub-Signature-256`: HMAC-SHA256 of the raw body with the app secret.
//!
//! Verification runs on the raw bytes as received. Meta escapes non-ASCII as `\u00e4` and `/`
//! as `\/` and signs *those* bytes; a re-serialised copy would not match.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    Missing,
    /// Not `sha256=` followed by 64 hex digits.
    Malformed,
    Mismatch,
}

impl SignatureError {
    pub fn describe(self) -> &'static str {
        match self {
            SignatureError::Missing => "X-Hub-Signature-256 header missing",
            SignatureError::Malformed => "X-Hub-Signature-256 header malformed",
            SignatureError::Mismatch => "X-Hub-Signature-256 does not match the body",
        }
    }
}

fn mac(secret: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length")
}

/// Checks `header` (`sha256=<hex>`) against HMAC-SHA256(secret, body) in constant time.
pub fn verify(secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?.trim();
    let hex_part = header
        .strip_prefix("sha256=")
        .or_else(|| header.strip_prefix("SHA256="))
        .ok_or(SignatureError::Malformed)?;
    if hex_part.len() != 64 {
        return Err(SignatureError::Malformed);
    }
    let expected = hex::decode(hex_part).map_err(|_| SignatureError::Malformed)?;
    let mut m = mac(secret);
    m.update(body);
    // verify_slice compares in constant time (subtle underneath).
    m.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// The header value Meta would send for `body`: `sha256=<lowercase hex>`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(body);
    format!("sha256={}", hex::encode(m.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const META_BODY: &[u8] = br#"{"name":"Jos\u00e9 \u00e4\u00f6\u00e5","url":"https:\/\/x"}"#;
    const META_SIG: &str =
        "sha256=1c05557cd8709f96cdcd9b68b0d5bc88b85456f53cc0292ee4a0eac1a69f4094";
    const GITHUB_SIG: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn metas_vector_with_escapes_verifies_on_the_raw_bytes() {
        assert_eq!(sign(b"test_app_secret", META_BODY), META_SIG);
        assert_eq!(
            verify(b"test_app_secret", META_BODY, Some(META_SIG)),
            Ok(())
        );
        // The same JSON re-serialised without the escapes is different bytes: must not match.
        let reserialised = "{\"name\":\"José äöå\",\"url\":\"https://x\"}";
        assert_eq!(
            verify(b"test_app_secret", reserialised.as_bytes(), Some(META_SIG)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn githubs_published_vector_verifies() {
        let secret = b"It's a Secret to Everybody";
        assert_eq!(sign(secret, b"Hello, World!"), GITHUB_SIG);
        assert_eq!(verify(secret, b"Hello, World!", Some(GITHUB_SIG)), Ok(()));
    }

    #[test]
    fn bad_headers_are_told_apart() {
        let s = b"k";
        assert_eq!(verify(s, b"x", None), Err(SignatureError::Missing));
        assert_eq!(
            verify(s, b"x", Some("sha1=abc")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(s, b"x", Some("sha256=zz")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(s, b"x", Some(&format!("sha256={}", "g".repeat(64)))),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(s, b"x", Some(&format!("sha256={}", "0".repeat(64)))),
            Err(SignatureError::Mismatch)
        );
    }
}
