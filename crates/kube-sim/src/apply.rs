//! Server-side apply and `metadata.managedFields`: field sets per manager, conflicts, and the
//! merge of an applied configuration into the live object.
//!
//! The ownership model: an object's fields are the paths to its leaves (scalars, atomic
//! lists, empty maps) plus one path per item of a keyed list (`k:{"name":"a"}`). Every manager
//! entry owns a set of such paths. Apply conflicts when a path in the applied configuration is
//! owned by another manager and the values differ; other writes (create, update, patch) take
//! ownership of the paths whose values they changed.

use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

/// A set of field paths in fieldsV1 element form (`f:spec`, `k:{"name":"a"}`).
pub type FieldSet = BTreeSet<Vec<String>>;

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedEntry {
    /// Field manager name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// apiVersion the manager used.
    pub api_version: String,
    /// RFC 3339 time of the last change.
    pub time: String,
    /// `status` for status-subresource writes, empty otherwise.
    pub subresource: String,
    /// Owned fields.
    pub fields: FieldSet,
}

/// One field owned by another manager whose value the apply would change.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// The other manager.
    pub manager: String,
    /// The apiVersion it used.
    pub api_version: String,
    /// Human path such as `.spec.replicas`.
    pub field: String,
}

/// How lists are keyed when computing field sets and merging.
#[derive(Debug, Clone, Copy)]
pub struct ListRules<'a> {
    /// Root OpenAPI schema of a custom resource (list-type/list-map-keys come from here).
    pub schema: Option<&'a Value>,
    /// Built-in kinds key object lists by `name`-like fields (strategic merge keys).
    pub builtin: bool,
}

fn child_schema<'a>(schema: Option<&'a Value>, field: &str) -> Option<&'a Value> {
    let s = schema?;
    s.get("properties")
        .and_then(|p| p.get(field))
        .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()))
}

fn list_keys(rules: ListRules<'_>, schema: Option<&Value>, items: &[Value]) -> Option<Vec<String>> {
    if let Some(s) = schema {
        match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("map") => {
                return s
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    });
            }
            Some(_) => return None,
            None => {}
        }
    }
    if rules.builtin {
        return crate::patch::list_merge_key(items).map(|k| vec![k.to_string()]);
    }
    None
}

fn item_key(item: &Value, keys: &[String]) -> Option<String> {
    let mut m = Map::new();
    for k in keys {
        m.insert(k.clone(), item.get(k)?.clone());
    }
    Some(format!("k:{}", Value::Object(m)))
}

fn is_set(schema: Option<&Value>) -> bool {
    schema
        .and_then(|s| s.get("x-kubernetes-list-type"))
        .and_then(Value::as_str)
        == Some("set")
}

fn is_scalar(v: &Value) -> bool {
    !(v.is_object() || v.is_array())
}

/// `metadata.finalizers` is a set in the real server's schema.
fn finalizers_schema() -> Value {
    json!({"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"})
}

fn collect(
    value: &Value,
    schema: Option<&Value>,
    rules: ListRules<'_>,
    path: &mut Vec<String>,
    out: &mut FieldSet,
) {
    match value {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                path.push(format!("f:{k}"));
                collect(v, child_schema(schema, k), rules, path, out);
                path.pop();
            }
        }
        Value::Array(items)
            if is_set(schema) && !items.is_empty() && items.iter().all(is_scalar) =>
        {
            // Sets are owned per element, so managers can share a list (e.g. finalizers).
            for item in items {
                path.push(format!("v:{item}"));
                out.insert(path.clone());
                path.pop();
            }
        }
        Value::Array(items) => {
            let item_schema = schema.and_then(|s| s.get("items"));
            match list_keys(rules, schema, items) {
                Some(keys)
                    if items.iter().all(|i| item_key(i, &keys).is_some()) && !items.is_empty() =>
                {
                    for item in items {
                        if let Some(k) = item_key(item, &keys) {
                            path.push(k);
                            out.insert(path.clone());
                            collect(item, item_schema, rules, path, out);
                            path.pop();
                        }
                    }
                }
                _ => {
                    out.insert(path.clone());
                }
            }
        }
        _ => {
            out.insert(path.clone());
        }
    }
}

