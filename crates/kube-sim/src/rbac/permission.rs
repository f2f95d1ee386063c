//! The permissions a rule grants, one by one: each of its verbs on each of its API groups and
//! resources (or on each of its non-resource URLs), as written in the rule, `*` included. A rule
//! `verbs: [get, list]` on `resources: [a, b]` of one group grants four; which of them allowed a
//! request is what [`super::access::AccessRecord`] counts, so a test can list the verbs and
//! resources a role grants but nobody used, not only whole unused rules.

use super::policy::{PolicyRule, RoleKind};
use super::request::{Attributes, NonResourceAttributes, ResourceAttributes};
use std::fmt;

/// One permission of a rule: one of its verbs on one of its resources, as written in the rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// A verb on a resource (`resource` or `resource/subresource`, or a `*` form) of a group.
    Resource {
        /// The verb entry (`get`, ... or `*`).
        verb: String,
        /// The API group entry ("" = core, or `*`).
        api_group: String,
        /// The resource entry (`secrets`, `droplets/status`, `*/status`, `*`).
        resource: String,
    },
    /// A verb on a non-resource URL entry (`/version`, `/apis/*`, `*`).
    NonResource {
        /// The verb entry.
        verb: String,
        /// The URL entry.
        url: String,
    },
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Permission::Resource {
                verb,
                api_group,
                resource,
            } => write!(f, "{verb} \"{resource}\" in API group \"{api_group}\""),
            Permission::NonResource { verb, url } => write!(f, "{verb} path \"{url}\""),
        }
    }
}

/// A permission of one stored rule: the role, the rule's index in it, and the permission.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RulePermission {
    /// Role or ClusterRole.
    pub role_kind: RoleKind,
    /// Namespace of a Role, "" for a ClusterRole.
    pub role_namespace: String,
    /// Role name (for an aggregated ClusterRole: the ClusterRole the rule is written in).
    pub role: String,
    /// Index of the rule in the role's `rules`.
    pub index: usize,
    /// The permission.
    pub permission: Permission,
}

impl fmt::Display for RulePermission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        super::policy::write_role(f, self.role_kind, &self.role_namespace, &self.role)?;
        write!(f, " rule {}: {}", self.index, self.permission)
    }
}

impl PolicyRule {
    /// Every permission this rule grants: verbs × apiGroups × resources, then verbs ×
    /// nonResourceURLs, in the rule's order (`resourceNames` narrow them all alike).
    pub fn permissions(&self) -> Vec<Permission> {
        let mut out = Vec::new();
        for verb in &self.verbs {
            for api_group in &self.api_groups {
                for resource in &self.resources {
                    out.push(Permission::Resource {
                        verb: verb.clone(),
                        api_group: api_group.clone(),
                        resource: resource.clone(),
                    });
                }
            }
            for url in &self.non_resource_urls {
                out.push(Permission::NonResource {
                    verb: verb.clone(),
                    url: url.clone(),
                });
            }
        }
        out
    }

    /// The permission of this rule that allows the request (`RuleAllows`), or None. When
    /// several would, the first entries of the rule's lists that match are the one counted.
    pub fn permission_for(&self, attributes: &Attributes) -> Option<Permission> {
        match attributes {
            Attributes::Resource(r) => self.resource_permission(r),
            Attributes::NonResource(n) => self.non_resource_permission(n),
        }
    }

    fn matching_verb(&self, verb: &str) -> Option<&String> {
        self.verbs.iter().find(|v| *v == "*" || *v == verb)
    }

    fn resource_permission(&self, r: &ResourceAttributes) -> Option<Permission> {
        // A rule naming objects never matches a request without a name (list, watch, create
        // and deletecollection of everything).
        if !self.resource_names.is_empty() && !self.resource_names.contains(&r.name) {
            return None;
        }
        let combined = if r.subresource.is_empty() {
            r.resource.clone()
        } else {
            format!("{}/{}", r.resource, r.subresource)
        };
        let verb = self.matching_verb(&r.verb)?;
        let api_group = self
            .api_groups
            .iter()
            .find(|g| *g == "*" || **g == r.group)?;
        let resource = self.resources.iter().find(|rule| {
            *rule == "*"
                || **rule == combined
                || (!r.subresource.is_empty()
                    && rule.strip_prefix("*/") == Some(r.subresource.as_str()))
        })?;
        Some(Permission::Resource {
            verb: verb.clone(),
            api_group: api_group.clone(),
            resource: resource.clone(),
        })
    }

