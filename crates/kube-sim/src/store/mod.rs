//! The in-memory object store and the write semantics of the API server: resourceVersion,
//! uid, generation, status subresource, admission (validation, defaults, pruning), finalizers,
//! and the change history that watches read.
//!
//! [`State`] and its request types live here; each concern is a submodule that adds methods
//! to it. The garbage collector (`crate::gc`) decides on a read-only view, and
//! `garbage_collection` applies its decisions, so gc never reaches into the store.

mod admission;
mod builtin_objects;
mod crd;
mod delete;
mod garbage_collection;
mod history;
mod list;
mod metadata_validation;
mod server_side_apply;
mod write;

pub use crate::object_metadata::{name_of, namespace_of};
pub use builtin_objects::ROOT_CA_CONFIGMAP;

use crate::resources::{Registry, ResourceInfo, TypeKey};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use jiff::Timestamp;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::broadcast;

/// Kind of change, as in watch events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    /// Object created.
    Added,
    /// Object changed.
    Modified,
    /// Object removed.
    Deleted,
}

impl ChangeType {
    /// Watch event type string.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Added => "ADDED",
            ChangeType::Modified => "MODIFIED",
            ChangeType::Deleted => "DELETED",
        }
    }
}

/// One committed change, kept in the bounded history and broadcast to watchers.
#[derive(Debug, Clone)]
pub struct Change {
    /// resourceVersion of the change.
    pub rv: u64,
    /// Type of the changed object.
    pub key: TypeKey,
    /// Namespace ("" for cluster-scoped).
    pub namespace: String,
    /// What happened.
    pub change: ChangeType,
    /// The object after the change (the last state for deletions).
    pub object: Arc<Value>,
    /// The object before the change (for selector transitions).
    pub old: Option<Arc<Value>>,
}

/// How unknown fields are treated (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Drop silently.
    Ignore,
    /// Drop and warn (the server default).
    #[default]
    Warn,
    /// Reject with 400.
    Strict,
}

/// Options common to writes.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `fieldManager`.
    pub manager: String,
    /// `dryRun=All`: run admission, do not persist.
    pub dry_run: bool,
    /// `fieldValidation`.
    pub validation: FieldValidation,
    /// `force` (server-side apply).
    pub force: bool,
}

/// The result of a successful write.
#[derive(Debug, Clone)]
pub struct WriteOutcome {
    /// The object as stored (or as it would be, for dry runs).
    pub object: Value,
    /// `Warning` headers to send.
    pub warnings: Vec<String>,
    /// True when the write created the object (201).
    pub created: bool,
}

/// DeleteOptions from the request body or query.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// `Background`, `Foreground` or `Orphan`.
    pub propagation: Option<String>,
    /// Precondition on uid.
    pub precondition_uid: Option<String>,
    /// Precondition on resourceVersion.
    pub precondition_rv: Option<String>,
    /// Dry run.
    pub dry_run: bool,
}

/// A list query.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Namespace, or all namespaces.
    pub namespace: Option<String>,
    /// Parsed label selector.
    pub labels: Option<LabelSelector>,
    /// Parsed field selector.
    pub fields: Option<FieldSelector>,
    /// Page size.
    pub limit: Option<usize>,
    /// Continue token from a previous page.
    pub continue_token: Option<String>,
}

/// A page of a list.
#[derive(Debug, Clone)]
pub struct ListPage {
    /// Matching objects in (namespace, name) order.
    pub items: Vec<Arc<Value>>,
    /// resourceVersion of the list.
    pub rv: u64,
    /// Token for the next page.
    pub continue_token: Option<String>,
    /// Objects left after this page.
    pub remaining: Option<usize>,
}

type Bucket = BTreeMap<(String, String), Arc<Value>>;

/// All server state. Guarded by one mutex in the server; methods never await.
pub struct State {
    /// Served types.
    pub registry: Registry,
    objects: HashMap<TypeKey, Bucket>,
    rv: u64,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    tx: broadcast::Sender<Arc<Change>>,
    gc_pending: bool,
    /// uid → object, for owner lookups.
    uid_index: HashMap<String, ObjKey>,
    /// Objects that have ownerReferences (the only candidates for collection).
    with_owners: BTreeSet<ObjKey>,
    /// Objects with a deletionTimestamp (foreground owners, terminating namespaces, CRDs).
    deleting: BTreeSet<ObjKey>,
    /// Bumped on every change to an `rbac.authorization.k8s.io` object, so the authorizer
    /// recompiles its policy only when roles or bindings changed.
    rbac_generation: u64,
}

/// Identifies one stored object: type, namespace, name.
pub type ObjKey = (TypeKey, String, String);

pub use crate::gc::{
    CRD_CLEANUP_FINALIZER, FOREGROUND_FINALIZER, crd_key, owner_uids, remove_owner_refs,
};

impl State {
    /// A store with the built-in kinds and the default namespaces.
    pub fn new(history_limit: usize, now: Timestamp) -> Self {
        let (tx, _) = broadcast::channel(4096);
        let mut s = State {
            registry: Registry::with_builtins(),
            objects: HashMap::new(),
            rv: 0,
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            tx,
            gc_pending: false,
            uid_index: HashMap::new(),
            with_owners: BTreeSet::new(),
            deleting: BTreeSet::new(),
            rbac_generation: 0,
        };
        s.create_builtin_namespaces(now);
        s
    }

    /// Number of objects stored (all types).
    pub fn object_count(&self) -> usize {
        self.objects.values().map(BTreeMap::len).sum()
    }

    fn bucket(&self, key: &TypeKey) -> Option<&Bucket> {
        self.objects.get(key)
    }

    /// Changes with every write to a Role, ClusterRole, RoleBinding or ClusterRoleBinding.
    pub fn rbac_generation(&self) -> u64 {
        self.rbac_generation
    }

    /// Reads one object.
    pub fn get(&self, info: &ResourceInfo, ns: &str, name: &str) -> Result<Arc<Value>, ApiError> {
        self.bucket(&info.key())
            .and_then(|b| b.get(&(ns.to_string(), name.to_string())))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&info.group, &info.plural, name))
    }
}
