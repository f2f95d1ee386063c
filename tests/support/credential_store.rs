//! An in-memory [`CredentialStore`] for tests (the controllers use a Secret owned by the Droplet
//! object). Included with `#[path]` by the test files that enrol agents.
#![allow(dead_code)]

use mcp_droplet_agent::secret::Secret;
use mcp_droplet_operator::agent_client::{CredentialStore, CredentialStoreError};
use std::sync::{Arc, Mutex};

/// Holds one credential in memory; clones share it, like two operator processes reading the
/// same Secret.
#[derive(Debug, Clone, Default)]
pub struct MemoryCredentialStore {
    credential: Arc<Mutex<Option<Secret>>>,
}

impl MemoryCredentialStore {
    /// A store that already holds `credential`.
    pub fn holding(credential: Secret) -> Self {
        Self {
            credential: Arc::new(Mutex::new(Some(credential))),
        }
    }

    /// The stored credential.
    pub fn current(&self) -> Option<Secret> {
        self.credential.lock().unwrap().clone()
    }
}

impl CredentialStore for MemoryCredentialStore {
    async fn load(&self) -> Result<Option<Secret>, CredentialStoreError> {
        Ok(self.current())
    }

    async fn save(&self, credential: &Secret) -> Result<(), CredentialStoreError> {
        *self.credential.lock().unwrap() = Some(credential.clone());
        Ok(())
    }
}
