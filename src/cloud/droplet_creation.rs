//! Idempotent droplet creation across operator crashes and DigitalOcean's lag (research 9.4).
//!
//! DigitalOcean accepts duplicate names and has no idempotency key, so identity is a tag that
//! carries the owner's Kubernetes UID. Before the POST an intent marker is stored (the
//! controller implements [`IntentStore`] with an annotation); after a crash the next pass lists
//! by that tag, adopts what it finds, and creates again only once the list lag grace period
//! has passed since the marker. The decision is the pure [`decide_creation`]; its rules:
//!
//! - **The recorded id wins.** When the stored droplet is seen (by GET, or in the tag list when
//!   a GET 404s transiently), it is kept and every other droplet carrying the owner tag is a
//!   duplicate to delete, older or not (decision 0204).
//! - **No create while the recorded droplet may still appear.** A recorded droplet that was
//!   never seen may be hidden by list and GET lag: nothing is created (or adopted, or deleted)
//!   until `visibility_horizon` has passed since the intent. One that was seen and is now
//!   missing from both GET and the list is gone.
//! - **Leaks are looked for.** For `leak_watch` after an intent every pass also lists by the
//!   owner tag, so a droplet that shows up late beside the recorded one is deleted; later the
//!   orphan sweep (`cloud::orphan_sweep`) catches it.

use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use clock::Timestamp;

use crate::cloud::client::{DoClient, distinct_droplets};
use crate::cloud::droplet_tags::{cluster_tag, owner_tag};
use crate::cloud::error::CloudError;
use crate::cloud::models::{Droplet, DropletCreateRequest};

/// Default time a droplet may stay invisible to list-by-tag after its create.
pub const DEFAULT_LIST_LAG_GRACE: Duration = Duration::from_secs(90);

/// The first look again while a droplet may still appear (list or GET lag). The waits then
/// double (the time waited so far), up to the grace or horizon: a droplet whose create was
/// committed but answered with an error is usually listed within seconds, and is adopted then
/// instead of at the end of the grace, for a handful of list calls per such droplet.
pub const FIRST_LOOK_AGAIN: Duration = Duration::from_secs(5);

/// When to look again after `waited` of a wait that ends after `remaining` more: after as long
/// as was waited so far (at least [`FIRST_LOOK_AGAIN`]), never past the end of the wait.
fn look_again(waited: Duration, remaining: Duration) -> Duration {
    remaining.min(waited.max(FIRST_LOOK_AGAIN))
}

/// How long the timing rules wait; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreationTiming {
    /// After an intent without a recorded id, how long an empty tag list is not trusted.
    pub list_lag_grace: Duration,
    /// After an intent, how long a recorded droplet never seen may still appear.
    pub visibility_horizon: Duration,
    /// After an intent, how long every pass also lists by the owner tag to find leaks.
    pub leak_watch: Duration,
}

impl Default for CreationTiming {
    /// 90 s grace, 15 min horizon, 1 h leak watch.
    fn default() -> Self {
        Self {
            list_lag_grace: DEFAULT_LIST_LAG_GRACE,
            visibility_horizon: Duration::from_secs(15 * 60),
            leak_watch: Duration::from_secs(3600),
        }
    }
}

/// What the store knows about one owner's droplet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IntentRecord {
    /// When a create was last intended (marker written before the POST).
    pub intent_at: Option<Timestamp>,
    /// The droplet id, once known.
    pub droplet_id: Option<u64>,
    /// Whether the recorded droplet has been seen by a GET or a list since it was recorded
    /// (until then, lag may hide it).
    pub observed: bool,
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
        at: Timestamp,
    ) -> impl Future<Output = Result<(), IntentStoreError>> + Send;
    /// Stores the droplet id (right after the create response, or on adoption); `observed`
    /// says whether it was seen by a GET or a list (an adopted one was).
    fn record_droplet_id(
        &self,
        owner_uid: &str,
        droplet_id: u64,
        observed: bool,
    ) -> impl Future<Output = Result<(), IntentStoreError>> + Send;
}

/// An in-memory [`IntentStore`] for tests (survives a simulated crash when kept by the test).
#[derive(Debug, Default)]
pub struct InMemoryIntentStore {
    records: Mutex<std::collections::HashMap<String, IntentRecord>>,
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

