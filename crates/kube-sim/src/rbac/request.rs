//! What a request asks to do, in the terms RBAC rules are written in: the real server's
//! `RequestInfoFactory` (k8s.io/apiserver `endpoints/request/requestinfo.go`). Only the URL,
//! the method and the query count; the body never does, and whether the resource exists is
//! decided after authorization (an unauthorized request for a missing type gets 403, not 404).

use std::collections::HashMap;

/// A request on an API resource (`/api/...` or `/apis/...`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceAttributes {
    /// get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// API group, "" for the core group.
    pub group: String,
    /// Resource (plural), e.g. `configmaps`.
    pub resource: String,
    /// Subresource, e.g. `status`, or "".
    pub subresource: String,
    /// Namespace, "" at the cluster scope (for `namespaces/<n>` it is `<n>`, as on the server).
    pub namespace: String,
    /// Object name from the path, or from a `metadata.name=` field selector on list and watch.
    pub name: String,
}

/// A request on any other path (`/version`, `/api`, `/apis/g/v`, `/openapi/v3`, `/healthz`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NonResourceAttributes {
    /// The lower-case HTTP method (`get`, `post`, ...).
    pub verb: String,
    /// The URL path as sent.
    pub path: String,
}

/// The attributes RBAC authorizes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attributes {
    /// An API resource request.
    Resource(ResourceAttributes),
    /// A non-resource URL.
    NonResource(NonResourceAttributes),
}

impl Attributes {
    /// The verb being authorized.
    pub fn verb(&self) -> &str {
        match self {
            Attributes::Resource(r) => &r.verb,
            Attributes::NonResource(n) => &n.verb,
        }
    }

    /// The namespace whose RoleBindings may apply ("" for cluster-scoped and non-resource).
    pub fn namespace(&self) -> &str {
        match self {
            Attributes::Resource(r) => &r.namespace,
            Attributes::NonResource(_) => "",
        }
    }

    /// Parses a request the way the real server does. `query` holds the decoded parameters.
    pub fn from_request(method: &str, path: &str, query: &HashMap<String, String>) -> Self {
        let non_resource = || {
            Attributes::NonResource(NonResourceAttributes {
                verb: method.to_ascii_lowercase(),
                path: path.to_string(),
            })
        };
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let rest: &[&str] = match parts.as_slice() {
            ["api", rest @ ..] if rest.len() >= 2 => &rest[1..],
            ["apis", rest @ ..] if rest.len() >= 3 => &rest[2..],
            _ => return non_resource(),
        };
        let group = match parts.as_slice() {
            ["apis", g, ..] => (*g).to_string(),
            _ => String::new(),
        };
        let mut verb = match method.to_ascii_uppercase().as_str() {
            "POST" => "create",
            "GET" | "HEAD" => "get",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" => "delete",
            _ => "",
        }
        .to_string();
        let mut namespace = String::new();
        let mut rest = rest;
        if rest.first() == Some(&"namespaces")
            && let Some(ns) = rest.get(1)
        {
            namespace = (*ns).to_string();
            // `namespaces/<n>/status|finalize` are the namespace's own subresources; anything
            // else after the namespace name is a namespaced resource.
            if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
                rest = &rest[2..];
            }
        }
        let resource = rest.first().map(|s| (*s).to_string()).unwrap_or_default();
        let mut name = rest.get(1).map(|s| (*s).to_string()).unwrap_or_default();
        let subresource = rest.get(2).map(|s| (*s).to_string()).unwrap_or_default();
        if name.is_empty() && verb == "get" {
            let watch = query
                .get("watch")
                .is_some_and(|w| !matches!(w.to_ascii_lowercase().as_str(), "false" | "0"));
            verb = if watch { "watch" } else { "list" }.to_string();
            if let Some(selected) = query.get("fieldSelector").and_then(|f| exact_name(f)) {
                name = selected;
            }
        }
        if name.is_empty() && verb == "delete" {
            verb = "deletecollection".to_string();
        }
        Attributes::Resource(ResourceAttributes {
            verb,
            group,
            resource,
            subresource,
            namespace,
            name,
        })
    }
}

/// The name a field selector requires exactly (`metadata.name=x` or `==`), if it is a valid
/// path segment: list and watch of one object are authorized with that name.
fn exact_name(selector: &str) -> Option<String> {
    selector.split(',').find_map(|term| {
        let (field, value) = term.split_once("==").or_else(|| {
            if term.contains("!=") {
                None
            } else {
                term.split_once('=')
            }
        })?;
        (field.trim() == "metadata.name"
            && !value.is_empty()
            && value != "."
            && value != ".."
            && !value.contains(['/', '%']))
        .then(|| value.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(method: &str, path: &str, query: &[(&str, &str)]) -> Attributes {
        let q = query
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        Attributes::from_request(method, path, &q)
    }

    fn res(verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Attributes {
        Attributes::Resource(ResourceAttributes {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: name.into(),
        })
    }

    #[test]
    fn http_requests_map_to_verbs_like_the_server() {
        let cases = [
            (
                attrs("GET", "/api/v1/namespaces/a/pods/p", &[]),
                res("get", "", "pods", "", "a", "p"),
            ),
            (
                attrs("GET", "/api/v1/namespaces/a/pods", &[]),
                res("list", "", "pods", "", "a", ""),
            ),
            (
                attrs("GET", "/api/v1/pods", &[("watch", "true")]),
                res("watch", "", "pods", "", "", ""),
            ),
            (
                attrs("GET", "/api/v1/pods", &[("watch", "false")]),
                res("list", "", "pods", "", "", ""),
            ),
            (
                attrs("POST", "/apis/apps/v1/namespaces/a/deployments", &[]),
                res("create", "apps", "deployments", "", "a", ""),
            ),
            (
                attrs("PUT", "/apis/g.io/v1/namespaces/a/ws/w/status", &[]),
                res("update", "g.io", "ws", "status", "a", "w"),
            ),
            (
                attrs("PATCH", "/apis/g.io/v1/ws/w", &[]),
                res("patch", "g.io", "ws", "", "", "w"),
            ),
            (
                attrs("DELETE", "/api/v1/namespaces/a/configmaps/c", &[]),
                res("delete", "", "configmaps", "", "a", "c"),
            ),
            (
                attrs("DELETE", "/api/v1/namespaces/a/configmaps", &[]),
                res("deletecollection", "", "configmaps", "", "a", ""),
            ),
            (
                attrs("GET", "/api/v1/namespaces/a", &[]),
                res("get", "", "namespaces", "", "a", "a"),
            ),
            (
                attrs("PUT", "/api/v1/namespaces/a/finalize", &[]),
                res("update", "", "namespaces", "finalize", "a", "a"),
            ),
            (
                attrs("GET", "/api/v1/namespaces", &[]),
                res("list", "", "namespaces", "", "", ""),
            ),
            (
                attrs(
                    "GET",
                    "/api/v1/namespaces/a/configmaps",
                    &[("watch", "1"), ("fieldSelector", "metadata.name=only")],
                ),
                res("watch", "", "configmaps", "", "a", "only"),
            ),
            (
                attrs(
                    "GET",
                    "/api/v1/namespaces/a/configmaps",
                    &[("fieldSelector", "metadata.name!=x")],
                ),
                res("list", "", "configmaps", "", "a", ""),
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn discovery_and_health_are_non_resource_urls() {
        for path in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps/v1",
            "/version",
            "/healthz",
        ] {
            assert_eq!(
                attrs("GET", path, &[]),
                Attributes::NonResource(NonResourceAttributes {
                    verb: "get".into(),
                    path: path.into()
                })
            );
        }
    }
}
