//! Idempotent droplet creation across operator crashes (research section 9.4).
//!
//! DigitalOcean accepts duplicate names and has no idempotency key, so identity is a tag that
//! carries the owner's Kubernetes UID. Before the POST an intent marker is stored (the
//! controller implements [`IntentStore`] with an annotation); after a crash the next pass lists
//! by that tag, adopts what it finds, and creates again only once the list lag grace period
//! has passed since the marker. The decision is the pure [`decide`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crate::cloud::client::DoClient;
use crate::cloud::error::CloudError;
use crate::cloud::models::{Droplet, DropletCreateRequest};

/// Prefix of every tag and name this operator sets.
pub const TAG_PREFIX: &str = "mcp-droplet-operator";

/// Default time a droplet may stay invisible to list-by-tag after its create.
pub const DEFAULT_LIST_LAG_GRACE: Duration = Duration::from_secs(90);

/// The tag that identifies the droplet of one owner object (globally unique, legal charset).
pub fn owner_tag(owner_uid: &str) -> String {
    format!("{TAG_PREFIX}:uid:{}", sanitize_tag(owner_uid))
}

/// The tag on every droplet of one operator installation (for the orphan sweep).
pub fn cluster_tag(cluster_id: &str) -> String {
    format!("{TAG_PREFIX}:cluster:{}", sanitize_tag(cluster_id))
}

fn sanitize_tag(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == ':' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(200)
        .collect()
}

