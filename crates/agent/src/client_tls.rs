//! Client-side TLS for talking to an agent: certificate pinning by SHA-256 fingerprint instead
//! of a CA, since every agent has its own self-signed certificate. Used by the operator's
//! agent client and by MCP clients of the per-server endpoints.

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use std::sync::{Arc, Mutex};

/// Why a client TLS config could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientTlsError {
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// What the verifier accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinMode {
    /// Only the certificate with this hex SHA-256.
    Pinned(String),
    /// Any certificate, recording its fingerprint (enrolment only: the fingerprint is compared
    /// with the one the agent reports and then pinned).
    TrustOnFirstUse,
}

/// A rustls verifier that pins the agent's certificate by fingerprint.
#[derive(Debug)]
pub struct PinnedCertVerifier {
    mode: PinMode,
    observed: Mutex<Option<String>>,
    provider: Arc<CryptoProvider>,
}

impl PinnedCertVerifier {
    /// A verifier in the given mode, with the aws-lc-rs provider.
    pub fn new(mode: PinMode) -> Arc<Self> {
        Arc::new(Self {
            mode,
            observed: Mutex::new(None),
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        })
    }

    /// Fingerprint of the last certificate the server presented.
    pub fn observed(&self) -> Option<String> {
        self.observed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A rustls client config using this verifier.
    pub fn client_config(self: &Arc<Self>) -> Result<rustls::ClientConfig, ClientTlsError> {
        Ok(
            rustls::ClientConfig::builder_with_provider(self.provider.clone())
                .with_safe_default_protocol_versions()?
                .dangerous()
                .with_custom_certificate_verifier(self.clone())
                .with_no_client_auth(),
        )
    }
}

impl ServerCertVerifier for PinnedCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fingerprint = crate::secret::sha256_hex(end_entity.as_ref());
        *self.observed.lock().unwrap_or_else(|e| e.into_inner()) = Some(fingerprint.clone());
        match &self.mode {
            PinMode::TrustOnFirstUse => Ok(ServerCertVerified::assertion()),
            PinMode::Pinned(expected) if expected.eq_ignore_ascii_case(&fingerprint) => {
                Ok(ServerCertVerified::assertion())
            }
            PinMode::Pinned(_) => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A reqwest client that only talks to the agent with this certificate fingerprint.
pub fn pinned_reqwest_client(
    fingerprint: &str,
    timeout: std::time::Duration,
) -> Result<reqwest::Client, PinnedClientError> {
    let verifier = PinnedCertVerifier::new(PinMode::Pinned(fingerprint.to_string()));
    reqwest::Client::builder()
        .tls_backend_preconfigured(verifier.client_config()?)
        .timeout(timeout)
        .build()
        .map_err(|e| PinnedClientError::Build(e.to_string()))
}

/// Why a pinned HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PinnedClientError {
    /// TLS config.
    #[error(transparent)]
    Tls(#[from] ClientTlsError),
    /// reqwest refused.
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}
