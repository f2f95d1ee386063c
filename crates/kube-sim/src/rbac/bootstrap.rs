//! The default roles a real API server creates at start (`bootstrappolicy/policy.go`), only
//! those that matter to clients: discovery and health for every authenticated user
//! (`system:discovery`, `system:public-info-viewer`), self access reviews (`system:basic-user`)
//! and `cluster-admin` (bound to `system:masters`, and there to bind to others).

use serde_json::{Value, json};

/// The label the defaults carry (`kubernetes.io/bootstrapping: rbac-defaults`); rules of roles
/// with it are left out of the "unused rules" listing.
pub const BOOTSTRAP_LABEL: (&str, &str) = ("kubernetes.io/bootstrapping", "rbac-defaults");

fn metadata(name: &str) -> Value {
    json!({
        "name": name,
        "labels": {BOOTSTRAP_LABEL.0: BOOTSTRAP_LABEL.1},
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    })
}

fn cluster_role(name: &str, rules: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": metadata(name), "rules": rules})
}

fn binding_to_groups(name: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> = groups
        .iter()
        .map(|g| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g}))
        .collect();
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": metadata(name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": subjects})
}

/// The default ClusterRoles and ClusterRoleBindings, as the real server stores them.
pub fn bootstrap_objects() -> Vec<Value> {
    let health = ["/healthz", "/livez", "/readyz", "/version", "/version/"];
    let discovery = [
        "/livez",
        "/readyz",
        "/healthz",
        "/version",
        "/version/",
        "/openapi",
        "/openapi/*",
        "/api",
        "/api/*",
        "/apis",
        "/apis/*",
    ];
    vec![
        cluster_role(
            "cluster-admin",
            json!([
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                {"nonResourceURLs": ["*"], "verbs": ["*"]},
            ]),
        ),
        binding_to_groups("cluster-admin", &["system:masters"]),
        cluster_role(
            "system:discovery",
            json!([{"nonResourceURLs": discovery, "verbs": ["get"]}]),
        ),
        binding_to_groups("system:discovery", &["system:authenticated"]),
        cluster_role(
            "system:public-info-viewer",
            json!([{"nonResourceURLs": health, "verbs": ["get"]}]),
        ),
        binding_to_groups(
            "system:public-info-viewer",
            &["system:authenticated", "system:unauthenticated"],
        ),
        cluster_role(
            "system:basic-user",
            json!([
                {"apiGroups": ["authorization.k8s.io"],
                 "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                 "verbs": ["create"]},
                {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"],
                 "verbs": ["create"]},
            ]),
        ),
        binding_to_groups("system:basic-user", &["system:authenticated"]),
    ]
}
