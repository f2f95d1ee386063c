//! An in-memory [`CredentialStore`] for tests (the controllers use a Secret owned by the Droplet
//! object).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use mcp_droplet_agent::secret::Secret;

use crate::agent_client::{CredentialStore, CredentialStoreError};

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
        self.slot().clone()
    }

    // A test that panicked while holding the lock leaves a valid credential behind; the
    // next reader may use it.
    fn slot(&self) -> MutexGuard<'_, Option<Secret>> {
        self.credential
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl CredentialStore for MemoryCredentialStore {
    async fn load(&self) -> Result<Option<Secret>, CredentialStoreError> {
        Ok(self.current())
    }

    async fn save(&self, credential: &Secret) -> Result<(), CredentialStoreError> {
        *self.slot() = Some(credential.clone());
        Ok(())
    }
}