    fn non_resource_permission(&self, n: &NonResourceAttributes) -> Option<Permission> {
        let verb = self.matching_verb(&n.verb)?;
        let url = self.non_resource_urls.iter().find(|url| {
            *url == "*"
                || **url == n.path
                || url
                    .strip_suffix('*')
                    .is_some_and(|prefix| n.path.starts_with(prefix))
        })?;
        Some(Permission::NonResource {
            verb: verb.clone(),
            url: url.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(v: serde_json::Value) -> PolicyRule {
        PolicyRule::from_json(&v)
    }

    fn res(verb: &str, group: &str, resource: &str, sub: &str) -> Attributes {
        Attributes::Resource(ResourceAttributes {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: "a".into(),
            name: "x".into(),
        })
    }

    fn perm(verb: &str, api_group: &str, resource: &str) -> Permission {
        Permission::Resource {
            verb: verb.into(),
            api_group: api_group.into(),
            resource: resource.into(),
        }
    }

    #[test]
    fn a_rule_grants_every_verb_on_every_resource_it_names() {
        let r = rule(json!({"apiGroups": ["g.io"], "resources": ["a", "b"],
            "verbs": ["get", "list", "watch", "patch"]}));
        let all = r.permissions();
        assert_eq!(all.len(), 8);
        assert_eq!(all[0], perm("get", "g.io", "a"));
        assert_eq!(all[1], perm("get", "g.io", "b"));
        assert_eq!(all[7], perm("patch", "g.io", "b"));
        let urls = rule(json!({"nonResourceURLs": ["/version", "/apis/*"], "verbs": ["get"]}));
        assert_eq!(
            urls.permissions(),
            [
                Permission::NonResource {
                    verb: "get".into(),
                    url: "/version".into()
                },
                Permission::NonResource {
                    verb: "get".into(),
                    url: "/apis/*".into()
                },
            ]
        );
    }

    #[test]
    fn the_permission_that_allows_a_request_is_the_rules_own_entry() {
        let r = rule(
            json!({"apiGroups": ["g.io", "*"], "resources": ["ws/status", "*/status", "*"],
            "verbs": ["patch", "*"]}),
        );
        assert_eq!(
            r.permission_for(&res("patch", "g.io", "ws", "status")),
            Some(perm("patch", "g.io", "ws/status"))
        );
        assert_eq!(
            r.permission_for(&res("get", "other.io", "vs", "status")),
            Some(perm("*", "*", "*/status"))
        );
        assert_eq!(
            r.permission_for(&res("delete", "g.io", "ws", "")),
            Some(perm("*", "g.io", "*"))
        );
        let named = rule(json!({"apiGroups": [""], "resources": ["configmaps"],
            "resourceNames": ["lock"], "verbs": ["get", "list"]}));
        assert_eq!(
            named.permission_for(&res("list", "", "configmaps", "")),
            None
        );
        assert_eq!(
            named.permission_for(&Attributes::Resource(ResourceAttributes {
                verb: "get".into(),
                group: String::new(),
                resource: "configmaps".into(),
                subresource: String::new(),
                namespace: "a".into(),
                name: "lock".into(),
            })),
            Some(perm("get", "", "configmaps"))
        );
        let urls = rule(json!({"nonResourceURLs": ["/apis/*"], "verbs": ["get"]}));
        assert_eq!(
            urls.permission_for(&Attributes::NonResource(NonResourceAttributes {
                verb: "get".into(),
                path: "/apis/g.io/v1".into(),
            })),
            Some(Permission::NonResource {
                verb: "get".into(),
                url: "/apis/*".into()
            })
        );
    }

    #[test]
    fn permissions_read_like_the_servers_messages() {
        let p = RulePermission {
            role_kind: RoleKind::ClusterRole,
            role_namespace: String::new(),
            role: "op".into(),
            index: 2,
            permission: perm("patch", "mcp.agentopia.io", "droplets/status"),
        };
        assert_eq!(
            p.to_string(),
            "ClusterRole \"op\" rule 2: patch \"droplets/status\" in API group \"mcp.agentopia.io\""
        );
    }
}
