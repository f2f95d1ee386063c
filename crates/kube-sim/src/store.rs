//! The in-memory object store and the write semantics of the API server: resourceVersion,
//! uid, generation, status subresource, admission (validation, defaults, pruning), finalizers,
//! and the change history that watches read.

use crate::apply::{self, ListRules, WriteContext};
use crate::patch::{self, PatchKind};
use crate::resources::{Registry, ResourceInfo, TypeKey};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::{ApiError, Cause};
use jiff::Timestamp;
use serde_json::{Map, Value, json};
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
}

/// Identifies one stored object: type, namespace, name.
pub type ObjKey = (TypeKey, String, String);

fn ts(now: Timestamp) -> String {
    now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn meta_str<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get("metadata")?.get(field)?.as_str()
}

/// Name of an object.
pub fn name_of(v: &Value) -> &str {
    meta_str(v, "name").unwrap_or_default()
}

/// Namespace of an object ("" when cluster-scoped).
pub fn namespace_of(v: &Value) -> &str {
    meta_str(v, "namespace").unwrap_or_default()
}

fn finalizers(v: &Value) -> Vec<String> {
    v.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn set_meta(v: &mut Value, field: &str, value: Value) {
    if !v.get("metadata").is_some_and(Value::is_object) {
        v["metadata"] = json!({});
    }
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        if value.is_null() {
            m.remove(field);
        } else {
            m.insert(field.to_string(), value);
        }
    }
}

/// Everything but metadata and status: the part whose change bumps `generation`.
fn spec_part(v: &Value) -> Map<String, Value> {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The object with managedFields timestamps blanked: a write that changes nothing else is a
/// no-op, but a change of ownership is not.
fn without_managed_times(v: &Value) -> Value {
    let mut c = v.clone();
    if let Some(Value::Array(entries)) = c.pointer_mut("/metadata/managedFields") {
        for e in entries.iter_mut() {
            if let Some(m) = e.as_object_mut() {
                m.remove("time");
            }
        }
    }
    c
}

const DNS_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

fn is_dns_label(s: &str) -> bool {
    s.len() <= 63 && !s.contains('.') && is_dns_subdomain(s)
}

/// Random suffix for generateName, from the alphabet the real server uses.
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .take(5)
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect()
}

/// Parsed `?continue=` token: the resourceVersion of the first page and the last key served.
fn decode_continue(token: &str) -> Option<(u64, (String, String))> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    Some((
        v.get("rv")?.as_u64()?,
        (
            v.get("ns")?.as_str()?.to_string(),
            v.get("name")?.as_str()?.to_string(),
        ),
    ))
}