/// The field set of an object (or applied configuration): spec/status/data and the
/// labels, annotations, finalizers and ownerReferences of metadata.
pub fn field_set(obj: &Value, rules: ListRules<'_>) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(m) = obj.as_object() else {
        return out;
    };
    for (k, v) in m {
        match k.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                for mk in ["labels", "annotations", "finalizers", "ownerReferences"] {
                    if let Some(mv) = v.get(mk) {
                        let mut path = vec!["f:metadata".to_string(), format!("f:{mk}")];
                        let meta_rules = ListRules {
                            schema: None,
                            builtin: true,
                        };
                        if mk == "ownerReferences" {
                            collect_owner_refs(mv, &mut path, &mut out);
                        } else if mk == "finalizers" {
                            let set = finalizers_schema();
                            collect(mv, Some(&set), meta_rules, &mut path, &mut out);
                        } else {
                            collect(mv, None, meta_rules, &mut path, &mut out);
                        }
                    }
                }
            }
            _ => {
                let mut path = vec![format!("f:{k}")];
                collect(v, child_schema(rules.schema, k), rules, &mut path, &mut out);
            }
        }
    }
    out
}

fn collect_owner_refs(v: &Value, path: &mut Vec<String>, out: &mut FieldSet) {
    let Some(items) = v.as_array() else {
        out.insert(path.clone());
        return;
    };
    let keys = vec!["uid".to_string()];
    for item in items {
        if let Some(k) = item_key(item, &keys) {
            path.push(k);
            out.insert(path.clone());
            path.pop();
        }
    }
}

fn step<'a>(v: &'a Value, elem: &str) -> Option<&'a Value> {
    if let Some(f) = elem.strip_prefix("f:") {
        v.get(f)
    } else if let Some(k) = elem.strip_prefix("k:") {
        let key: Map<String, Value> = serde_json::from_str(k).ok()?;
        v.as_array()?
            .iter()
            .find(|i| key.iter().all(|(kk, kv)| i.get(kk) == Some(kv)))
    } else if let Some(item) = elem.strip_prefix("v:") {
        let want: Value = serde_json::from_str(item).ok()?;
        v.as_array()?.iter().find(|i| **i == want)
    } else {
        None
    }
}

/// The value at a field path.
pub fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, e| step(v, e))
}

/// Removes the value at a field path (a map key or a keyed list item).
pub fn remove_at(obj: &mut Value, path: &[String]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for e in parent_path {
        let next = if let Some(f) = e.strip_prefix("f:") {
            cur.get_mut(f)
        } else if let Some(k) = e.strip_prefix("k:") {
            let Ok(key) = serde_json::from_str::<Map<String, Value>>(k) else {
                return;
            };
            cur.as_array_mut().and_then(|a| {
                a.iter_mut()
                    .find(|i| key.iter().all(|(kk, kv)| i.get(kk) == Some(kv)))
            })
        } else {
            None
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(k) = last.strip_prefix("k:")
        && let Ok(key) = serde_json::from_str::<Map<String, Value>>(k)
        && let Some(a) = cur.as_array_mut()
    {
        a.retain(|i| !key.iter().all(|(kk, kv)| i.get(kk) == Some(kv)));
    } else if let Some(item) = last.strip_prefix("v:")
        && let Ok(want) = serde_json::from_str::<Value>(item)
        && let Some(a) = cur.as_array_mut()
    {
        a.retain(|i| *i != want);
    }
}

/// Human form of a path for conflict messages: `.spec.containers[name="a"].image`.
pub fn display_path(path: &[String]) -> String {
    let mut s = String::new();
    for e in path {
        if let Some(f) = e.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = e.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let parts: Vec<String> = key.iter().map(|(a, b)| format!("{a}={b}")).collect();
            s.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = e.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        }
    }
    s
}

/// Encodes a field set as a fieldsV1 tree.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut cur = &mut root;
        for e in path {
            let entry = cur
                .entry(e.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(m) = entry else { break };
            if e.starts_with("k:") {
                m.entry(".".to_string()).or_insert_with(|| json!({}));
            }
            cur = m;
        }
    }
    Value::Object(root)
}