/// A readable, deterministic droplet name `mcp-<ns>-<name>-<uid[0:8]>` matching DigitalOcean's
/// name pattern. It helps people; it is never the identity.
pub fn droplet_name(namespace: &str, name: &str, owner_uid: &str) -> String {
    let uid: String = owner_uid
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect::<String>()
        .to_ascii_lowercase();
    let raw = format!("mcp-{namespace}-{name}-{uid}");
    let mut cleaned: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    cleaned.truncate(63);
    let trimmed = cleaned.trim_matches('-');
    if trimmed.is_empty() {
        "mcp-droplet".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// The owner UID carried by a droplet's owner tag, if it has one.
pub fn owner_uid_of(droplet: &Droplet) -> Option<&str> {
    let prefix = format!("{TAG_PREFIX}:uid:");
    droplet
        .tags
        .iter()
        .find_map(|t| t.strip_prefix(prefix.as_str()))
}

/// Droplets of this installation (listed by its cluster tag) whose owner (lower-case UID in
/// `live_owner_uids`) no longer exists and
/// that are older than `min_age` (so an owner list that lags cannot condemn a fresh droplet).
/// A droplet without an owner tag is left alone: it is not provably ours to delete.
pub fn find_orphans(
    droplets: &[Droplet],
    live_owner_uids: &std::collections::HashSet<String>,
    now: SystemTime,
    min_age: Duration,
) -> Vec<u64> {
    droplets
        .iter()
        .filter(|d| {
            owner_uid_of(d).is_some_and(|uid| !live_owner_uids.contains(&uid.to_ascii_lowercase()))
        })
        .filter(|d| {
            created_at(d)
                .is_some_and(|created| now.duration_since(created).unwrap_or_default() >= min_age)
        })
        .map(|d| d.id)
        .collect()
}

fn created_at(droplet: &Droplet) -> Option<SystemTime> {
    let ts: jiff::Timestamp = droplet.created_at.parse().ok()?;
    let secs = u64::try_from(ts.as_second()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// What the store knows about one owner's droplet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IntentRecord {
    /// When a create was last intended (marker written before the POST).
    pub intent_at: Option<SystemTime>,
    /// The droplet id, once known.
    pub droplet_id: Option<u64>,
}

/// A failure of the intent store (e.g. the annotation patch failed).
#[derive(Debug, Clone, thiserror::Error)]
#[error("intent store: {0}")]
pub struct IntentStoreError(pub String);

/// Durable memory of create intents, keyed by owner UID. The controller implements it with an
/// annotation on the owner object; every write must be durable before it returns.
pub trait IntentStore: Send + Sync {
    /// Reads the record of `owner_uid`.
    fn load(
        &self,
        owner_uid: &str,
    ) -> impl Future<Output = Result<IntentRecord, IntentStoreError>> + Send;
    /// Stores a create intent at `at` (before the POST).
    fn record_intent(
        &self,
        owner_uid: &str,
        at: SystemTime,
    ) -> impl Future<Output = Result<(), IntentStoreError>> + Send;
    /// Stores the droplet id (right after the create response, or on adoption).
    fn record_droplet_id(
        &self,
        owner_uid: &str,
        droplet_id: u64,
    ) -> impl Future<Output = Result<(), IntentStoreError>> + Send;
}

/// An in-memory [`IntentStore`] for tests (survives a simulated crash when kept by the test).
#[derive(Debug, Default)]
pub struct InMemoryIntentStore {
    records: Mutex<HashMap<String, IntentRecord>>,
}

impl InMemoryIntentStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn update(&self, owner_uid: &str, change: impl FnOnce(&mut IntentRecord)) {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        change(records.entry(owner_uid.to_owned()).or_default());
    }
}

impl IntentStore for InMemoryIntentStore {
    async fn load(&self, owner_uid: &str) -> Result<IntentRecord, IntentStoreError> {
        let records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(records.get(owner_uid).copied().unwrap_or_default())
    }

    async fn record_intent(&self, owner_uid: &str, at: SystemTime) -> Result<(), IntentStoreError> {
        self.update(owner_uid, |r| r.intent_at = Some(at));
        Ok(())
    }

    async fn record_droplet_id(
        &self,
        owner_uid: &str,
        droplet_id: u64,
    ) -> Result<(), IntentStoreError> {
        self.update(owner_uid, |r| r.droplet_id = Some(droplet_id));
        Ok(())
    }
}

/// The next step for one owner, decided from what is stored and what DigitalOcean lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateDecision {
    /// A droplet carries the owner tag: use it; delete the duplicates (if any).
    Adopt {
        /// The droplet to keep (oldest `created_at`, then lowest id).
        keep: u64,
        /// Duplicates to delete.
        duplicates: Vec<u64>,
    },
    /// A create was intended recently and may still be hidden by list lag: look again later.
    WaitForListLag {
        /// How long until the grace period ends.
        retry_after: Duration,
    },
    /// Nothing exists and no recent intent: record an intent and create.
    Create,
}

/// Decides between adopt, wait and create (pure).
pub fn decide(
    record: &IntentRecord,
    tagged: &[Droplet],
    now: SystemTime,
    grace: Duration,
) -> CreateDecision {
    if !tagged.is_empty() {
        let mut sorted: Vec<&Droplet> = tagged.iter().collect();
        // RFC 3339 with the same format sorts lexically; the id breaks ties.
        sorted.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        let keep = sorted[0].id;
        let duplicates = sorted[1..].iter().map(|d| d.id).collect();
        return CreateDecision::Adopt { keep, duplicates };
    }
    if let Some(intent_at) = record.intent_at {
        let age = now.duration_since(intent_at).unwrap_or_default();
        if age < grace {
            return CreateDecision::WaitForListLag {
                retry_after: grace - age,
            };
        }
    }
    CreateDecision::Create
}

/// What the operator wants created for one owner.
#[derive(Debug, Clone)]
pub struct ProvisionRequest {
    /// The owner object's UID (the identity).
    pub owner_uid: String,
    /// The create body; `ensure_droplet` adds the owner tag to its tags.
    pub create: DropletCreateRequest,
    /// How long list lag may hide a fresh droplet.
    pub list_lag_grace: Duration,
}

/// The result of one [`ensure_droplet`] pass.
#[derive(Debug, Clone, PartialEq)]
pub enum EnsureOutcome {
    /// The known droplet still exists.
    Existing(Droplet),
    /// A droplet carrying the owner tag was adopted (after a crash, or a lost id).
    Adopted {
        /// The droplet kept.
        droplet: Droplet,
        /// Duplicates that were deleted.
        deleted_duplicates: Vec<u64>,
    },
    /// A new droplet was created (202 accepted).
    Created(Droplet),
    /// A recent create may still be invisible: requeue after this long, do not create.
    Pending {
        /// When to look again.
        retry_after: Duration,
    },
}

/// Failures of [`ensure_droplet`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProvisionError {
    /// A DigitalOcean call failed. After a failed create the intent is recorded, so the next
    /// pass waits for the grace period and looks by tag instead of creating blindly.
    #[error("DigitalOcean call failed: {0}")]
    Cloud(#[from] CloudError),
    /// The intent store failed; nothing was created.
    #[error(transparent)]
    Store(#[from] IntentStoreError),
}

/// Makes sure exactly one droplet exists for `request.owner_uid`: get by the stored id, else
/// list by the owner tag and adopt, else (after any recent intent's grace) record an intent
/// and create. Safe to call again after a crash at any point.
pub async fn ensure_droplet<S: IntentStore>(
    client: &DoClient,
    store: &S,
    request: &ProvisionRequest,
) -> Result<EnsureOutcome, ProvisionError> {
    let uid = request.owner_uid.as_str();
    let tag = owner_tag(uid);
    let record = store.load(uid).await?;
    if let Some(id) = record.droplet_id {
        match client.get_droplet(id).await {
            Ok(droplet) => return Ok(EnsureOutcome::Existing(droplet)),
            // Only a 404 means gone; fall through to the tag lookup.
            Err(CloudError::NotFound(_)) => {}
            Err(other) => return Err(other.into()),
        }
    }
    let tagged = client.list_droplets_by_tag(&tag).await?;
    let now = SystemTime::from(client.clock().now());
    match decide(&record, &tagged, now, request.list_lag_grace) {
        CreateDecision::Adopt { keep, duplicates } => {
            store.record_droplet_id(uid, keep).await?;
            for duplicate in &duplicates {
                client.delete_droplet(*duplicate).await?;
            }
            let droplet = tagged
                .into_iter()
                .find(|d| d.id == keep)
                .ok_or_else(|| IntentStoreError("adopted droplet vanished from the list".into()))?;
            Ok(EnsureOutcome::Adopted {
                droplet,
                deleted_duplicates: duplicates,
            })
        }
        CreateDecision::WaitForListLag { retry_after } => {
            Ok(EnsureOutcome::Pending { retry_after })
        }
        CreateDecision::Create => {
            store.record_intent(uid, now).await?;
            let mut create = request.create.clone();
            if !create.tags.iter().any(|t| t == &tag) {
                create.tags.push(tag);
            }
            let response = client.create_droplet(&create).await?;
            store.record_droplet_id(uid, response.droplet.id).await?;
            Ok(EnsureOutcome::Created(response.droplet))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn tags_and_names_are_legal_and_deterministic() {
        let uid = "6F9619FF-8B86-D011-B42D-00C04FC964FF";
        assert_eq!(
            owner_tag(uid),
            "mcp-droplet-operator:uid:6f9619ff-8b86-d011-b42d-00c04fc964ff"
        );
        let name = droplet_name("team_a", "GitHub.Server", uid);
        assert_eq!(name, "mcp-team-a-github-server-6f9619ff");
        assert_eq!(name, droplet_name("team_a", "GitHub.Server", uid));
    }

    #[test]
    fn recent_intent_without_droplet_waits() {
        let record = IntentRecord {
            intent_at: Some(at(100)),
            droplet_id: None,
        };
        assert_eq!(
            decide(&record, &[], at(130), Duration::from_secs(90)),
            CreateDecision::WaitForListLag {
                retry_after: Duration::from_secs(60)
            }
        );
        assert_eq!(
            decide(&record, &[], at(190), Duration::from_secs(90)),
            CreateDecision::Create
        );
    }

    #[test]
    fn orphans_are_old_droplets_whose_owner_is_gone() {
        let sample: Droplet = serde_json::from_value(serde_json::json!({
            "id": 1, "name": "a", "memory": 1024, "vcpus": 1, "disk": 25, "locked": false,
            "status": "active", "created_at": "1970-01-01T00:01:40Z",
            "image": {"id": 1}, "size_slug": "s-1vcpu-1gb",
            "size": {"slug": "s-1vcpu-1gb", "memory": 1024, "vcpus": 1, "disk": 25,
                     "transfer": 1.0, "price_monthly": 6.0, "price_hourly": 0.00893,
                     "regions": [], "available": true},
            "networks": {"v4": [], "v6": []},
            "region": {"name": "New York 3", "slug": "nyc3", "available": true},
            "tags": [owner_tag("live-uid")]
        }))
        .expect("droplet");
        let mut orphan = sample.clone();
        orphan.id = 2;
        orphan.tags = vec![owner_tag("gone-uid")];
        let mut young = orphan.clone();
        young.id = 3;
        young.created_at = "1970-01-01T00:04:00Z".to_owned();
        let mut untagged = orphan.clone();
        untagged.id = 4;
        untagged.tags = Vec::new();
        let live = ["live-uid".to_owned()].into_iter().collect();
        assert_eq!(owner_uid_of(&sample), Some("live-uid"));
        assert_eq!(
            find_orphans(
                &[sample, orphan, young, untagged],
                &live,
                at(300),
                Duration::from_secs(120)
            ),
            vec![2]
        );
    }

    #[test]
    fn no_intent_creates() {
        assert_eq!(
            decide(&IntentRecord::default(), &[], at(0), DEFAULT_LIST_LAG_GRACE),
            CreateDecision::Create
        );
    }
}
