//! The table of resource types the server knows: built-in kinds from a static table, and kinds
//! registered by applied CustomResourceDefinitions.

use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Per-version facts of a resource type (schema and printer columns differ per CRD version).
#[derive(Debug, Clone, Default)]
pub struct VersionInfo {
    /// The version name, e.g. `v1`.
    pub name: String,
    /// The OpenAPI v3 schema (`openAPIV3Schema`) for custom resources.
    pub schema: Option<Value>,
    /// Its CEL rules compiled once (compiling them per write was a tenth of a busy server's
    /// time).
    pub cel: Option<Arc<kube_cel::CompiledSchema>>,
    /// `additionalPrinterColumns` as given in the CRD.
    pub printer_columns: Vec<Value>,
    /// Whether the `/status` subresource is enabled.
    pub status_subresource: bool,
    /// `selectableFields` JSON paths usable in field selectors (e.g. `.spec.region`).
    pub selectable_fields: Vec<String>,
}

/// Everything the server needs to serve one resource type.
#[derive(Debug, Clone)]
pub struct ResourceInfo {
    /// API group, empty for core.
    pub group: String,
    /// Served versions, preferred (storage) first.
    pub versions: Vec<VersionInfo>,
    /// Kind, e.g. `ConfigMap`.
    pub kind: String,
    /// Plural resource name used in URLs.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names for kubectl.
    pub short_names: Vec<String>,
    /// Categories (e.g. `all`).
    pub categories: Vec<String>,
    /// True for kinds defined by a CRD (merge semantics, validation, generation rules).
    pub custom: bool,
    /// Whether `metadata.generation` is maintained.
    pub tracks_generation: bool,
}

impl ResourceInfo {
    /// The `VersionInfo` for a served version.
    pub fn version(&self, v: &str) -> Option<&VersionInfo> {
        self.versions.iter().find(|x| x.name == v)
    }

    /// The preferred version name.
    pub fn preferred_version(&self) -> &str {
        self.versions
            .first()
            .map(|v| v.name.as_str())
            .unwrap_or("v1")
    }

    /// `apiVersion` string for a version of this resource.
    pub fn api_version(&self, v: &str) -> String {
        if self.group.is_empty() {
            v.to_string()
        } else {
            format!("{}/{}", self.group, v)
        }
    }

    /// Whether any version has the status subresource.
    pub fn has_status(&self, v: &str) -> bool {
        self.version(v).is_some_and(|x| x.status_subresource)
    }

    /// The storage key of this type: group and plural (all versions share storage).
    pub fn key(&self) -> TypeKey {
        TypeKey {
            group: self.group.clone(),
            plural: self.plural.clone(),
        }
    }
}

/// Identifies a stored resource type independent of version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeKey {
    /// API group.
    pub group: String,
    /// Plural name.
    pub plural: String,
}

/// One row of the static built-in table.
struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    status: bool,
    generation: bool,
}

