//! A string that must never reach a log, an error message or a GET response.

use serde::{Deserialize, Serialize};
use std::fmt;
use subtle::ConstantTimeEq;

/// A secret value (token, password, secret env value); Debug and Display print `***`.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value itself, for the few places that must send or compare it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A fresh random secret of 32 bytes, hex encoded (for credentials and endpoint tokens).
    pub fn random() -> Self {
        let bytes: [u8; 32] = rand::random();
        Self(hex_encode(&bytes))
    }

    /// Hex SHA-256 of the value, which is what the agent stores for credentials.
    pub fn sha256_hex(&self) -> String {
        sha256_hex(self.0.as_bytes())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Lower-case hex of bytes.
pub fn hex_encode(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Lower-case hex SHA-256 of bytes (certificate fingerprints, credential digests, spec hashes).
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    hex_encode(digest.as_ref())
}

/// Compares a presented secret with a stored SHA-256 digest in constant time.
///
/// Both sides are hashed to a fixed length first, so neither the content nor the length of the
/// stored value leaks through timing.
pub fn matches_digest(presented: &str, stored_sha256_hex: &str) -> bool {
    let presented = sha256_hex(presented.as_bytes());
    presented
        .as_bytes()
        .ct_eq(stored_sha256_hex.as_bytes())
        .into()
}

/// The enrolment proof: hex HMAC-SHA256 keyed with the enrolment token over the lower-case hex
/// certificate fingerprint. It binds the token to one certificate, so it is useless to anyone
/// relaying the enrolment to an agent with another certificate.
pub fn enrolment_proof(enrolment_token: &Secret, certificate_sha256: &str) -> Secret {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, enrolment_token.0.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, certificate_sha256.to_ascii_lowercase().as_bytes());
    Secret(hex_encode(tag.as_ref()))
}

/// Whether a presented enrolment proof is the one for this token and certificate (constant time).
pub fn enrolment_proof_valid(
    presented: &Secret,
    enrolment_token: &Secret,
    certificate_sha256: &str,
) -> bool {
    let expected = enrolment_proof(enrolment_token, certificate_sha256);
    // Both are hashed first so the comparison is of fixed length.
    secrets_equal(presented.expose(), expected.expose())
}

/// Compares two secrets in constant time (via their digests).
pub fn secrets_equal(a: &str, b: &str) -> bool {
    matches_digest(a, &sha256_hex(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"hunter2\"");
    }

    #[test]
    fn digest_comparison() {
        let s = Secret::new("abc");
        assert!(matches_digest("abc", &s.sha256_hex()));
        assert!(!matches_digest("abd", &s.sha256_hex()));
        assert!(!matches_digest("", &s.sha256_hex()));
        assert!(secrets_equal("x", "x"));
        assert!(!secrets_equal("x", "y"));
    }

    #[test]
    fn enrolment_proof_is_bound_to_token_and_certificate() {
        let token = Secret::new("enrol-token");
        let proof = enrolment_proof(&token, "AB01");
        assert_eq!(proof.expose().len(), 64);
        assert!(enrolment_proof_valid(&proof, &token, "ab01"));
        assert!(!enrolment_proof_valid(&proof, &token, "ab02"));
        assert!(!enrolment_proof_valid(
            &proof,
            &Secret::new("other"),
            "ab01"
        ));
        assert!(!enrolment_proof_valid(&token, &token, "ab01"));
    }

    #[test]
    fn random_secrets_differ() {
        assert_ne!(Secret::random(), Secret::random());
        assert_eq!(Secret::random().expose().len(), 64);
    }
}
