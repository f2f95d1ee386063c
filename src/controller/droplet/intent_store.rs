//! The Kubernetes-backed [`IntentStore`] of a Droplet object: the create intent, the
//! DigitalOcean id and whether it was seen, as annotations on the Droplet itself.
//!
//! Annotations (not status) because the status is recomputed and applied in full each pass,
//! while the intent must be durable *before* the create POST, on its own; each write is a merge
//! patch that returns only once the API server stored it. `status.dropletID` repeats the id for
//! people, FleetView and the orphan sweep, written in the same pass right after the create.

use std::collections::BTreeMap;

use clock::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};

use crate::api::droplet::Droplet;
use crate::cloud::droplet_creation::{IntentRecord, IntentStore, IntentStoreError};
use crate::controller::FIELD_MANAGER;

/// Annotation: when a create was last intended (RFC 3339), written before the POST.
pub const INTENT_AT: &str = "mcp.agentopia.io/create-intent-at";
/// Annotation: the DigitalOcean droplet id, written right after the create answers.
pub const DROPLET_ID: &str = "mcp.agentopia.io/droplet-id";
/// Annotation: `true` once the recorded droplet was seen by a GET or a list.
pub const DROPLET_OBSERVED: &str = "mcp.agentopia.io/droplet-observed";

/// The intent record of one Droplet object, in its annotations.
#[derive(Clone)]
pub struct AnnotationIntentStore {
    api: Api<Droplet>,
    name: String,
    uid: String,
}

impl std::fmt::Debug for AnnotationIntentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnnotationIntentStore")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl AnnotationIntentStore {
    /// The store of the Droplet `name` (UID `uid`) in `api`'s namespace.
    pub fn new(api: Api<Droplet>, name: &str, uid: &str) -> Self {
        Self {
            api,
            name: name.to_string(),
            uid: uid.to_string(),
        }
    }

    fn check_owner(&self, owner_uid: &str) -> Result<(), IntentStoreError> {
        if owner_uid == self.uid {
            Ok(())
        } else {
            Err(IntentStoreError(format!(
                "this store holds the intent of {}, not {owner_uid}",
                self.uid
            )))
        }
    }

    async fn annotate(&self, values: BTreeMap<&str, String>) -> Result<(), IntentStoreError> {
        // A resourceVersion-free merge patch of our own keys only: it cannot clobber others.
        let body = serde_json::json!({ "metadata": { "annotations": values } });
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        };
        self.api
            .patch(&self.name, &params, &Patch::Merge(&body))
            .await
            .map_err(|e| IntentStoreError(format!("annotating Droplet {}: {e}", self.name)))?;
        Ok(())
    }
}

/// Reads the intent record from annotations (pure; missing or unreadable values count as absent).
pub fn record_from_annotations(annotations: &BTreeMap<String, String>) -> IntentRecord {
    IntentRecord {
        intent_at: annotations
            .get(INTENT_AT)
            .and_then(|v| v.parse::<Timestamp>().ok()),
        droplet_id: annotations.get(DROPLET_ID).and_then(|v| v.parse().ok()),
        observed: annotations
            .get(DROPLET_OBSERVED)
            .is_some_and(|v| v == "true"),
    }
}

impl IntentStore for AnnotationIntentStore {
    async fn load(&self, owner_uid: &str) -> Result<IntentRecord, IntentStoreError> {
        self.check_owner(owner_uid)?;
        // Read from the API server, not the cache: a record written a moment ago must count.
        let object = self
            .api
            .get(&self.name)
            .await
            .map_err(|e| IntentStoreError(format!("reading Droplet {}: {e}", self.name)))?;
        Ok(record_from_annotations(
            object
                .metadata
                .annotations
                .as_ref()
                .unwrap_or(&BTreeMap::new()),
        ))
    }

    async fn record_intent(&self, owner_uid: &str, at: Timestamp) -> Result<(), IntentStoreError> {
        self.check_owner(owner_uid)?;
        self.annotate(BTreeMap::from([(INTENT_AT, at.to_string())]))
            .await
    }

    async fn record_droplet_id(
        &self,
        owner_uid: &str,
        droplet_id: u64,
        observed: bool,
    ) -> Result<(), IntentStoreError> {
        self.check_owner(owner_uid)?;
        #[cfg(feature = "testing")]
        if !observed {
            test_hooks::maybe_crash_after_create(&self.name).await;
        }
        self.annotate(BTreeMap::from([
            (DROPLET_ID, droplet_id.to_string()),
            (DROPLET_OBSERVED, observed.to_string()),
        ]))
        .await
    }
}

/// Test hooks (feature `testing`, never in the binary): stop a pass between the create POST
/// and the recording of its answer, as a crash there would.
#[cfg(feature = "testing")]
pub mod test_hooks {
    use std::collections::HashSet;
    use std::sync::{Mutex, PoisonError};

    static CRASH_AFTER_CREATE: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    static CREATED_THEN_HUNG: Mutex<Option<HashSet<String>>> = Mutex::new(None);

    /// The next create of the Droplet `name` hangs right after DigitalOcean answered, before
    /// anything is recorded (the test then aborts the operator).
    pub fn crash_after_create(name: &str) {
        CRASH_AFTER_CREATE
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(HashSet::new)
            .insert(name.to_string());
    }

    /// Whether a pass of `name` is hanging after its create.
    pub fn hung_after_create(name: &str) -> bool {
        CREATED_THEN_HUNG
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|s| s.contains(name))
    }

    pub(super) async fn maybe_crash_after_create(name: &str) {
        let armed = CRASH_AFTER_CREATE
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
            .is_some_and(|s| s.remove(name));
        if armed {
            CREATED_THEN_HUNG
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert_with(HashSet::new)
                .insert(name.to_string());
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_round_trip_into_a_record() {
        let at: Timestamp = "2026-12-02T10:00:00Z".parse().expect("timestamp");
        let annotations = BTreeMap::from([
            (INTENT_AT.to_string(), at.to_string()),
            (DROPLET_ID.to_string(), "42".to_string()),
            (DROPLET_OBSERVED.to_string(), "true".to_string()),
        ]);
        assert_eq!(
            record_from_annotations(&annotations),
            IntentRecord {
                intent_at: Some(at),
                droplet_id: Some(42),
                observed: true
            }
        );
        assert_eq!(
            record_from_annotations(&BTreeMap::from([(
                DROPLET_ID.to_string(),
                "not-a-number".to_string()
            )])),
            IntentRecord::default()
        );
    }
}