/// Decodes a fieldsV1 tree into a field set.
pub fn from_fields_v1(v: &Value) -> FieldSet {
    fn walk(v: &Value, path: &mut Vec<String>, out: &mut FieldSet) {
        let Some(m) = v.as_object() else { return };
        let children: Vec<_> = m.iter().filter(|(k, _)| k.as_str() != ".").collect();
        if (children.is_empty() || m.contains_key(".")) && !path.is_empty() {
            out.insert(path.clone());
        }
        for (k, c) in children {
            path.push(k.clone());
            walk(c, path, out);
            path.pop();
        }
    }
    let mut out = FieldSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

/// Reads `metadata.managedFields`.
pub fn read_entries(obj: &Value) -> Vec<ManagedEntry> {
    let Some(a) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    a.iter()
        .map(|e| {
            let s = |k: &str| {
                e.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            ManagedEntry {
                manager: s("manager"),
                operation: s("operation"),
                api_version: s("apiVersion"),
                time: s("time"),
                subresource: s("subresource"),
                fields: e.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
            }
        })
        .collect()
}

/// Writes `metadata.managedFields` (entries with no fields are dropped, as the server does).
pub fn write_entries(obj: &mut Value, entries: &[ManagedEntry]) {
    let arr: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if arr.is_empty() {
            m.remove("managedFields");
        } else {
            m.insert("managedFields".into(), Value::Array(arr));
        }
    }
}

/// What a non-apply write did, for ownership bookkeeping.
#[derive(Debug, Clone)]
pub struct WriteContext<'a> {
    /// Field manager of the writer.
    pub manager: &'a str,
    /// apiVersion of the request.
    pub api_version: &'a str,
    /// `status` or empty.
    pub subresource: &'a str,
    /// Current time, RFC 3339.
    pub now: &'a str,
    /// List keying rules.
    pub rules: ListRules<'a>,
}

/// Updates managedFields of `new` after a create/update/patch: the writer takes the paths it
/// changed, and paths that no longer exist are dropped from every entry.
pub fn record_update(old: Option<&Value>, new: &mut Value, ctx: &WriteContext<'_>) {
    let mut entries = old.map(read_entries).unwrap_or_default();
    let new_set = field_set(new, ctx.rules);
    let changed: FieldSet = new_set
        .iter()
        .filter(|p| old.and_then(|o| value_at(o, p)) != value_at(new, p))
        .cloned()
        .collect();
    for e in entries.iter_mut() {
        e.fields.retain(|p| new_set.contains(p));
        if !(e.manager == ctx.manager
            && e.operation == "Update"
            && e.subresource == ctx.subresource)
        {
            e.fields.retain(|p| !changed.contains(p));
        }
    }
    if !changed.is_empty() {
        match entries.iter_mut().find(|e| {
            e.manager == ctx.manager && e.operation == "Update" && e.subresource == ctx.subresource
        }) {
            Some(e) => {
                e.fields.extend(changed);
                e.time = ctx.now.to_string();
                e.api_version = ctx.api_version.to_string();
            }
            None => entries.push(ManagedEntry {
                manager: ctx.manager.to_string(),
                operation: "Update".into(),
                api_version: ctx.api_version.to_string(),
                time: ctx.now.to_string(),
                subresource: ctx.subresource.to_string(),
                fields: changed,
            }),
        }
    }
    write_entries(new, &entries);
}

/// Deep-merges an applied configuration into the live object (keyed lists merge by key,
/// everything else in the configuration replaces).
pub fn merge_applied(
    live: &mut Value,
    applied: &Value,
    schema: Option<&Value>,
    rules: ListRules<'_>,
) {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) => {
            let fin = finalizers_schema();
            let is_metadata = l.contains_key("name") || l.contains_key("generateName");
            for (k, av) in a {
                let cs = if is_metadata && k == "finalizers" {
                    Some(&fin)
                } else {
                    child_schema(schema, k)
                };
                match l.get_mut(k) {
                    Some(lv) if lv.is_object() && av.is_object() => {
                        merge_applied(lv, av, cs, rules)
                    }
                    Some(lv) if lv.is_array() && av.is_array() => merge_applied(lv, av, cs, rules),
                    _ => {
                        l.insert(k.clone(), av.clone());
                    }
                }
            }
        }
        (Value::Array(l), Value::Array(a)) if is_set(schema) => {
            for item in a {
                if !l.contains(item) {
                    l.push(item.clone());
                }
            }
        }
        (Value::Array(l), Value::Array(a)) => {
            let keys = list_keys(rules, schema, a);
            match keys {
                Some(keys)
                    if a.iter().all(|i| item_key(i, &keys).is_some())
                        && l.iter().all(|i| item_key(i, &keys).is_some()) =>
                {
                    let item_schema = schema.and_then(|s| s.get("items"));
                    for ai in a {
                        let id = item_key(ai, &keys);
                        match l.iter_mut().find(|li| item_key(li, &keys) == id) {
                            Some(li) => merge_applied(li, ai, item_schema, rules),
                            None => l.push(ai.clone()),
                        }
                    }
                }
                _ => *l = a.clone(),
            }
        }
        (l, a) => *l = a.clone(),
    }
}

