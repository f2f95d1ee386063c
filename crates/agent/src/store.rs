//! Durable agent state in the data dir: enrolment, desired servers, and the TLS identity.
//!
//! Every write goes to a temporary file that is synced and renamed over the old one, so a crash
//! leaves either the old or the new state, never a torn file.

use crate::api::ServerSpec;
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// File system error.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The state file is corrupt.
    #[error("state file {path} is corrupt: {message}")]
    Corrupt {
        /// The file.
        path: String,
        /// Parser message.
        message: String,
    },
    /// Certificate generation failed.
    #[error("cannot generate the TLS identity: {0}")]
    Identity(String),
}

/// The enrolment of this agent by an operator.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Enrolment {
    /// Hex SHA-256 of the per-droplet credential (the credential itself is not stored).
    pub credential_sha256: String,
}

/// Everything the agent must remember across restarts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AgentState {
    /// Hex SHA-256 of the enrolment token that has been spent (a new token in a new
    /// bootstrap config can enrol again).
    #[serde(default)]
    pub spent_token_sha256: Option<String>,
    /// The enrolment, once done.
    #[serde(default)]
    pub enrolment: Option<Enrolment>,
    /// Desired servers by name (secret values included: the file is mode 0600).
    #[serde(default)]
    pub servers: BTreeMap<String, ServerSpec>,
}

/// The data dir.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

/// The agent's TLS identity: certificate and key, PEM.
#[derive(Clone)]
pub struct Identity {
    /// Certificate, DER.
    pub cert_der: Vec<u8>,
    /// Private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("cert_sha256", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Hex SHA-256 of the certificate DER, which the operator pins.
    pub fn fingerprint(&self) -> String {
        crate::secret::sha256_hex(&self.cert_der)
    }

    /// Generates a fresh self-signed identity for `names` (droplet name and listen host).
    pub fn generate(names: Vec<String>) -> Result<Self, StoreError> {
        let certified = rcgen::generate_simple_self_signed(names)
            .map_err(|e| StoreError::Identity(e.to_string()))?;
        Ok(Self {
            cert_der: certified.cert.der().to_vec(),
            key_der: certified.signing_key.serialize_der(),
        })
    }
}

fn io_err<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> StoreError + 'p {
    move |source| StoreError::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

