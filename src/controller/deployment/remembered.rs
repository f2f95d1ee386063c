//! What the deployment controller remembers between passes: the step machine's counters per
//! deployment and the Secrets it read or wrote. It lives in the operator's [`Context`], so a
//! restarted operator (or a second one in a test process) starts with none of it, exactly as a
//! new process would.
//!
//! [`Context`]: crate::controller::Context

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret as SecretObject;

use super::plan::Memory;

/// The deployment controller's memory (see the module docs).
#[derive(Debug, Default)]
pub struct Remembered {
    /// Counters of the step machine per deployment uid (see [`Memory`]).
    memory: Mutex<HashMap<String, Memory>>,
    secrets: Mutex<SecretCache>,
}

/// Secrets this controller read or wrote (its token and endpoint Secrets, env Secrets) by
/// `namespace/name`, with the resourceVersion they had, so a converged pass reads none from the
/// API; and the latest resourceVersion the metadata watch reported for each Secret it cares
/// about: a cached copy of another version is stale (changed or deleted since) and read again.
#[derive(Debug, Default)]
struct SecretCache {
    cached: HashMap<String, CachedSecret>,
    seen: HashMap<String, String>,
}

struct CachedSecret {
    version: String,
    data: BTreeMap<String, ByteString>,
}

impl std::fmt::Debug for CachedSecret {
    // Never print Secret values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedSecret")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

impl Remembered {
    /// The step machine's memory of deployment `uid` (empty when none is kept).
    pub fn memory(&self, uid: &str) -> Memory {
        self.memory
            .lock()
            .ok()
            .and_then(|m| m.get(uid).cloned())
            .unwrap_or_default()
    }

    /// Keeps (or, with `None`, forgets) the memory of deployment `uid`.
    pub fn remember(&self, uid: &str, memory: Option<Memory>) {
        if let Ok(mut m) = self.memory.lock() {
            match memory {
                Some(memory) => m.insert(uid.to_string(), memory),
                None => m.remove(uid),
            };
        }
    }

    /// The cached data of Secret `namespace/name`, unless the watch has seen another version of
    /// it since.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<BTreeMap<String, ByteString>> {
        let key = key(namespace, name);
        let secrets = self.secrets.lock().ok()?;
        let entry = secrets.cached.get(&key)?;
        secrets
            .seen
            .get(&key)
            .is_none_or(|v| *v == entry.version)
            .then(|| entry.data.clone())
    }

    /// Remembers a Secret as read or written (one without a name, namespace or resourceVersion
    /// is not cached).
    pub fn cache_secret(&self, secret: &SecretObject) {
        let meta = &secret.metadata;
        let (Some(namespace), Some(name), Some(version)) = (
            meta.namespace.as_deref(),
            meta.name.as_deref(),
            meta.resource_version.clone(),
        ) else {
            return;
        };
        if let Ok(mut secrets) = self.secrets.lock() {
            secrets.cached.insert(
                key(namespace, name),
                CachedSecret {
                    version,
                    data: secret.data.clone().unwrap_or_default(),
                },
            );
        }
    }

    /// Records the version the watch reported for Secret `namespace/name`, when it is cached or
    /// `relevant` (a Secret no deployment names is not tracked).
    pub fn saw_secret(&self, namespace: &str, name: &str, version: Option<String>, relevant: bool) {
        let key = key(namespace, name);
        let Ok(mut secrets) = self.secrets.lock() else {
            return;
        };
        if relevant || secrets.cached.contains_key(&key) {
            secrets.seen.insert(key, version.unwrap_or_default());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn secret(version: &str, value: &str) -> SecretObject {
        SecretObject {
            metadata: ObjectMeta {
                namespace: Some("team".into()),
                name: Some("env".into()),
                resource_version: Some(version.into()),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(
                "k".to_string(),
                ByteString(value.as_bytes().to_vec()),
            )])),
            ..SecretObject::default()
        }
    }

    #[test]
    fn a_cached_secret_is_served_until_the_watch_reports_another_version() {
        let remembered = Remembered::default();
        assert!(remembered.secret("team", "env").is_none());
        remembered.cache_secret(&secret("5", "one"));
        let data = remembered.secret("team", "env").expect("cached");
        assert_eq!(data["k"].0, b"one");
        remembered.saw_secret("team", "env", Some("5".into()), false);
        assert!(remembered.secret("team", "env").is_some(), "same version");
        remembered.saw_secret("team", "env", Some("6".into()), false);
        assert!(remembered.secret("team", "env").is_none(), "changed since");
        remembered.cache_secret(&secret("6", "two"));
        assert_eq!(
            remembered.secret("team", "env").expect("re-read")["k"].0,
            b"two"
        );
        assert!(remembered.secret("other", "env").is_none());
    }

    #[test]
    fn a_secret_without_a_version_is_not_cached_and_unrelated_ones_are_not_tracked() {
        let remembered = Remembered::default();
        let mut unversioned = secret("1", "x");
        unversioned.metadata.resource_version = None;
        remembered.cache_secret(&unversioned);
        assert!(remembered.secret("team", "env").is_none());
        remembered.saw_secret("team", "unrelated", Some("9".into()), false);
        let tracked = remembered.secrets.lock().expect("lock").seen.len();
        assert_eq!(tracked, 0);
        remembered.saw_secret("team", "wanted", Some("9".into()), true);
        let tracked = remembered.secrets.lock().expect("lock").seen.len();
        assert_eq!(tracked, 1);
    }

    #[test]
    fn memory_is_kept_and_forgotten_per_uid() {
        let remembered = Remembered::default();
        let mut memory = remembered.memory("u1");
        assert_eq!(memory, Memory::default());
        memory.step_failures = 3;
        remembered.remember("u1", Some(memory.clone()));
        assert_eq!(remembered.memory("u1"), memory);
        assert_eq!(remembered.memory("u2"), Memory::default());
        remembered.remember("u1", None);
        assert_eq!(remembered.memory("u1"), Memory::default());
    }

    #[test]
    fn two_operators_do_not_share_what_they_remember() {
        let first = Remembered::default();
        let second = Remembered::default();
        first.cache_secret(&secret("1", "x"));
        assert!(second.secret("team", "env").is_none());
    }
}
