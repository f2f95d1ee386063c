//! A string that must never reach a log, an error message or a GET response.
//!
//! The value lives in a `secrecy::SecretString` (zeroized on drop, exposed only through
//! `expose_secret`). This wrapper adds what secrecy deliberately leaves out and the agent's API
//! needs (decision 0309): serialisation as the plain string (the operator must send tokens to
//! the agent; GET responses carry only `***` placeholders, see `ServerSpec::redacted`) and a
//! constant-time equality.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use subtle::ConstantTimeEq;

/// A secret value (token, password, secret env value); Debug and Display print `***`.
#[derive(Clone, Default)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The secret value itself, for the few places that must send or compare it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }

    /// A fresh random secret of 32 bytes, hex encoded (for credentials and endpoint tokens).
    pub fn random() -> Self {
        let bytes: [u8; 32] = rand::random();
        Self::new(hex_encode(&bytes))
    }

    /// Hex SHA-256 of the value, which is what the agent stores for credentials.
    pub fn sha256_hex(&self) -> String {
        sha256_hex(self.expose().as_bytes())
    }
}

/// Constant time (via digests), so comparing specs that carry tokens leaks nothing.
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        secrets_equal(self.expose(), other.expose())
    }
}

impl Eq for Secret {}

impl std::hash::Hash for Secret {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.expose().hash(state);
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        SecretString::deserialize(deserializer).map(Self)
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
    let key = aws_lc_rs::hmac::Key::new(
        aws_lc_rs::hmac::HMAC_SHA256,
        enrolment_token.expose().as_bytes(),
    );
    let tag = aws_lc_rs::hmac::sign(&key, certificate_sha256.to_ascii_lowercase().as_bytes());
    Secret::new(hex_encode(tag.as_ref()))
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
        let back: Secret = serde_json::from_str("\"hunter2\"").unwrap();
        assert_eq!(back, s);
        assert_ne!(back, Secret::new("hunter3"));
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