/// The ConfigMap every namespace of a real cluster gets.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
const ROOT_CA_DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// What the real server says when a continue token is older than the history it keeps.
const CONTINUE_TOO_OLD: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"rv": rv, "ns": ns, "name": name}).to_string())
}

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
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            if let Some(info) = s.registry.find("", "v1", "namespaces") {
                let obj =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
                let opts = WriteOptions {
                    manager: "kube-apiserver".into(),
                    ..Default::default()
                };
                // Built-in namespaces are always valid; a failure here would be a bug in the table.
                if let Err(e) = s.create(&info, "v1", None, obj, &opts, now) {
                    tracing::error!(error = %e, "creating built-in namespace failed");
                }
            }
        }
        s
    }

    /// Current (latest) resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    /// Oldest resourceVersion a watch can resume from (older ones get 410 Gone).
    pub fn oldest_watchable_rv(&self) -> u64 {
        self.history
            .front()
            .map(|c| c.rv.saturating_sub(1))
            .unwrap_or(self.rv)
    }

    /// Subscribes to new changes and returns the history strictly after `rv`.
    pub fn subscribe_from(&self, rv: u64) -> (broadcast::Receiver<Arc<Change>>, Vec<Arc<Change>>) {
        let rx = self.tx.subscribe();
        let past = self.history.iter().filter(|c| c.rv > rv).cloned().collect();
        (rx, past)
    }

    /// Number of objects stored (all types).
    pub fn object_count(&self) -> usize {
        self.objects.values().map(BTreeMap::len).sum()
    }

    fn bucket(&self, key: &TypeKey) -> Option<&Bucket> {
        self.objects.get(key)
    }

    /// Reads one object.
    pub fn get(&self, info: &ResourceInfo, ns: &str, name: &str) -> Result<Arc<Value>, ApiError> {
        self.bucket(&info.key())
            .and_then(|b| b.get(&(ns.to_string(), name.to_string())))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&info.group, &info.plural, name))
    }

    /// Lists objects of a type.
    pub fn list(&self, info: &ResourceInfo, q: &ListQuery) -> Result<ListPage, ApiError> {
        let token = match &q.continue_token {
            Some(t) => Some(decode_continue(t).ok_or_else(|| {
                ApiError::BadRequest("continue key is not valid: illegal base64 data".into())
            })?),
            None => None,
        };
        let empty = Bucket::new();
        let current = self.bucket(&info.key()).unwrap_or(&empty);
        // Every page shows the state at the first page's resourceVersion, as etcd's
        // snapshot reads do, so a paging reflector never misses a write made meanwhile.
        let (list_rv, start, snapshot) = match token {
            Some((rv, start)) if rv < self.rv => (
                rv,
                Some(start),
                Some(self.bucket_at(&info.key(), current, rv)?),
            ),
            Some((rv, start)) => (rv, Some(start), None),
            None => (self.rv, None, None),
        };
        let bucket = snapshot.as_ref().unwrap_or(current);
        let matching: Vec<&Arc<Value>> = bucket
            .iter()
            .filter(|((ns, name), obj)| {
                q.namespace.as_ref().is_none_or(|want| want == ns)
                    && start
                        .as_ref()
                        .is_none_or(|s| (ns.clone(), name.clone()) > *s)
                    && q.labels.as_ref().is_none_or(|l| l.matches(obj))
                    && q.fields.as_ref().is_none_or(|f| f.matches(obj))
            })
            .map(|(_, o)| o)
            .collect();
        let total = matching.len();
        let take = q.limit.filter(|l| *l > 0).unwrap_or(total).min(total);
        let items: Vec<Arc<Value>> = matching[..take].iter().map(|o| (*o).clone()).collect();
        let (continue_token, remaining) = match items.last() {
            Some(last) if take < total => (
                Some(encode_continue(list_rv, namespace_of(last), name_of(last))),
                Some(total - take),
            ),
            _ => (None, None),
        };
        Ok(ListPage {
            items,
            rv: list_rv,
            continue_token,
            remaining,
        })
    }

    /// The objects of one type as they were at `rv`: the current ones with every later
    /// change undone. 410 Gone when the history no longer reaches back that far.
    fn bucket_at(&self, key: &TypeKey, current: &Bucket, rv: u64) -> Result<Bucket, ApiError> {
        if rv < self.oldest_watchable_rv() {
            return Err(ApiError::Gone(CONTINUE_TOO_OLD.into()));
        }
        let mut bucket = current.clone();
        for change in self.history.iter().rev().take_while(|c| c.rv > rv) {
            if &change.key != key {
                continue;
            }
            let k = (
                change.namespace.clone(),
                name_of(&change.object).to_string(),
            );
            match (change.change, &change.old) {
                (ChangeType::Added, _) => {
                    bucket.remove(&k);
                }
                (_, Some(old)) => {
                    bucket.insert(k, old.clone());
                }
                (ChangeType::Deleted, None) => {
                    bucket.insert(k, change.object.clone());
                }
                (_, None) => {}
            }
        }
        Ok(bucket)
    }

    fn commit(
        &mut self,
        info: &ResourceInfo,
        mut obj: Value,
        change: ChangeType,
        old: Option<Arc<Value>>,
    ) -> Arc<Value> {
        self.rv += 1;
        set_meta(&mut obj, "resourceVersion", json!(self.rv.to_string()));
        let ns = namespace_of(&obj).to_string();
        let name = name_of(&obj).to_string();
        let obj = Arc::new(obj);
        let bucket = self.objects.entry(info.key()).or_default();
        let okey: ObjKey = (info.key(), ns.clone(), name.clone());
        match change {
            ChangeType::Deleted => {
                bucket.remove(&(ns.clone(), name));
                if let Some(uid) = meta_str(&obj, "uid") {
                    self.uid_index.remove(uid);
                }
                self.with_owners.remove(&okey);
                self.deleting.remove(&okey);
            }
            _ => {
                bucket.insert((ns.clone(), name), obj.clone());
                if let Some(uid) = meta_str(&obj, "uid") {
                    self.uid_index.insert(uid.to_string(), okey.clone());
                }
                let has_owners = obj
                    .get("metadata")
                    .and_then(|m| m.get("ownerReferences"))
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty());
                if has_owners {
                    self.with_owners.insert(okey.clone());
                } else {
                    self.with_owners.remove(&okey);
                }
                if obj
                    .get("metadata")
                    .and_then(|m| m.get("deletionTimestamp"))
                    .is_some()
                {
                    self.deleting.insert(okey);
                } else {
                    self.deleting.remove(&okey);
                }
            }
        }
        // Only changes that can make something collectable wake the collector.
        let refs = |o: &Value| o.pointer("/metadata/ownerReferences").cloned();
        let owners_changed =
            refs(&obj).is_some() && old.as_ref().map(|o| refs(o)) != Some(refs(&obj));
        if change == ChangeType::Deleted
            || owners_changed
            || obj.pointer("/metadata/deletionTimestamp").is_some()
        {
            self.gc_pending = true;
        }
        let c = Arc::new(Change {
            rv: self.rv,
            key: info.key(),
            namespace: ns,
            change,
            object: obj.clone(),
            old,
        });
        self.history.push_back(c.clone());
        while self.history.len() > self.history_limit {
            self.history.pop_front();
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(c);
        obj
    }

    fn check_namespace(
        &self,
        info: &ResourceInfo,
        ns: &str,
        creating: bool,
    ) -> Result<(), ApiError> {
        if !info.namespaced {
            return Ok(());
        }
        let Some(ns_info) = self.registry.find("", "v1", "namespaces") else {
            return Ok(());
        };
        match self.get(&ns_info, "", ns) {
            Err(_) => Err(ApiError::not_found("", "namespaces", ns)),
            Ok(n) if creating && n.pointer("/metadata/deletionTimestamp").is_some() => {
                Err(ApiError::Forbidden {
                    message: format!(
                        "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        info.plural, ""
                    ),
                    name: String::new(),
                    kind: info.plural.clone(),
                })
            }
            Ok(_) => Ok(()),
        }
    }

    /// Validates, defaults and finalises an object about to be written.
    #[allow(clippy::too_many_arguments)]
    fn admit(
        &self,
        info: &ResourceInfo,
        version: &str,
        old: Option<&Value>,
        mut new: Value,
        subresource: &str,
        opts: &WriteOptions,
        now: Timestamp,
        track_fields: bool,
    ) -> Result<(Value, Vec<String>), ApiError> {
        let api_version = info.api_version(version);
        let name = name_of(&new).to_string();
        if let Some(k) = new.get("kind").and_then(Value::as_str)
            && k != info.kind
        {
            return Err(ApiError::BadRequest(format!(
                "the object provided is unrecognized (must be of type {}): kind {k} does not match",
                info.kind
            )));
        }
        new["apiVersion"] = json!(api_version);
        new["kind"] = json!(info.kind);
        let has_status = info.has_status(version);
        if subresource == "status" {
            let Some(o) = old else {
                return Err(ApiError::not_found(&info.group, &info.plural, &name));
            };
            let status = new.get("status").cloned();
            let mut merged = o.clone();
            match status {
                Some(s) => merged["status"] = s,
                None => {
                    if let Some(m) = merged.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            if let Some(mf) = new.pointer("/metadata/managedFields") {
                set_meta(&mut merged, "managedFields", mf.clone());
            }
            new = merged;
        } else if has_status {
            match old.and_then(|o| o.get("status")) {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
        // System metadata is owned by the server.
        match old {
            Some(o) => {
                for f in [
                    "uid",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "generation",
                ] {
                    set_meta(
                        &mut new,
                        f,
                        o.pointer(&format!("/metadata/{f}"))
                            .cloned()
                            .unwrap_or(Value::Null),
                    );
                }
                if let Some(n) = meta_str(o, "name") {
                    set_meta(&mut new, "name", json!(n));
                }
            }
            None => {
                set_meta(&mut new, "uid", json!(uuid::Uuid::new_v4().to_string()));
                set_meta(&mut new, "creationTimestamp", json!(ts(now)));
                for f in [
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "resourceVersion",
                ] {
                    set_meta(&mut new, f, Value::Null);
                }
                if info.tracks_generation {
                    set_meta(&mut new, "generation", json!(1));
                } else {
                    set_meta(&mut new, "generation", Value::Null);
                }
            }
        }
        if !info.namespaced {
            set_meta(&mut new, "namespace", Value::Null);
        }
        let mut warnings = Vec::new();
        let mut causes: Vec<Cause> = Vec::new();
        let name_ok = if info.plural == "namespaces" {
            is_dns_label(&name)
        } else {
            is_dns_subdomain(&name)
        };
        if !name_ok {
            let msg = if info.plural == "namespaces" {
                DNS_LABEL_MSG
            } else {
                DNS_SUBDOMAIN_MSG
            };
            causes.push(Cause {
                reason: "FieldValueInvalid".into(),
                message: format!("Invalid value: {:?}: {msg}", name),
                field: "metadata.name".into(),
            });
        }
        causes.extend(validate_metadata(&new));
        if let Some(o) = old
            && info.group.is_empty()
            && matches!(info.plural.as_str(), "configmaps" | "secrets")
            && o.get("immutable").and_then(Value::as_bool) == Some(true)
        {
            for f in ["data", "binaryData", "immutable"] {
                if o.get(f) != new.get(f) {
                    causes.push(Cause {
                        reason: "FieldValueForbidden".into(),
                        message: "Forbidden: field is immutable when `immutable` is set".into(),
                        field: f.into(),
                    });
                }
            }
        }
        if info.custom
            && let Some(schema) = info.version(version).and_then(|v| v.schema.clone())
        {
            let unknown = crate::validation::prune(&mut new, &schema);
            if !unknown.is_empty() {
                match opts.validation {
                    FieldValidation::Strict => {
                        let list: Vec<String> = unknown
                            .iter()
                            .map(|u| format!("unknown field \"{u}\""))
                            .collect();
                        return Err(ApiError::BadRequest(format!(
                            "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                            info.kind,
                            api_version,
                            info.kind,
                            list.join(", ")
                        )));
                    }
                    FieldValidation::Warn => {
                        warnings.extend(unknown.iter().map(|u| format!("unknown field \"{u}\"")))
                    }
                    FieldValidation::Ignore => {}
                }
            }
            new = crate::validation::apply_defaults(&new, &schema);
            let mut schema_causes = Vec::new();
            crate::validation::validate(&new, &schema, "", &mut schema_causes);
            if schema_causes.is_empty() {
                let old_for_cel = if subresource == "status" || old.is_some() {
                    old
                } else {
                    None
                };
                schema_causes = crate::cel::evaluate(
                    &schema,
                    &new,
                    old_for_cel,
                    &crate::cel::RootKind {
                        api_version: &api_version,
                        group: &info.group,
                        kind: &info.kind,
                    },
                );
            }
            causes.extend(schema_causes);
        }
        if info.key() == crd_key()
            && let Err(e) = crate::resources::resource_from_crd(&new)
        {
            let crate::resources::CrdError::Field { field, message } = e;
            causes.push(Cause {
                reason: "FieldValueInvalid".into(),
                message,
                field,
            });
        }
        if info.key() == crd_key() && subresource != "status" {
            causes.extend(crate::cel_cost::crd_cost_causes(&new, old));
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(&info.group, &info.kind, &name, causes));
        }
        if info.tracks_generation
            && let Some(o) = old
            && spec_part(o) != spec_part(&new)
        {
            let g = o
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            set_meta(&mut new, "generation", json!(g + 1));
        }
        if info.plural == "secrets" && info.group.is_empty() {
            default_secret(&mut new);
        }
        if info.plural == "namespaces" {
            if old.is_none() {
                new["spec"] = json!({"finalizers": ["kubernetes"]});
                new["status"] = json!({"phase": "Active"});
            }
            let mut labels = new
                .pointer("/metadata/labels")
                .cloned()
                .unwrap_or_else(|| json!({}));
            labels["kubernetes.io/metadata.name"] = json!(name);
            set_meta(&mut new, "labels", labels);
        }
        if info.key() == crd_key() {
            if old.is_none() {
                let mut f = finalizers(&new);
                if !f.iter().any(|x| x == CRD_CLEANUP_FINALIZER) {
                    f.push(CRD_CLEANUP_FINALIZER.into());
                }
                set_meta(&mut new, "finalizers", json!(f));
            }
            new["status"] = crd_status(&new, now);
        }
        if track_fields {
            let schema = info.version(version).and_then(|v| v.schema.as_ref());
            apply::record_update(
                old,
                &mut new,
                &WriteContext {
                    manager: &opts.manager,
                    api_version: &api_version,
                    subresource,
                    now: &ts(now),
                    rules: ListRules {
                        schema,
                        builtin: !info.custom,
                    },
                },
            );
        }
        Ok((new, warnings))
    }

    /// Creates an object (POST). `ns` is the namespace from the URL.
    pub fn create(
        &mut self,
        info: &ResourceInfo,
        version: &str,
        ns: Option<&str>,
        mut obj: Value,
        opts: &WriteOptions,
        now: Timestamp,
    ) -> Result<WriteOutcome, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::BadRequest(
                "the body of the request was not an object".into(),
            ));
        }
        if let Some(ns) = ns {
            if let Some(body_ns) = meta_str(&obj, "namespace")
                && !body_ns.is_empty()
                && body_ns != ns
            {
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                ));
            }
            set_meta(&mut obj, "namespace", json!(ns));
        }
        let namespace = if info.namespaced {
            ns.unwrap_or("default").to_string()
        } else {
            String::new()
        };
        if info.namespaced {
            set_meta(&mut obj, "namespace", json!(namespace));
        }
        self.check_namespace(info, &namespace, true)?;
        if meta_str(&obj, "name").is_none_or(str::is_empty) {
            match meta_str(&obj, "generateName").map(str::to_string) {
                Some(prefix) if !prefix.is_empty() => {
                    let mut name = format!("{prefix}{}", random_suffix());
                    for _ in 0..8 {
                        if self.get(info, &namespace, &name).is_err() {
                            break;
                        }
                        name = format!("{prefix}{}", random_suffix());
                    }
                    set_meta(&mut obj, "name", json!(name));
                }
                _ => {
                    return Err(ApiError::invalid(
                        &info.group,
                        &info.kind,
                        "",
                        vec![Cause {
                            reason: "FieldValueRequired".into(),
                            message: "Required value: name or generateName is required".into(),
                            field: "metadata.name".into(),
                        }],
                    ));
                }
            }
        }
        let name = name_of(&obj).to_string();
        if self.get(info, &namespace, &name).is_ok() {
            return Err(ApiError::already_exists(&info.group, &info.plural, &name));
        }
        let (new, warnings) = self.admit(info, version, None, obj, "", opts, now, true)?;
        let object = if opts.dry_run {
            new
        } else {
            let stored = self.commit(info, new, ChangeType::Added, None);
            self.after_write(info, &stored);
            if info.group.is_empty() && info.plural == "namespaces" {
                self.publish_root_ca(&name, now);
            }
            (*stored).clone()
        };
        Ok(WriteOutcome {
            object,
            warnings,
            created: true,
        })
    }

    /// Replaces an object (PUT), on the main resource or the status subresource.
    #[allow(clippy::too_many_arguments)]
    pub fn update(
        &mut self,
        info: &ResourceInfo,
        version: &str,
        ns: &str,
        name: &str,
        mut obj: Value,
        subresource: &str,
        opts: &WriteOptions,
        now: Timestamp,
    ) -> Result<WriteOutcome, ApiError> {
        let old = self.get(info, ns, name)?;
        if let Some(body_name) = meta_str(&obj, "name")
            && body_name != name
        {
            return Err(ApiError::BadRequest(
                "the name of the object does not match the name on the URL".into(),
            ));
        }
        set_meta(&mut obj, "name", json!(name));
        if info.namespaced {
            set_meta(&mut obj, "namespace", json!(ns));
        }
        if let Some(rv) = meta_str(&obj, "resourceVersion")
            && !rv.is_empty()
            && Some(rv) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::stale(&info.group, &info.plural, name));
        }
        self.write_existing(info, version, &old, obj, subresource, opts, now, true)
    }

    #[allow(clippy::too_many_arguments)]
    fn write_existing(
        &mut self,
        info: &ResourceInfo,
        version: &str,
        old: &Arc<Value>,
        obj: Value,
        subresource: &str,
        opts: &WriteOptions,
        now: Timestamp,
        track_fields: bool,
    ) -> Result<WriteOutcome, ApiError> {
        let (mut new, warnings) = self.admit(
            info,
            version,
            Some(old),
            obj,
            subresource,
            opts,
            now,
            track_fields,
        )?;
        if old.pointer("/metadata/deletionTimestamp").is_some() {
            let added: Vec<String> = finalizers(&new)
                .into_iter()
                .filter(|f| !finalizers(old).contains(f))
                .collect();
            if !added.is_empty() {
                return Err(ApiError::invalid(
                    &info.group,
                    &info.kind,
                    name_of(old),
                    vec![Cause {
                        reason: "FieldValueForbidden".into(),
                        message: "Forbidden: no new finalizers can be added if the object is being deleted".into(),
                        field: "metadata.finalizers".into(),
                    }],
                ));
            }
        }
        set_meta(
            &mut new,
            "resourceVersion",
            old.pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(Value::Null),
        );
        if without_managed_times(&new) == without_managed_times(old) {
            // A no-op write is not persisted: no new resourceVersion, no watch event.
            return Ok(WriteOutcome {
                object: (**old).clone(),
                warnings,
                created: false,
            });
        }
        if opts.dry_run {
            return Ok(WriteOutcome {
                object: new,
                warnings,
                created: false,
            });
        }
        let deleting =
            new.pointer("/metadata/deletionTimestamp").is_some() && finalizers(&new).is_empty();
        let change = if deleting {
            ChangeType::Deleted
        } else {
            ChangeType::Modified
        };
        let stored = self.commit(info, new, change, Some(old.clone()));
        self.after_write(info, &stored);
        if deleting {
            self.gc_pending = true;
        }
        Ok(WriteOutcome {
            object: (*stored).clone(),
            warnings,
            created: false,
        })
    }

    /// Applies a patch of any kind, on the main resource or the status subresource.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        info: &ResourceInfo,
        version: &str,
        ns: &str,
        name: &str,
        kind: PatchKind,
        body: &Value,
        subresource: &str,
        opts: &WriteOptions,
        now: Timestamp,
    ) -> Result<WriteOutcome, ApiError> {
        let existing = self.get(info, ns, name);
        if kind == PatchKind::Apply {
            return self.server_side_apply(
                info,
                version,
                ns,
                name,
                existing.ok(),
                body,
                subresource,
                opts,
                now,
            );
        }
        let old = existing?;
        let mut target = (*old).clone();
        match kind {
            PatchKind::Merge => patch::merge_patch(&mut target, body),
            PatchKind::Json => {
                patch::json_patch(&mut target, body).map_err(|e| ApiError::Invalid {
                    message: e.to_string(),
                    name: name.to_string(),
                    group: info.group.clone(),
                    kind: info.kind.clone(),
                    causes: Vec::new(),
                })?
            }
            PatchKind::Strategic => {
                if info.custom {
                    return Err(ApiError::UnsupportedMediaType(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml".into(),
                    ));
                }
                patch::strategic_merge_patch(&mut target, body)
                    .map_err(|e| ApiError::BadRequest(e.to_string()))?
            }
            PatchKind::Apply => {}
        }
        if let Some(rv) = meta_str(&target, "resourceVersion")
            && Some(rv) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::stale(&info.group, &info.plural, name));
        }
        set_meta(&mut target, "name", json!(name));
        self.write_existing(info, version, &old, target, subresource, opts, now, true)
    }

    #[allow(clippy::too_many_arguments)]
    fn server_side_apply(
        &mut self,
        info: &ResourceInfo,
        version: &str,
        ns: &str,
        name: &str,
        existing: Option<Arc<Value>>,
        body: &Value,
        subresource: &str,
        opts: &WriteOptions,
        now: Timestamp,
    ) -> Result<WriteOutcome, ApiError> {
        if opts.manager.is_empty() {
            return Err(ApiError::BadRequest(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch".into(),
            ));
        }
        if meta_str(body, "name").is_some_and(|n| n != name) {
            return Err(ApiError::BadRequest(
                "the name of the object does not match the name on the URL".into(),
            ));
        }
        // A resourceVersion in the applied configuration is an optimistic-concurrency precondition.
        if let Some(rv) = meta_str(body, "resourceVersion").filter(|rv| !rv.is_empty())
            && existing
                .as_ref()
                .is_none_or(|o| meta_str(o, "resourceVersion") != Some(rv))
        {
            return Err(ApiError::stale(&info.group, &info.plural, name));
        }
        let api_version = info.api_version(version);
        let schema = info.version(version).and_then(|v| v.schema.as_ref());
        let now_s = ts(now);
        let req = apply::ApplyRequest {
            write: WriteContext {
                manager: &opts.manager,
                api_version: &api_version,
                subresource,
                now: &now_s,
                rules: ListRules {
                    schema,
                    builtin: !info.custom,
                },
            },
            force: opts.force,
        };
        let live = match &existing {
            Some(o) => (**o).clone(),
            None => {
                if subresource == "status" {
                    return Err(ApiError::not_found(&info.group, &info.plural, name));
                }
                let mut base = json!({"apiVersion": api_version, "kind": info.kind, "metadata": {"name": name}});
                if info.namespaced {
                    base["metadata"]["namespace"] = json!(ns);
                }
                base
            }
        };
        let mut applied = body.clone();
        if info.custom
            && let Some(s) = schema
        {
            // Unknown fields in an applied configuration are handled like in any other write.
            let unknown = crate::validation::prune(&mut applied, s);
            if !unknown.is_empty() && opts.validation == FieldValidation::Strict {
                let list: Vec<String> = unknown
                    .iter()
                    .map(|u| format!("unknown field \"{u}\""))
                    .collect();
                return Err(ApiError::BadRequest(format!(
                    "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                    info.kind,
                    api_version,
                    info.kind,
                    list.join(", ")
                )));
            }
        }
        let merged = apply::server_side_apply(&live, &applied, &req).map_err(|conflicts| {
            let causes: Vec<Cause> = conflicts
                .iter()
                .map(|c| Cause {
                    reason: "FieldManagerConflict".into(),
                    message: format!("conflict with \"{}\" using {}", c.manager, c.api_version),
                    field: c.field.clone(),
                })
                .collect();
            let lines: Vec<String> = causes
                .iter()
                .map(|c| format!("- {}: {}", c.message, c.field))
                .collect();
            let message = if causes.len() == 1 {
                format!(
                    "Apply failed with 1 conflict: {}: {}",
                    causes[0].message, causes[0].field
                )
            } else {
                format!(
                    "Apply failed with {} conflicts: {}",
                    causes.len(),
                    lines.join("\n")
                )
            };
            ApiError::Conflict {
                message,
                name: name.to_string(),
                group: info.group.clone(),
                kind: info.plural.clone(),
                causes,
            }
        })?;
        match existing {
            Some(old) => {
                self.write_existing(info, version, &old, merged, subresource, opts, now, false)
            }
            None => {
                let namespace = if info.namespaced {
                    ns.to_string()
                } else {
                    String::new()
                };
                self.check_namespace(info, &namespace, true)?;
                let (new, warnings) =
                    self.admit(info, version, None, merged, "", opts, now, false)?;
                let object = if opts.dry_run {
                    new
                } else {
                    let stored = self.commit(info, new, ChangeType::Added, None);
                    self.after_write(info, &stored);
                    (*stored).clone()
                };
                Ok(WriteOutcome {
                    object,
                    warnings,
                    created: true,
                })
            }
        }
    }

    /// Publishes the `kube-root-ca.crt` ConfigMap in a new namespace, as the controller
    /// manager's root-CA publisher does on a real cluster. kube-sim serves plain HTTP, so the
    /// bundle is empty; the object is there so that namespaces look like real ones.
    fn publish_root_ca(&mut self, namespace: &str, now: Timestamp) {
        let Some(cm) = self.registry.find("", "v1", "configmaps") else {
            return;
        };
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": ROOT_CA_CONFIGMAP, "namespace": namespace,
                "annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION}},
            "data": {"ca.crt": ""}});
        let opts = WriteOptions {
            manager: "kube-controller-manager".into(),
            ..Default::default()
        };
        if let Err(e) = self.create(&cm, "v1", Some(namespace), obj, &opts, now) {
            tracing::error!(error = %e, namespace, "publishing kube-root-ca.crt failed");
        }
    }

    /// Side effects of writes: CRDs register their kinds.
    fn after_write(&mut self, info: &ResourceInfo, obj: &Value) {
        if info.key() == crd_key()
            && let Ok(ri) = crate::resources::resource_from_crd(obj)
        {
            self.registry.insert(ri);
        }
    }

    /// Deletes an object (DELETE): honours preconditions, finalizers and propagation policy.
    pub fn delete(
        &mut self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
        now: Timestamp,
    ) -> Result<Value, ApiError> {
        let old = self.get(info, ns, name)?;
        if info.group.is_empty()
            && info.plural == "namespaces"
            && matches!(name, "default" | "kube-system" | "kube-public")
        {
            return Err(ApiError::Forbidden {
                message: format!(
                    "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
                ),
                name: name.to_string(),
                kind: "namespaces".into(),
            });
        }
        if let Some(uid) = &opts.precondition_uid
            && Some(uid.as_str()) != meta_str(&old, "uid")
        {
            return Err(ApiError::Conflict {
                message: format!(
                    "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    crate::status::qualified(&info.plural, &info.group),
                    meta_str(&old, "uid").unwrap_or_default()
                ),
                name: name.to_string(),
                group: info.group.clone(),
                kind: info.plural.clone(),
                causes: Vec::new(),
            });
        }
        if let Some(rv) = &opts.precondition_rv
            && Some(rv.as_str()) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::Conflict {
                message: format!(
                    "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    crate::status::qualified(&info.plural, &info.group),
                    meta_str(&old, "resourceVersion").unwrap_or_default()
                ),
                name: name.to_string(),
                group: info.group.clone(),
                kind: info.plural.clone(),
                causes: Vec::new(),
            });
        }
        if opts.dry_run {
            return Ok((*old).clone());
        }
        let policy = opts.propagation.as_deref().unwrap_or("Background");
        let out = self.delete_object(info, &old, policy, now);
        self.collect_garbage(now);
        Ok(out)
    }

    /// The deletion step shared by the API and the garbage collector.
    pub(crate) fn delete_object(
        &mut self,
        info: &ResourceInfo,
        old: &Arc<Value>,
        policy: &str,
        now: Timestamp,
    ) -> Value {
        let uid = meta_str(old, "uid").unwrap_or_default().to_string();
        if policy == "Orphan" {
            self.orphan_dependents(&uid);
        }
        let mut fins = finalizers(old);
        if policy == "Foreground"
            && !fins.iter().any(|f| f == FOREGROUND_FINALIZER)
            && !self.dependents_of(&uid).is_empty()
        {
            fins.push(FOREGROUND_FINALIZER.to_string());
        }
        let is_namespace = info.plural == "namespaces" && info.group.is_empty();
        if fins.is_empty() && !is_namespace {
            let mut last = (**old).clone();
            if last.pointer("/metadata/deletionTimestamp").is_none() {
                // The final state watchers see carries no deletionTimestamp for immediate deletes.
            }
            let stored = self.commit(
                info,
                std::mem::take(&mut last),
                ChangeType::Deleted,
                Some(old.clone()),
            );
            self.gc_pending = true;
            return (*stored).clone();
        }
        let mut new = (**old).clone();
        set_meta(
            &mut new,
            "finalizers",
            if fins.is_empty() {
                Value::Null
            } else {
                json!(fins)
            },
        );
        if new.pointer("/metadata/deletionTimestamp").is_none() {
            set_meta(&mut new, "deletionTimestamp", json!(ts(now)));
            set_meta(&mut new, "deletionGracePeriodSeconds", json!(0));
        }
        if is_namespace {
            new["status"] = json!({"phase": "Terminating"});
        }
        if new == **old {
            return new;
        }
        let stored = self.commit(info, new, ChangeType::Modified, Some(old.clone()));
        self.gc_pending = true;
        (*stored).clone()
    }

    /// Deletes all matching objects (DELETE on a collection).
    pub fn delete_collection(
        &mut self,
        info: &ResourceInfo,
        q: &ListQuery,
        opts: &DeleteOptions,
        now: Timestamp,
    ) -> Result<Vec<Value>, ApiError> {
        let page = self.list(
            info,
            &ListQuery {
                limit: None,
                continue_token: None,
                ..q.clone()
            },
        )?;
        let mut out = Vec::new();
        for obj in page.items {
            if opts.dry_run {
                out.push((*obj).clone());
                continue;
            }
            let policy = opts.propagation.as_deref().unwrap_or("Background");
            out.push(self.delete_object(info, &obj, policy, now));
        }
        self.collect_garbage(now);
        Ok(out)
    }

    /// Looks up a stored object by key.
    pub(crate) fn by_key(&self, key: &ObjKey) -> Option<Arc<Value>> {
        self.objects
            .get(&key.0)?
            .get(&(key.1.clone(), key.2.clone()))
            .cloned()
    }

    /// Whether an object with this uid exists.
    pub(crate) fn uid_exists(&self, uid: &str) -> bool {
        self.uid_index.contains_key(uid)
    }

    /// Objects that have ownerReferences.
    pub(crate) fn objects_with_owners(&self) -> Vec<(TypeKey, Arc<Value>)> {
        self.with_owners
            .iter()
            .filter_map(|k| self.by_key(k).map(|o| (k.0.clone(), o)))
            .collect()
    }

    /// Objects with a deletionTimestamp.
    pub(crate) fn deleting_objects(&self) -> Vec<(TypeKey, Arc<Value>)> {
        self.deleting
            .iter()
            .filter_map(|k| self.by_key(k).map(|o| (k.0.clone(), o)))
            .collect()
    }

    /// All objects of one type.
    pub(crate) fn objects_of(&self, key: &TypeKey) -> Vec<Arc<Value>> {
        self.objects
            .get(key)
            .map(|b| b.values().cloned().collect())
            .unwrap_or_default()
    }

    /// All namespaced objects in a namespace, of every type.
    pub(crate) fn objects_in_namespace(&self, ns: &str) -> Vec<(TypeKey, Arc<Value>)> {
        let mut out = Vec::new();
        for (k, bucket) in &self.objects {
            let start = (ns.to_string(), String::new());
            for ((ons, _), o) in bucket.range(start..) {
                if ons != ns {
                    break;
                }
                out.push((k.clone(), o.clone()));
            }
        }
        out
    }

    /// Objects listing `uid` among their ownerReferences.
    pub(crate) fn dependents_of(&self, uid: &str) -> Vec<(TypeKey, Arc<Value>)> {
        self.objects_with_owners()
            .into_iter()
            .filter(|(_, o)| owner_uids(o).iter().any(|u| u == uid))
            .collect()
    }

    fn orphan_dependents(&mut self, uid: &str) {
        for (key, dep) in self.dependents_of(uid) {
            let Some(info) = self.registry.get(&key) else {
                continue;
            };
            let mut new = (*dep).clone();
            remove_owner_refs(&mut new, |u| u == uid);
            self.commit(&info, new, ChangeType::Modified, Some(dep.clone()));
        }
    }

    /// Runs the garbage collector if something may need collecting.
    pub fn collect_garbage(&mut self, now: Timestamp) {
        if !self.gc_pending {
            return;
        }
        self.gc_pending = false;
        // The collector decides on a read-only view; the store applies, until nothing is left.
        for _ in 0..1000 {
            let actions = crate::gc::decide(self);
            if actions.is_empty() {
                break;
            }
            for action in actions {
                self.apply_gc(action, now);
            }
        }
    }

    /// Applies one collector decision, unless its object changed since it was decided.
    fn apply_gc(&mut self, action: crate::gc::Action, now: Timestamp) {
        use crate::gc::Action;
        let current = |st: &State, key: &TypeKey, o: &Value| {
            st.bucket(key)
                .and_then(|b| b.get(&(namespace_of(o).to_string(), name_of(o).to_string())))
                .filter(|c| {
                    c.pointer("/metadata/resourceVersion") == o.pointer("/metadata/resourceVersion")
                })
                .cloned()
        };
        match action {
            Action::Delete {
                key,
                object,
                policy,
            } => {
                if let (Some(info), Some(cur)) =
                    (self.registry.get(&key), current(self, &key, &object))
                {
                    self.delete_object(&info, &cur, policy, now);
                }
            }
            Action::Replace { key, object, new } => {
                if let Some(cur) = current(self, &key, &object) {
                    self.system_update(&key, &cur, new);
                }
            }
            Action::Remove { key, object } => {
                if let Some(cur) = current(self, &key, &object) {
                    self.system_remove(&key, &cur);
                }
            }
            Action::Unregister(key) => self.unregister(&key),
        }
    }

    /// Replaces an object without admission (used by the garbage collector).
    pub(crate) fn system_update(&mut self, key: &TypeKey, old: &Arc<Value>, new: Value) {
        let Some(info) = self.registry.get(key) else {
            return;
        };
        let deleting = new.pointer("/metadata/deletionTimestamp").is_some()
            && finalizers(&new).is_empty()
            && !(info.plural == "namespaces" && info.group.is_empty());
        let change = if deleting {
            ChangeType::Deleted
        } else {
            ChangeType::Modified
        };
        self.commit(&info, new, change, Some(old.clone()));
    }

    /// Removes an object outright (namespace finalization, CRD cleanup).
    pub(crate) fn system_remove(&mut self, key: &TypeKey, old: &Arc<Value>) {
        let Some(info) = self.registry.get(key) else {
            return;
        };
        self.commit(
            &info,
            (**old).clone(),
            ChangeType::Deleted,
            Some(old.clone()),
        );
    }

    /// Forgets a type and its objects (after its CRD is gone).
    pub(crate) fn unregister(&mut self, key: &TypeKey) {
        self.registry.remove(key);
        self.objects.remove(key);
        self.uid_index.retain(|_, k| k.0 != *key);
        self.with_owners.retain(|k| k.0 != *key);
        self.deleting.retain(|k| k.0 != *key);
    }
}