impl DataDir {
    /// Opens (and creates, mode 0700) the data dir.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(io_err("create", &root))?;
        set_mode(&root, 0o700)?;
        Ok(Self { root })
    }

    /// The data dir's path.
    pub fn path(&self) -> &Path {
        &self.root
    }

    fn state_path(&self) -> PathBuf {
        self.root.join("state.json")
    }

    /// Loads the state, or the empty state on first start.
    pub fn load_state(&self) -> Result<AgentState, StoreError> {
        let path = self.state_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                path: path.display().to_string(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AgentState::default()),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    /// Saves the state atomically.
    pub fn save_state(&self, state: &AgentState) -> Result<(), StoreError> {
        let json = serde_json::to_vec_pretty(state).map_err(|e| StoreError::Corrupt {
            path: self.state_path().display().to_string(),
            message: e.to_string(),
        })?;
        self.write_atomic(&self.state_path(), &json)
    }

    /// Loads the identity, generating and saving one on first start so the fingerprint the
    /// operator pinned stays valid across restarts.
    pub fn load_or_create_identity(&self, names: Vec<String>) -> Result<Identity, StoreError> {
        let cert_path = self.root.join("identity.crt.der");
        let key_path = self.root.join("identity.key.der");
        match (std::fs::read(&cert_path), std::fs::read(&key_path)) {
            (Ok(cert_der), Ok(key_der)) => Ok(Identity { cert_der, key_der }),
            _ => {
                let identity = Identity::generate(names)?;
                self.write_atomic(&key_path, &identity.key_der)?;
                self.write_atomic(&cert_path, &identity.cert_der)?;
                Ok(identity)
            }
        }
    }

    /// Loads the key of the spec hashes, creating a random one on first start; it never leaves
    /// the data dir, and keeping it keeps the hashes (and so PUT idempotency and container
    /// adoption) stable across restarts.
    pub fn load_or_create_hash_key(&self) -> Result<Secret, StoreError> {
        let path = self.root.join("spec-hash.key");
        match std::fs::read_to_string(&path) {
            Ok(key) if key.trim().len() >= 32 => Ok(Secret::new(key.trim())),
            Ok(_) => Err(StoreError::Corrupt {
                path: path.display().to_string(),
                message: "the spec hash key is too short".into(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Secret::random();
                self.write_atomic(&path, key.expose().as_bytes())?;
                Ok(key)
            }
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let tmp = path.with_extension("tmp");
        {
            let mut file = std::fs::File::create(&tmp).map_err(io_err("create", &tmp))?;
            set_mode(&tmp, 0o600)?;
            file.write_all(bytes).map_err(io_err("write", &tmp))?;
            file.sync_all().map_err(io_err("sync", &tmp))?;
        }
        std::fs::rename(&tmp, path).map_err(io_err("rename", path))?;
        // The rename is durable only once the directory entry is synced.
        if let Ok(dir) = std::fs::File::open(&self.root) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io_err("chmod", path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ServerSpec, Transport};

    #[test]
    fn state_round_trips_and_identity_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path().join("d")).unwrap();
        assert_eq!(data.load_state().unwrap(), AgentState::default());
        let mut state = AgentState::default();
        state.servers.insert(
            "time".into(),
            ServerSpec {
                image: "x".into(),
                pull_credentials: None,
                env: vec![],
                command: vec![],
                args: vec![],
                transport: Transport::Stdio,
                port: None,
                mcp_path: None,
                resources: Default::default(),
                volumes: vec![],
                labels: Default::default(),
                network_policy: Default::default(),
                read_only_root_filesystem: true,
                endpoint_token: Secret::new("0123456789abcdef"),
            },
        );
        data.save_state(&state).unwrap();
        assert_eq!(data.load_state().unwrap(), state);
        let a = data.load_or_create_identity(vec!["d1".into()]).unwrap();
        let b = data.load_or_create_identity(vec!["d1".into()]).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint().len(), 64);
    }

    #[test]
    fn spec_hashes_are_keyed_per_agent_and_stable_across_restarts() {
        let spec: ServerSpec = serde_json::from_value(serde_json::json!({
            "image": "mcp-test/time:1",
            "transport": "stdio",
            "endpointToken": "0123456789abcdef",
            "env": [{"name": "PASSWORD", "secretValue": "hunter2"}],
        }))
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let key = DataDir::open(dir.path())
            .unwrap()
            .load_or_create_hash_key()
            .unwrap();
        // A restarted agent reads the same key, so the same spec keeps its hash.
        let again = DataDir::open(dir.path())
            .unwrap()
            .load_or_create_hash_key()
            .unwrap();
        assert_eq!(spec.hash(&key), spec.hash(&again));
        let hash = spec.hash(&key);
        assert_eq!(hash.len(), 64);
        // Not the plain SHA-256 an attacker could recompute from guesses.
        let plain = crate::secret::sha256_hex(&serde_json::to_vec(&spec).unwrap());
        assert_ne!(hash, plain);
        // Another agent has another key, hence another hash.
        let other_dir = tempfile::tempdir().unwrap();
        let other = DataDir::open(other_dir.path())
            .unwrap()
            .load_or_create_hash_key()
            .unwrap();
        assert_ne!(spec.hash(&other), hash);
        // A changed secret is a changed spec.
        let mut rotated = spec.clone();
        rotated.env[0].secret_value = Some(Secret::new("hunter3"));
        assert_ne!(rotated.hash(&key), hash);
    }

    #[test]
    fn corrupt_state_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        std::fs::write(dir.path().join("state.json"), "{nope").unwrap();
        assert!(matches!(data.load_state(), Err(StoreError::Corrupt { .. })));
    }
}
