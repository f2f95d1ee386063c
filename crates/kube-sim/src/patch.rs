//! Non-apply patch types: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and a strategic
//! merge patch good enough for the built-in kinds (lists of objects merged by their key field).

use serde_json::{Map, Value};

/// Errors applying a patch.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The patch body is not the expected JSON shape.
    #[error("invalid patch: {0}")]
    Malformed(String),
    /// A JSON patch operation failed (e.g. a `test` op or a missing path).
    #[error("the server rejected our request due to an error in our request: {0}")]
    JsonPatch(String),
}

/// The patch flavour, from the request Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/json-patch+json`.
    Json,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchKind {
    /// Maps a Content-Type header to a patch kind.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let ct = ct.split(';').next().unwrap_or("").trim();
        match ct {
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchKind::Apply)
            }
            _ => None,
        }
    }
}

/// Applies an RFC 7386 merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// Applies an RFC 6902 JSON patch, all or nothing.
///
/// Like the real server (evanphx/json-patch), a `test` of a missing path against `null` passes;
/// kube's finalizer helper relies on that when it adds the first finalizer.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let ops: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| PatchError::Malformed(e.to_string()))?;
    let mut work = target.clone();
    for (i, op) in ops.0.iter().enumerate() {
        if let json_patch::PatchOperation::Test(t) = op
            && t.value.is_null()
        {
            let path = t.path.to_string();
            match work.pointer(&path) {
                None | Some(Value::Null) => continue,
                Some(_) => {
                    return Err(PatchError::JsonPatch(format!(
                        "operation '/{i}' failed at path '{path}': value doesn't match"
                    )));
                }
            }
        }
        json_patch::patch(&mut work, std::slice::from_ref(op)).map_err(|e| {
            PatchError::JsonPatch(e.to_string().replacen("'/0'", &format!("'/{i}'"), 1))
        })?;
    }
    *target = work;
    Ok(())
}

/// Key field used to merge a list of objects in strategic merge patches, if any.
///
/// The real server takes the key from the Go struct tags of each type; lists of containers,
/// env vars, volumes, ports and the like all merge by `name` (ports by `containerPort`/`port`
/// when unnamed), which is what the built-in kinds need.
pub fn list_merge_key(items: &[Value]) -> Option<&'static str> {
    if items.is_empty() || !items.iter().all(Value::is_object) {
        return None;
    }
    ["name", "containerPort", "port", "type", "ip", "mountPath"]
        .into_iter()
        .find(|&key| items.iter().all(|i| i.get(key).is_some()))
}

/// Applies a strategic merge patch: maps merge recursively, `null` deletes, lists of objects
/// merge by their key field, `$patch: replace|delete` directives, and `$setElementOrder`,
/// `$retainKeys`, `$deleteFromPrimitiveList` are honoured or ignored as documented.
pub fn strategic_merge_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let Value::Object(pmap) = patch else {
        return Err(PatchError::Malformed("patch body must be an object".into()));
    };
    if pmap.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut p = pmap.clone();
        p.remove("$patch");
        *target = Value::Object(p);
        return Ok(());
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(tmap) = target else {
        return Ok(());
    };
    for (k, v) in pmap {
        if k.starts_with("$setElementOrder/") || k == "$retainKeys" || k == "$patch" {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(existing)), Value::Array(remove)) = (tmap.get_mut(field), v) {
                existing.retain(|e| !remove.contains(e));
            }
            continue;
        }
        match v {
            Value::Null => {
                tmap.remove(k);
            }
            Value::Object(inner) => {
                if inner.get("$patch").and_then(Value::as_str) == Some("delete") {
                    tmap.remove(k);
                    continue;
                }
                let slot = tmap.entry(k.clone()).or_insert(Value::Null);
                strategic_merge_patch(slot, v)?;
            }
            Value::Array(items) => {
                let existing = tmap.get(k).and_then(Value::as_array).cloned();
                let merged = match (existing, list_merge_key(items)) {
                    (Some(old), Some(key))
                        if list_merge_key(&old) == Some(key) || old.is_empty() =>
                    {
                        merge_keyed_list(old, items, key)?
                    }
                    _ => Value::Array(
                        items
                            .iter()
                            .filter(|i| i.get("$patch").is_none())
                            .cloned()
                            .collect(),
                    ),
                };
                tmap.insert(k.clone(), merged);
            }
            other => {
                tmap.insert(k.clone(), other.clone());
            }
        }
    }
    Ok(())
}

fn merge_keyed_list(mut old: Vec<Value>, items: &[Value], key: &str) -> Result<Value, PatchError> {
    for item in items {
        let id = item.get(key).cloned().unwrap_or(Value::Null);
        let pos = old.iter().position(|o| o.get(key) == Some(&id));
        let directive = item.get("$patch").and_then(Value::as_str);
        match (pos, directive) {
            (Some(i), Some("delete")) => {
                old.remove(i);
            }
            (None, Some("delete")) => {}
            (Some(i), Some("replace")) => {
                let mut v = item.clone();
                if let Some(m) = v.as_object_mut() {
                    m.remove("$patch");
                }
                old[i] = v;
            }
            (Some(i), _) => strategic_merge_patch(&mut old[i], item)?,
            (None, _) => {
                let mut v = Value::Null;
                strategic_merge_patch(&mut v, item)?;
                old.push(v);
            }
        }
    }
    Ok(Value::Array(old))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merges_containers_by_name() {
        let mut d = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}]}});
        strategic_merge_patch(
            &mut d,
            &json!({"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                "containers": [{"name": "a", "env": [{"name": "Y", "value": "2"}]},
                               {"name": "b", "$patch": "delete"}]}}),
        )
        .unwrap();
        assert_eq!(
            d,
            json!({"spec": {"containers": [{"name": "a", "image": "a:1",
                "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}]}})
        );
    }

    #[test]
    fn strategic_null_deletes_and_scalar_lists_replace() {
        let mut d = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "args": ["x"]});
        strategic_merge_patch(
            &mut d,
            &json!({"metadata": {"labels": {"a": null}}, "args": ["y"]}),
        )
        .unwrap();
        assert_eq!(
            d,
            json!({"metadata": {"labels": {"b": "2"}}, "args": ["y"]})
        );
    }

    #[test]
    fn json_patch_test_failure_is_error() {
        let mut d = json!({"a": 1});
        assert!(json_patch(&mut d, &json!([{"op": "test", "path": "/a", "value": 2}])).is_err());
        json_patch(
            &mut d,
            &json!([{"op": "replace", "path": "/a", "value": 3}]),
        )
        .unwrap();
        assert_eq!(d, json!({"a": 3}));
    }
}

#[cfg(test)]
mod finalizer_helper_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kube_finalizer_helper_patch_applies_to_an_object_without_finalizers() {
        let mut d = json!({"metadata": {"name": "x"}});
        json_patch(
            &mut d,
            &json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
                    {"op": "add", "path": "/metadata/finalizers", "value": ["a/b"]}]),
        )
        .unwrap();
        assert_eq!(d["metadata"]["finalizers"], json!(["a/b"]));
    }
}