const BUILTINS: &[Builtin] = &[
    b(
        "",
        "v1",
        "Namespace",
        "namespaces",
        false,
        &["ns"],
        &[],
        true,
        false,
    ),
    b("", "v1", "Secret", "secrets", true, &[], &[], false, false),
    b(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        true,
        &["cm"],
        &[],
        false,
        false,
    ),
    b(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        true,
        &["sa"],
        &[],
        false,
        false,
    ),
    b(
        "",
        "v1",
        "Event",
        "events",
        true,
        &["ev"],
        &[],
        false,
        false,
    ),
    b(
        "",
        "v1",
        "Service",
        "services",
        true,
        &["svc"],
        &["all"],
        true,
        false,
    ),
    b(
        "",
        "v1",
        "Pod",
        "pods",
        true,
        &["po"],
        &["all"],
        true,
        false,
    ),
    b(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
        &["pvc"],
        &[],
        true,
        false,
    ),
    b(
        "",
        "v1",
        "Endpoints",
        "endpoints",
        true,
        &["ep"],
        &[],
        false,
        false,
    ),
    b("", "v1", "Node", "nodes", false, &["no"], &[], true, false),
    b(
        "events.k8s.io",
        "v1",
        "Event",
        "events",
        true,
        &["ev"],
        &[],
        false,
        false,
    ),
    b(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        true,
        &[],
        &[],
        false,
        false,
    ),
    b(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        true,
        &["deploy"],
        &["all"],
        true,
        true,
    ),
    b(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        true,
        &["sts"],
        &["all"],
        true,
        true,
    ),
    b(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        true,
        &["ds"],
        &["all"],
        true,
        true,
    ),
    b(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        true,
        &["rs"],
        &["all"],
        true,
        true,
    ),
    b(
        "batch",
        "v1",
        "Job",
        "jobs",
        true,
        &[],
        &["all"],
        true,
        true,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        true,
        &[],
        &[],
        false,
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
        &[],
        &[],
        false,
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
        &[],
        &[],
        false,
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
        &[],
        &[],
        false,
        false,
    ),
    b(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
        &["pdb"],
        &[],
        true,
        true,
    ),
    b(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
        &["netpol"],
        &[],
        false,
        true,
    ),
    b(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        true,
        &["ing"],
        &[],
        true,
        true,
    ),
    b(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
        &["hpa"],
        &["all"],
        true,
        true,
    ),
    b(
        "monitoring.coreos.com",
        "v1",
        "ServiceMonitor",
        "servicemonitors",
        true,
        &["smon"],
        &[],
        false,
        true,
    ),
    b(
        "",
        "v1",
        "ResourceQuota",
        "resourcequotas",
        true,
        &["quota"],
        &[],
        true,
        false,
    ),
    b(
        "",
        "v1",
        "LimitRange",
        "limitranges",
        true,
        &["limits"],
        &[],
        false,
        false,
    ),
    b(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        true,
        &["cj"],
        &["all"],
        true,
        true,
    ),
    b(
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        false,
        &["pc"],
        &[],
        false,
        false,
    ),
    b(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        false,
        &[],
        &[],
        false,
        false,
    ),
    b(
        "authorization.k8s.io",
        "v1",
        "SubjectAccessReview",
        "subjectaccessreviews",
        false,
        &[],
        &[],
        false,
        false,
    ),
    b(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        &["crd", "crds"],
        &["api-extensions"],
        true,
        true,
    ),
];

#[allow(clippy::too_many_arguments)]
const fn b(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    status: bool,
    generation: bool,
) -> Builtin {
    Builtin {
        group,
        version,
        kind,
        plural,
        namespaced,
        short_names,
        categories,
        status,
        generation,
    }
}

/// Errors turning a CRD into a resource type.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CrdError {
    /// A required CRD field is missing or malformed.
    #[error("{field}: {message}")]
    Field {
        /// Field path inside the CRD.
        field: String,
        /// What is wrong.
        message: String,
    },
}

fn field_err(field: &str, message: &str) -> CrdError {
    CrdError::Field {
        field: field.to_string(),
        message: message.to_string(),
    }
}

/// Builds the resource type a CRD defines, checking the fields the real server requires.
pub fn resource_from_crd(crd: &Value) -> Result<ResourceInfo, CrdError> {
    let spec = crd
        .get("spec")
        .ok_or_else(|| field_err("spec", "Required value"))?;
    let s = |v: &Value, p: &str| v.get(p).and_then(Value::as_str).map(str::to_string);
    let group = s(spec, "group").ok_or_else(|| field_err("spec.group", "Required value"))?;
    let names = spec
        .get("names")
        .ok_or_else(|| field_err("spec.names", "Required value"))?;
    let plural =
        s(names, "plural").ok_or_else(|| field_err("spec.names.plural", "Required value"))?;
    let kind = s(names, "kind").ok_or_else(|| field_err("spec.names.kind", "Required value"))?;
    let singular = s(names, "singular").unwrap_or_else(|| kind.to_lowercase());
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let expected = format!("{plural}.{group}");
    if name != expected {
        return Err(field_err(
            "metadata.name",
            &format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let scope = s(spec, "scope").ok_or_else(|| field_err("spec.scope", "Required value"))?;
    let namespaced = match scope.as_str() {
        "Namespaced" => true,
        "Cluster" => false,
        other => {
            return Err(field_err(
                "spec.scope",
                &format!(
                    "Unsupported value: \"{other}\": supported values: \"Cluster\", \"Namespaced\""
                ),
            ));
        }
    };
    let list = |v: &Value, p: &str| -> Vec<String> {
        v.get(p)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut versions = Vec::new();
    let raw_versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            field_err(
                "spec.versions",
                "Invalid value: must have exactly one version marked as storage version",
            )
        })?;
    let mut storage_count = 0;
    for (i, v) in raw_versions.iter().enumerate() {
        let vname = s(v, "name")
            .ok_or_else(|| field_err(&format!("spec.versions[{i}].name"), "Required value"))?;
        if v.get("storage").and_then(Value::as_bool) == Some(true) {
            storage_count += 1;
        }
        if v.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let schema = v.pointer("/schema/openAPIV3Schema").cloned();
        let info = VersionInfo {
            name: vname,
            cel: schema
                .as_ref()
                .map(|s| Arc::new(kube_cel::compile_schema(s))),
            schema,
            printer_columns: v
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            status_subresource: v.pointer("/subresources/status").is_some(),
            selectable_fields: v
                .get("selectableFields")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|f| f.get("jsonPath").and_then(Value::as_str))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        };
        if v.get("storage").and_then(Value::as_bool) == Some(true) {
            versions.insert(0, info);
        } else {
            versions.push(info);
        }
    }
    if storage_count != 1 {
        return Err(field_err(
            "spec.versions",
            "Invalid value: must have exactly one version marked as storage version",
        ));
    }
    Ok(ResourceInfo {
        group,
        versions,
        kind,
        plural,
        singular,
        namespaced,
        short_names: list(names, "shortNames"),
        categories: list(names, "categories"),
        custom: true,
        tracks_generation: true,
    })
}

/// All resource types currently served.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    types: BTreeMap<TypeKey, Arc<ResourceInfo>>,
}