fn is_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// `[prefix/]name` with a DNS-subdomain prefix and a 63-character name, as for label and
/// annotation keys.
fn is_qualified_name(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && is_label_value(name)
}

const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')";

/// Label, annotation-key and ownerReference checks the real server applies to every kind.
fn validate_metadata(obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let meta = obj.get("metadata");
    let invalid = |field: String, message: String| Cause {
        reason: "FieldValueInvalid".into(),
        message,
        field,
    };
    if let Some(labels) = meta
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
    {
        for (k, v) in labels {
            if !is_qualified_name(k) {
                out.push(invalid(
                    "metadata.labels".into(),
                    format!("Invalid value: {k:?}: {QUALIFIED_NAME_MSG}"),
                ));
            }
            let text = v.as_str().unwrap_or_default();
            if !is_label_value(text) {
                out.push(invalid(
                    "metadata.labels".into(),
                    format!("Invalid value: {text:?}: {LABEL_VALUE_MSG}"),
                ));
            }
        }
    }
    if let Some(ann) = meta
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
    {
        let size: usize = ann
            .iter()
            .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
            .sum();
        if size > 262_144 {
            out.push(Cause {
                reason: "FieldValueTooLong".into(),
                message: "Too long: must have at most 262144 bytes".into(),
                field: "metadata.annotations".into(),
            });
        }
        for k in ann.keys().filter(|k| !is_qualified_name(&k.to_lowercase())) {
            out.push(invalid(
                "metadata.annotations".into(),
                format!("Invalid value: {k:?}: {QUALIFIED_NAME_MSG}"),
            ));
        }
    }
    if let Some(refs) = meta
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
    {
        for (i, r) in refs.iter().enumerate() {
            for f in ["apiVersion", "kind", "name", "uid"] {
                if r.get(f).and_then(Value::as_str).is_none_or(str::is_empty) {
                    let field = format!("metadata.ownerReferences[{i}].{f}");
                    let message = if f == "name" || f == "uid" {
                        "Invalid value: \"\": ".to_string()
                            + if f == "uid" {
                                "uid must not be empty"
                            } else {
                                "name must not be empty"
                            }
                    } else {
                        format!("Invalid value: \"\": {f} must not be empty")
                    };
                    out.push(invalid(field, message));
                }
            }
        }
        let controllers = refs
            .iter()
            .filter(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
            .count();
        if controllers > 1 {
            out.push(invalid(
                "metadata.ownerReferences".into(),
                "Invalid value: []v1.OwnerReference: Only one reference can have Controller set to true".into(),
            ));
        }
    }
    out
}

/// Secret defaulting as the real server does: `type` Opaque, `stringData` folded into `data`.
fn default_secret(secret: &mut Value) {
    use base64::Engine;
    if secret
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        secret["type"] = json!("Opaque");
    }
    let string_data = secret.as_object_mut().and_then(|m| m.remove("stringData"));
    if let Some(Value::Object(sd)) = string_data {
        if !secret.get("data").is_some_and(Value::is_object) {
            secret["data"] = json!({});
        }
        for (k, v) in sd {
            let text = v.as_str().unwrap_or_default().to_string();
            secret["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
        }
    }
}

pub use crate::gc::{
    CRD_CLEANUP_FINALIZER, FOREGROUND_FINALIZER, crd_key, owner_uids, remove_owner_refs,
};

fn crd_status(crd: &Value, now: Timestamp) -> Value {
    let names = crd
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let t = ts(now);
    let prev = crd
        .get("status")
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array);
    let since = |ty: &str| {
        prev.and_then(|p| {
            p.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
        })
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(t))
    };
    json!({
        "acceptedNames": names,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": since("NamesAccepted")},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": since("Established")}
        ],
        "storedVersions": stored,
    })
}

impl crate::gc::View for State {
    fn uid_exists(&self, uid: &str) -> bool {
        State::uid_exists(self, uid)
    }

    fn objects_with_owners(&self) -> Vec<(TypeKey, Arc<Value>)> {
        State::objects_with_owners(self)
    }

    fn deleting_objects(&self) -> Vec<(TypeKey, Arc<Value>)> {
        State::deleting_objects(self)
    }

    fn objects_of(&self, key: &TypeKey) -> Vec<Arc<Value>> {
        State::objects_of(self, key)
    }

    fn objects_in_namespace(&self, ns: &str) -> Vec<(TypeKey, Arc<Value>)> {
        State::objects_in_namespace(self, ns)
    }

    fn dependents_of(&self, uid: &str) -> Vec<(TypeKey, Arc<Value>)> {
        State::dependents_of(self, uid)
    }

    fn custom_types(&self) -> Vec<(TypeKey, String)> {
        self.registry
            .all()
            .filter(|t| t.custom)
            .map(|t| (t.key(), format!("{}.{}", t.plural, t.group)))
            .collect()
    }
}