    async fn record_intent(&self, owner_uid: &str, at: Timestamp) -> Result<(), IntentStoreError> {
        self.update(owner_uid, |r| r.intent_at = Some(at));
        Ok(())
    }

    async fn record_droplet_id(
        &self,
        owner_uid: &str,
        droplet_id: u64,
        observed: bool,
    ) -> Result<(), IntentStoreError> {
        self.update(owner_uid, |r| {
            r.droplet_id = Some(droplet_id);
            r.observed = observed;
        });
        Ok(())
    }
}

/// What a GET of the recorded droplet found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RecordedLookup<'a> {
    /// No droplet id is recorded.
    NoneRecorded,
    /// The GET answered with the droplet.
    Found(&'a Droplet),
    /// The GET answered 404 (gone, or not visible yet).
    NotFound,
}

/// The next step for one owner, decided from what is stored and what DigitalOcean shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreationDecision {
    /// Keep this droplet; delete the duplicates (if any).
    Keep {
        /// The droplet to keep.
        keep: u64,
        /// Other droplets carrying the owner tag, to delete.
        duplicates: Vec<u64>,
        /// True when `keep` is not the recorded id (adopted after a crash or a loss).
        adopted: bool,
    },
    /// A droplet may still appear (list or GET lag): look again later, change nothing.
    Wait {
        /// When to look again.
        retry_after: Duration,
    },
    /// Nothing exists and nothing may still appear: record an intent and create.
    Create,
}

/// Decides between keep, wait and create (pure); see the module documentation for the rules.
pub fn decide_creation(
    record: &IntentRecord,
    recorded: RecordedLookup<'_>,
    tagged: &[Droplet],
    now: Timestamp,
    timing: &CreationTiming,
) -> CreationDecision {
    let mut tagged_ids: Vec<(String, u64)> = tagged
        .iter()
        .map(|d| (d.created_at.clone(), d.id))
        .collect();
    // RFC 3339 with one format sorts lexically; the id breaks ties; an id listed on two pages
    // counts once.
    tagged_ids.sort();
    tagged_ids.dedup_by_key(|(_, id)| *id);
    let since_intent = record.intent_at.map(|at| clock::elapsed(at, now));
    if let Some(id) = record.droplet_id {
        let seen = matches!(recorded, RecordedLookup::Found(d) if d.id == id)
            || tagged_ids.iter().any(|(_, t)| *t == id);
        if seen {
            return CreationDecision::Keep {
                keep: id,
                duplicates: tagged_ids
                    .iter()
                    .map(|(_, t)| *t)
                    .filter(|t| *t != id)
                    .collect(),
                adopted: false,
            };
        }
        if !record.observed {
            let waited = since_intent.unwrap_or(Duration::ZERO);
            if waited < timing.visibility_horizon {
                return CreationDecision::Wait {
                    retry_after: look_again(waited, timing.visibility_horizon - waited)
                        .min(timing.list_lag_grace),
                };
            }
        }
        // The recorded droplet is gone: fall through as if nothing were recorded.
    }
    if let Some(((_, keep), rest)) = tagged_ids.split_first() {
        return CreationDecision::Keep {
            keep: *keep,
            duplicates: rest.iter().map(|(_, id)| *id).collect(),
            adopted: true,
        };
    }
    if let Some(waited) = since_intent
        && waited < timing.list_lag_grace
        && record.droplet_id.is_none()
    {
        return CreationDecision::Wait {
            retry_after: look_again(waited, timing.list_lag_grace - waited),
        };
    }
    CreationDecision::Create
}

/// What the operator wants created for one owner.
#[derive(Debug, Clone)]
pub struct CreationRequest {
    /// The owner object's UID (the identity).
    pub owner_uid: String,
    /// The installation's cluster id (for the cluster tag the orphan sweep lists by).
    pub cluster_id: String,
    /// The create body; [`ensure_droplet`] adds the owner and cluster tags to its tags.
    pub create: DropletCreateRequest,
    /// Timing rules.
    pub timing: CreationTiming,
}

