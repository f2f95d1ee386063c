//! How the controllers reach a droplet's agent: its credential lives in a Secret owned by the
//! Droplet (saved *before* the enrolment POST, so a crash never loses a credential the agent may
//! have accepted), its address and pinned certificate in the Droplet's `status.agent`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret as SecretObject;
use kube::api::ObjectMeta;
use kube::{Api, Resource, ResourceExt};
use mcp_droplet_agent::secret::Secret;

use super::status_writer::apply_object;
use super::{Error, FIELD_MANAGER};
use crate::agent_client::{AgentClient, ClientSettings, CredentialStore, CredentialStoreError};
use crate::api::droplet::Droplet;

/// Key of the credential in the droplet's credential Secret.
pub const CREDENTIAL_KEY: &str = "credential";

/// Name of the Secret holding a droplet's agent credential.
pub fn credential_secret_name(droplet: &str) -> String {
    format!("{droplet}-agent-credential")
}

/// The labels every Secret the operator makes carries (for `kubectl get secret -l`).
pub fn managed_labels(component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_string(),
            FIELD_MANAGER.to_string(),
        ),
        (
            "app.kubernetes.io/component".to_string(),
            component.to_string(),
        ),
    ])
}

/// A [`CredentialStore`] backed by the droplet's credential Secret (owned by the Droplet, so
/// it is garbage-collected with it).
#[derive(Clone)]
pub struct SecretCredentialStore {
    secrets: Api<SecretObject>,
    droplet: Droplet,
}

impl SecretCredentialStore {
    /// The store of `droplet`'s credential.
    pub fn new(client: kube::Client, droplet: &Droplet) -> Result<Self, Error> {
        let namespace = droplet
            .namespace()
            .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
        Ok(Self {
            secrets: Api::namespaced(client, &namespace),
            droplet: droplet.clone(),
        })
    }

    fn secret_name(&self) -> String {
        credential_secret_name(&self.droplet.name_any())
    }
}

impl std::fmt::Debug for SecretCredentialStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretCredentialStore")
            .field("secret", &self.secret_name())
            .finish()
    }
}

fn store_error(error: impl std::error::Error + Send + Sync + 'static) -> CredentialStoreError {
    CredentialStoreError(Box::new(error))
}

impl CredentialStore for SecretCredentialStore {
    async fn load(&self) -> Result<Option<Secret>, CredentialStoreError> {
        let secret = self
            .secrets
            .get_opt(&self.secret_name())
            .await
            .map_err(store_error)?;
        Ok(secret
            .and_then(|s| s.data)
            .and_then(|mut data| data.remove(CREDENTIAL_KEY))
            .and_then(|bytes| String::from_utf8(bytes.0).ok())
            .filter(|s| !s.is_empty())
            .map(Secret::new))
    }

    async fn save(&self, credential: &Secret) -> Result<(), CredentialStoreError> {
        let owner = self
            .droplet
            .controller_owner_ref(&())
            .ok_or_else(|| store_error(Error::MissingObjectKey("metadata.uid")))?;
        let secret = SecretObject {
            metadata: ObjectMeta {
                name: Some(self.secret_name()),
                namespace: self.droplet.namespace(),
                labels: Some(managed_labels("agent-credential")),
                owner_references: Some(vec![owner]),
                ..Default::default()
            },
            type_: Some("Opaque".to_string()),
            data: Some(BTreeMap::from([(
                CREDENTIAL_KEY.to_string(),
                ByteString(credential.expose().as_bytes().to_vec()),
            )])),
            ..Default::default()
        };
        apply_object(&self.secrets, &secret)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

/// Agent clients by droplet, reused while the droplet's address and certificate stay the same
/// (a client holds a TLS configuration and a connection pool).
#[derive(Default)]
pub struct AgentClients {
    clients: Mutex<HashMap<String, AgentClient>>,
}

impl std::fmt::Debug for AgentClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgentClients")
    }
}

/// Why a droplet's agent cannot be called yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentNotReachable {
    /// The droplet has no agent endpoint or pinned certificate in its status (not enrolled).
    NotEnrolled,
    /// The credential Secret is missing.
    NoCredential,
}

impl AgentClients {
    /// A client for `droplet`'s agent: endpoint and fingerprint from its status, credential
    /// from its Secret. `Ok(Err(..))` says why the agent cannot be called yet.
    pub async fn for_droplet(
        &self,
        client: &kube::Client,
        droplet: &Droplet,
        settings: &ClientSettings,
    ) -> Result<Result<AgentClient, AgentNotReachable>, Error> {
        let agent = droplet.status.as_ref().and_then(|s| s.agent.as_ref());
        let (Some(endpoint), Some(fingerprint)) = (
            agent.and_then(|a| a.endpoint.clone()),
            agent.and_then(|a| a.certificate_fingerprint.clone()),
        ) else {
            return Ok(Err(AgentNotReachable::NotEnrolled));
        };
        let key = format!(
            "{}/{}",
            droplet.namespace().unwrap_or_default(),
            droplet.name_any()
        );
        if let Ok(cache) = self.clients.lock()
            && let Some(cached) = cache.get(&key)
            && cached.fingerprint() == fingerprint
            && cached.base_url() == endpoint.trim_end_matches('/')
        {
            return Ok(Ok(cached.clone()));
        }
        let store = SecretCredentialStore::new(client.clone(), droplet)?;
        let Some(credential) = store
            .load()
            .await
            .map_err(|e| Error::InvalidSpec(format!("credential Secret: {e}")))?
        else {
            return Ok(Err(AgentNotReachable::NoCredential));
        };
        let built = AgentClient::new(&endpoint, &fingerprint, credential, settings.clone())?;
        if let Ok(mut cache) = self.clients.lock() {
            cache.insert(key, built.clone());
        }
        Ok(Ok(built))
    }

    /// Forgets the cached client of a droplet (deleted, re-enrolled).
    pub fn forget(&self, namespace: &str, droplet: &str) {
        if let Ok(mut cache) = self.clients.lock() {
            cache.remove(&format!("{namespace}/{droplet}"));
        }
    }
}