/// Inputs of one server-side apply.
#[derive(Debug, Clone)]
pub struct ApplyRequest<'a> {
    /// Ownership bookkeeping context (manager, version, subresource, time, list rules).
    pub write: WriteContext<'a>,
    /// `force=true`: take conflicting fields instead of failing.
    pub force: bool,
}

/// Applies `applied` to `live` (an empty object for a create). Returns the new object with
/// managedFields updated, or the conflicts.
pub fn server_side_apply(
    live: &Value,
    applied: &Value,
    req: &ApplyRequest<'_>,
) -> Result<Value, Vec<Conflict>> {
    let ctx = &req.write;
    let mut entries = read_entries(live);
    let mut applied_body = applied.clone();
    if let Some(m) = applied_body
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
    {
        for k in [
            "managedFields",
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
        ] {
            m.remove(k);
        }
    }
    // On the status subresource only status is applied; on the main resource status is not.
    let applied_body = scope_to_subresource(applied_body, ctx.subresource);
    let applied_set = field_set(&applied_body, ctx.rules);
    let is_mine = |e: &ManagedEntry| {
        e.manager == ctx.manager && e.operation == "Apply" && e.subresource == ctx.subresource
    };
    let mut conflicts = Vec::new();
    for e in entries.iter().filter(|e| !is_mine(e)) {
        for p in e.fields.intersection(&applied_set) {
            let is_item = p.last().is_some_and(|l| l.starts_with("k:"));
            if !is_item && value_at(live, p) != value_at(&applied_body, p) {
                conflicts.push(Conflict {
                    manager: e.manager.clone(),
                    api_version: e.api_version.clone(),
                    field: display_path(p),
                });
            }
        }
    }
    if !conflicts.is_empty() && !req.force {
        return Err(conflicts);
    }
    let mut result = live.clone();
    // Fields this manager applied before but no longer applies, and nobody else owns, go away.
    let previously: FieldSet = entries
        .iter()
        .filter(|e| is_mine(e))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let others: FieldSet = entries
        .iter()
        .filter(|e| !is_mine(e))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let kept = |p: &[String]| {
        applied_set.iter().any(|a| a.starts_with(p)) || others.iter().any(|o| o.starts_with(p))
    };
    let mut removed = Vec::new();
    for p in previously.iter().rev() {
        if !applied_set.contains(p) && !others.contains(p) && !kept(p) {
            remove_at(&mut result, p);
            removed.push(p);
        }
    }
    // A struct field the manager no longer applies goes as a whole, as the real server's
    // `EnsureNamedFieldsAreMembers` does: a map its removed fields leave empty is removed too
    // (else `placement: {breakdown: {}}` stays and fails the schema's required fields).
    for p in removed {
        for depth in (1..p.len()).rev() {
            let parent = &p[..depth];
            let empty = value_at(&result, parent)
                .and_then(Value::as_object)
                .is_some_and(Map::is_empty);
            if !parent[depth - 1].starts_with("f:") || !empty || kept(parent) {
                break;
            }
            remove_at(&mut result, parent);
        }
    }
    merge_applied(&mut result, &applied_body, ctx.rules.schema, ctx.rules);
    if req.force {
        for e in entries.iter_mut().filter(|e| !is_mine(e)) {
            e.fields.retain(|p| {
                !applied_set.contains(p) || value_at(live, p) == value_at(&applied_body, p)
            });
        }
    }
    match entries.iter_mut().find(|e| is_mine(e)) {
        Some(e) => {
            e.fields = applied_set;
            e.time = ctx.now.to_string();
            e.api_version = ctx.api_version.to_string();
        }
        None => entries.push(ManagedEntry {
            manager: ctx.manager.to_string(),
            operation: "Apply".into(),
            api_version: ctx.api_version.to_string(),
            time: ctx.now.to_string(),
            subresource: ctx.subresource.to_string(),
            fields: applied_set,
        }),
    }
    let final_set = field_set(&result, ctx.rules);
    for e in entries.iter_mut() {
        e.fields.retain(|p| final_set.contains(p));
    }
    write_entries(&mut result, &entries);
    Ok(result)
}