/// The result of one [`ensure_droplet`] pass.
#[derive(Debug, Clone, PartialEq)]
pub enum EnsureOutcome {
    /// The recorded droplet exists (duplicates carrying its owner tag were deleted).
    Existing {
        /// The droplet.
        droplet: Droplet,
        /// Duplicates that were deleted.
        deleted_duplicates: Vec<u64>,
    },
    /// A droplet carrying the owner tag was adopted (after a crash, or a lost id).
    Adopted {
        /// The droplet kept.
        droplet: Droplet,
        /// Duplicates that were deleted.
        deleted_duplicates: Vec<u64>,
    },
    /// A new droplet was created (202 accepted).
    Created(Droplet),
    /// A droplet may still appear: requeue after this long; nothing was created or deleted.
    Pending {
        /// When to look again.
        retry_after: Duration,
    },
}

/// Failures of [`ensure_droplet`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum CreationError {
    /// A DigitalOcean call failed. After a failed create the intent is recorded, so the next
    /// pass waits for the grace period and looks by tag instead of creating blindly.
    #[error("DigitalOcean call failed: {0}")]
    Cloud(#[from] CloudError),
    /// The intent store failed; nothing was created.
    #[error(transparent)]
    Store(#[from] IntentStoreError),
}

/// Makes sure exactly one droplet exists for `request.owner_uid`, carrying the owner and the
/// cluster tag: get by the stored id, list by the owner tag when needed, then keep (and delete
/// duplicates), wait, or record an intent and create. Safe to call again after a crash at any
/// point.
pub async fn ensure_droplet<S: IntentStore>(
    client: &DoClient,
    store: &S,
    request: &CreationRequest,
) -> Result<EnsureOutcome, CreationError> {
    let uid = request.owner_uid.as_str();
    let owner = owner_tag(uid);
    let cluster = cluster_tag(&request.cluster_id);
    let record = store.load(uid).await?;
    let fetched = match record.droplet_id {
        None => None,
        Some(id) => match client.get_droplet(id).await {
            Ok(droplet) => Some(Ok(droplet)),
            // Only a 404 says "not there (yet)"; any other failure stops the pass.
            Err(CloudError::NotFound(_)) => Some(Err(())),
            Err(other) => return Err(other.into()),
        },
    };
    let lookup = match &fetched {
        None => RecordedLookup::NoneRecorded,
        Some(Ok(droplet)) => RecordedLookup::Found(droplet),
        Some(Err(())) => RecordedLookup::NotFound,
    };
    let now = client.clock().now();
    let watching = record
        .intent_at
        .is_some_and(|at| clock::elapsed(at, now) < request.timing.leak_watch);
    let tagged = if matches!(lookup, RecordedLookup::Found(_)) && !watching {
        Vec::new()
    } else {
        distinct_droplets(client.list_droplets_by_tag(&owner).await?)
    };
    match decide_creation(&record, lookup, &tagged, now, &request.timing) {
        CreationDecision::Keep {
            keep,
            duplicates,
            adopted,
        } => {
            let droplet = match (&fetched, tagged.iter().find(|d| d.id == keep)) {
                (Some(Ok(d)), _) if d.id == keep => d.clone(),
                (_, Some(listed)) => listed.clone(),
                _ => client.get_droplet(keep).await?,
            };
            if adopted || !record.observed {
                store.record_droplet_id(uid, keep, true).await?;
            }
            for duplicate in &duplicates {
                tracing::warn!(
                    owner = uid,
                    keep,
                    duplicate,
                    "deleting a duplicate droplet of one owner"
                );
                client.delete_droplet(*duplicate).await?;
            }
            // A restored or adopted droplet may miss a tag (a new UID, another cluster).
            for tag in [&owner, &cluster] {
                if !droplet.tags.iter().any(|t| t == tag) {
                    client.tag_droplet(keep, tag).await?;
                }
            }
            Ok(if adopted {
                EnsureOutcome::Adopted {
                    droplet,
                    deleted_duplicates: duplicates,
                }
            } else {
                EnsureOutcome::Existing {
                    droplet,
                    deleted_duplicates: duplicates,
                }
            })
        }
        CreationDecision::Wait { retry_after } => Ok(EnsureOutcome::Pending { retry_after }),
        CreationDecision::Create => {
            store.record_intent(uid, now).await?;
            let mut create = request.create.clone();
            for tag in [owner, cluster] {
                if !create.tags.contains(&tag) {
                    create.tags.push(tag);
                }
            }
            let response = client.create_droplet(&create).await?;
            store
                .record_droplet_id(uid, response.droplet.id, false)
                .await?;
            Ok(EnsureOutcome::Created(response.droplet))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Timestamp {
        clock::add(Timestamp::UNIX_EPOCH, Duration::from_secs(secs))
    }

    fn droplet(id: u64, created_secs: u64) -> Droplet {
        serde_json::from_value(serde_json::json!({
            "id": id,
            "name": format!("d{id}"),
            "status": "active",
            "created_at": at(created_secs).strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        }))
        .expect("droplet")
    }

    fn timing() -> CreationTiming {
        CreationTiming::default()
    }

    #[test]
    fn recent_intent_without_droplet_waits() {
        let record = IntentRecord {
            intent_at: Some(at(100)),
            ..IntentRecord::default()
        };
        let none = RecordedLookup::NoneRecorded;
        // Looks again soon after the intent, then after as long as it waited, and never past
        // the end of the grace.
        for (now, retry_after) in [(100, 5), (102, 5), (130, 30), (160, 30), (185, 5)] {
            assert_eq!(
                decide_creation(&record, none, &[], at(now), &timing()),
                CreationDecision::Wait {
                    retry_after: Duration::from_secs(retry_after)
                },
                "{}s after the intent",
                now - 100
            );
        }
        assert_eq!(
            decide_creation(&record, none, &[], at(190), &timing()),
            CreationDecision::Create
        );
    }

    #[test]
    fn no_intent_creates() {
        assert_eq!(
            decide_creation(
                &IntentRecord::default(),
                RecordedLookup::NoneRecorded,
                &[],
                at(0),
                &timing()
            ),
            CreationDecision::Create
        );
    }

    #[test]
    fn the_recorded_id_wins_over_an_older_leaked_droplet() {
        let leaked = droplet(1, 100);
        let recorded = droplet(2, 200);
        let record = IntentRecord {
            intent_at: Some(at(190)),
            droplet_id: Some(2),
            observed: true,
        };
        // The GET of the recorded droplet 404s transiently; the list shows both.
        assert_eq!(
            decide_creation(
                &record,
                RecordedLookup::NotFound,
                &[leaked.clone(), recorded.clone(), leaked],
                at(300),
                &timing()
            ),
            CreationDecision::Keep {
                keep: 2,
                duplicates: vec![1],
                adopted: false
            }
        );
    }

    #[test]
    fn a_recorded_droplet_never_seen_blocks_creates_and_deletes_until_the_horizon() {
        let leaked = droplet(1, 100);
        let record = IntentRecord {
            intent_at: Some(at(200)),
            droplet_id: Some(2),
            observed: false,
        };
        // Past the list lag grace, but the recorded droplet may still appear: no create, and
        // the other droplet is not adopted in its place.
        for listed in [vec![], vec![leaked.clone()]] {
            assert!(matches!(
                decide_creation(
                    &record,
                    RecordedLookup::NotFound,
                    &listed,
                    at(500),
                    &timing()
                ),
                CreationDecision::Wait { .. }
            ));
        }
        // Past the horizon it is gone: adopt what carries the tag, else create.
        let late = at(200 + 15 * 60);
        assert_eq!(
            decide_creation(
                &record,
                RecordedLookup::NotFound,
                std::slice::from_ref(&leaked),
                late,
                &timing()
            ),
            CreationDecision::Keep {
                keep: 1,
                duplicates: vec![],
                adopted: true
            }
        );
        assert_eq!(
            decide_creation(&record, RecordedLookup::NotFound, &[], late, &timing()),
            CreationDecision::Create
        );
    }

    #[test]
    fn a_seen_droplet_missing_from_get_and_list_is_gone() {
        let record = IntentRecord {
            intent_at: Some(at(0)),
            droplet_id: Some(2),
            observed: true,
        };
        assert_eq!(
            decide_creation(&record, RecordedLookup::NotFound, &[], at(60), &timing()),
            CreationDecision::Create
        );
    }

    #[test]
    fn without_a_record_the_oldest_tagged_droplet_is_kept() {
        assert_eq!(
            decide_creation(
                &IntentRecord::default(),
                RecordedLookup::NoneRecorded,
                &[droplet(9, 300), droplet(4, 100), droplet(7, 100)],
                at(400),
                &timing()
            ),
            CreationDecision::Keep {
                keep: 4,
                duplicates: vec![7, 9],
                adopted: true
            }
        );
    }
}