impl Registry {
    /// A registry holding the built-in kinds.
    pub fn with_builtins() -> Self {
        let mut r = Registry::default();
        for bi in BUILTINS {
            let info = ResourceInfo {
                group: bi.group.to_string(),
                versions: vec![VersionInfo {
                    name: bi.version.to_string(),
                    schema: None,
                    cel: None,
                    printer_columns: Vec::new(),
                    status_subresource: bi.status,
                    selectable_fields: Vec::new(),
                }],
                kind: bi.kind.to_string(),
                plural: bi.plural.to_string(),
                singular: bi.kind.to_lowercase(),
                namespaced: bi.namespaced,
                short_names: bi.short_names.iter().map(|s| s.to_string()).collect(),
                categories: bi.categories.iter().map(|s| s.to_string()).collect(),
                custom: false,
                tracks_generation: bi.generation,
            };
            r.insert(info);
        }
        r
    }

    /// Adds or replaces a type.
    pub fn insert(&mut self, info: ResourceInfo) {
        self.types.insert(info.key(), Arc::new(info));
    }

    /// Removes a type.
    pub fn remove(&mut self, key: &TypeKey) {
        self.types.remove(key);
    }

    /// Looks up a type by group, version and plural (the version must be served).
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        let key = TypeKey {
            group: group.to_string(),
            plural: plural.to_string(),
        };
        self.types
            .get(&key)
            .filter(|t| t.version(version).is_some())
            .cloned()
    }

    /// Looks up a type by key regardless of version.
    pub fn get(&self, key: &TypeKey) -> Option<Arc<ResourceInfo>> {
        self.types.get(key).cloned()
    }

    /// Looks up a type by apiVersion and kind.
    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceInfo>> {
        let (group, version) = split_api_version(api_version);
        self.types
            .values()
            .find(|t| t.group == group && t.kind == kind && t.version(version).is_some())
            .cloned()
    }

    /// All types.
    pub fn all(&self) -> impl Iterator<Item = &Arc<ResourceInfo>> {
        self.types.values()
    }
}

/// Splits `group/version` (or `v1`) into group and version.
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn crd_registers_storage_version_first() {
        let crd = json!({
            "metadata": {"name": "widgets.example.io"},
            "spec": {"group": "example.io", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1beta1", "served": true, "storage": false},
                    {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}}
                ]}
        });
        let info = resource_from_crd(&crd).unwrap();
        assert_eq!(info.preferred_version(), "v1");
        assert!(info.has_status("v1"));
        assert!(!info.has_status("v1beta1"));
        assert_eq!(info.short_names, vec!["wd"]);
    }

    #[test]
    fn crd_name_must_match() {
        let crd = json!({"metadata": {"name": "x"}, "spec": {"group": "g.io", "scope": "Cluster",
            "names": {"plural": "ws", "kind": "W"}, "versions": [{"name": "v1", "served": true, "storage": true}]}});
        assert!(resource_from_crd(&crd).is_err());
    }
}