fn scope_to_subresource(mut v: Value, subresource: &str) -> Value {
    if subresource == "status"
        && let Some(m) = v.as_object_mut()
    {
        m.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"));
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.retain(|k, _| k == "name" || k == "namespace");
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(manager: &'a str) -> WriteContext<'a> {
        WriteContext {
            manager,
            api_version: "apps/v1",
            subresource: "",
            now: "2026-11-25T00:00:00Z",
            rules: ListRules {
                schema: None,
                builtin: true,
            },
        }
    }

    #[test]
    fn fields_v1_roundtrip() {
        let obj = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"replicas": 1,
            "containers": [{"name": "c", "image": "x"}]}});
        let set = field_set(
            &obj,
            ListRules {
                schema: None,
                builtin: true,
            },
        );
        let v1 = to_fields_v1(&set);
        assert_eq!(
            v1["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"]["."],
            json!({})
        );
        assert_eq!(from_fields_v1(&v1), set);
    }

    #[test]
    fn apply_conflicts_then_force_takes_ownership() {
        let live = json!({"metadata": {"name": "d"}, "spec": {"replicas": 1}});
        let a = server_side_apply(
            &live,
            &live,
            &ApplyRequest {
                write: ctx("alice"),
                force: false,
            },
        )
        .unwrap();
        let change = json!({"metadata": {"name": "d"}, "spec": {"replicas": 3}});
        let err = server_side_apply(
            &a,
            &change,
            &ApplyRequest {
                write: ctx("bob"),
                force: false,
            },
        )
        .unwrap_err();
        assert_eq!(err[0].field, ".spec.replicas");
        assert_eq!(err[0].manager, "alice");
        // Same value: shared ownership, no conflict.
        assert!(
            server_side_apply(
                &a,
                &live,
                &ApplyRequest {
                    write: ctx("bob"),
                    force: false
                }
            )
            .is_ok()
        );
        let forced = server_side_apply(
            &a,
            &change,
            &ApplyRequest {
                write: ctx("bob"),
                force: true,
            },
        )
        .unwrap();
        assert_eq!(forced["spec"]["replicas"], 3);
        let entries = read_entries(&forced);
        assert!(entries.iter().all(|e| e.manager == "bob"));
    }

    #[test]
    fn apply_removes_fields_no_longer_applied() {
        let live = json!({"metadata": {"name": "d"}});
        let first = json!({"metadata": {"name": "d", "labels": {"a": "1", "b": "2"}}});
        let a = server_side_apply(
            &live,
            &first,
            &ApplyRequest {
                write: ctx("m"),
                force: false,
            },
        )
        .unwrap();
        let second = json!({"metadata": {"name": "d", "labels": {"a": "1"}}});
        let b = server_side_apply(
            &a,
            &second,
            &ApplyRequest {
                write: ctx("m"),
                force: false,
            },
        )
        .unwrap();
        assert_eq!(b["metadata"]["labels"], json!({"a": "1"}));
    }

    #[test]
    fn a_struct_no_longer_applied_goes_as_a_whole() {
        let live = json!({"metadata": {"name": "d"}});
        let first = json!({"metadata": {"name": "d"}, "spec": {"keep": 1,
            "placement": {"droplet": "a", "breakdown": {"cost": 1.0, "load": 2.0}}}});
        let a = server_side_apply(
            &live,
            &first,
            &ApplyRequest {
                write: ctx("m"),
                force: false,
            },
        )
        .unwrap();
        let second = json!({"metadata": {"name": "d"}, "spec": {"keep": 1}});
        let b = server_side_apply(
            &a,
            &second,
            &ApplyRequest {
                write: ctx("m"),
                force: false,
            },
        )
        .unwrap();
        assert_eq!(b["spec"], json!({"keep": 1}), "{b}");
        // A map another manager still has a field in stays, with that field.
        let other = json!({"metadata": {"name": "d"}, "spec": {"placement": {"note": "x"}}});
        let c = server_side_apply(
            &a,
            &other,
            &ApplyRequest {
                write: ctx("n"),
                force: false,
            },
        )
        .unwrap();
        let d = server_side_apply(
            &c,
            &second,
            &ApplyRequest {
                write: ctx("m"),
                force: false,
            },
        )
        .unwrap();
        assert_eq!(
            d["spec"],
            json!({"keep": 1, "placement": {"note": "x"}}),
            "{d}"
        );
    }

    #[test]
    fn finalizers_are_shared_between_managers() {
        let live = json!({"metadata": {"name": "d"}});
        let a = server_side_apply(
            &live,
            &json!({"metadata": {"name": "d", "finalizers": ["a/x"]}}),
            &ApplyRequest {
                write: ctx("alice"),
                force: false,
            },
        )
        .unwrap();
        let b = server_side_apply(
            &a,
            &json!({"metadata": {"name": "d", "finalizers": ["b/y"]}}),
            &ApplyRequest {
                write: ctx("bob"),
                force: false,
            },
        )
        .unwrap();
        assert_eq!(b["metadata"]["finalizers"], json!(["a/x", "b/y"]));
        // Alice dropping hers removes only hers.
        let c = server_side_apply(
            &b,
            &json!({"metadata": {"name": "d"}}),
            &ApplyRequest {
                write: ctx("alice"),
                force: false,
            },
        )
        .unwrap();
        assert_eq!(c["metadata"]["finalizers"], json!(["b/y"]));
    }

    #[test]
    fn update_takes_changed_fields() {
        let old = json!({"metadata": {"name": "d"}, "spec": {"replicas": 1}});
        let a = server_side_apply(
            &old,
            &old,
            &ApplyRequest {
                write: ctx("alice"),
                force: false,
            },
        )
        .unwrap();
        let mut new = a.clone();
        new["spec"]["replicas"] = json!(2);
        record_update(Some(&a), &mut new, &ctx("editor"));
        let entries = read_entries(&new);
        let editor = entries.iter().find(|e| e.manager == "editor").unwrap();
        assert!(
            editor
                .fields
                .contains(&vec!["f:spec".to_string(), "f:replicas".to_string()])
        );
        assert!(entries.iter().all(|e| {
            e.manager == "editor"
                || !e
                    .fields
                    .contains(&vec!["f:spec".to_string(), "f:replicas".to_string()])
        }));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<bool>().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            "[a-z]{0,6}".prop_map(Value::from),
        ]
    }

    fn tree() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::btree_map("[a-z]{1,4}", inner.clone(), 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                prop::collection::vec(inner, 0..3).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{1,4}", leaf(), 1..3).prop_map(|m| {
                    // Named items exercise keyed lists.
                    Value::Array(
                        m.into_iter()
                            .map(|(k, v)| json!({"name": k, "value": v}))
                            .collect(),
                    )
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn fields_v1_round_trips(spec in tree()) {
            let obj = json!({"metadata": {"name": "x", "labels": {"a": "b"}}, "spec": spec});
            let rules = ListRules { schema: None, builtin: true };
            let set = field_set(&obj, rules);
            prop_assert_eq!(from_fields_v1(&to_fields_v1(&set)), set);
        }

        #[test]
        fn applying_own_object_twice_is_stable(spec in tree()) {
            let obj = json!({"metadata": {"name": "x"}, "spec": spec});
            let req = ApplyRequest {
                write: WriteContext { manager: "m", api_version: "v1", subresource: "", now: "t", rules: ListRules { schema: None, builtin: true } },
                force: false,
            };
            let once = server_side_apply(&json!({"metadata": {"name": "x"}}), &obj, &req).unwrap();
            let twice = server_side_apply(&once, &obj, &req).unwrap();
            prop_assert_eq!(&once, &twice);
            prop_assert_eq!(&once["spec"], &obj["spec"]);
        }
    }
}
