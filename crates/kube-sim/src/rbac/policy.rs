//! Roles and bindings compiled from the stored objects, evaluated like the real RBAC
//! authorizer (`plugin/pkg/auth/authorizer/rbac` and `pkg/registry/rbac/validation/rule.go`):
//! ClusterRoleBindings first, then the RoleBindings of the request's namespace; a binding
//! applies when one of its subjects is the user, one of its groups, or its service account;
//! the first rule of the bound role that allows the request decides. Rules only add: nothing
//! denies.

use super::permission::Permission;
use super::request::Attributes;
use super::{BOOTSTRAP_LABEL, UserInfo};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// One rule of a Role or ClusterRole (`rbac.authorization.k8s.io/v1 PolicyRule`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyRule {
    /// Verbs, or `*`.
    pub verbs: Vec<String>,
    /// API groups ("" = core), or `*`.
    pub api_groups: Vec<String>,
    /// Resources, `resource/subresource`, `*/subresource`, or `*`.
    pub resources: Vec<String>,
    /// Object names the rule is limited to (empty = any).
    pub resource_names: Vec<String>,
    /// Non-resource URLs (`/version`, `/apis/*`, `*`).
    pub non_resource_urls: Vec<String>,
}

fn strings(v: &Value, field: &str) -> Vec<String> {
    v.get(field)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn text(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

impl PolicyRule {
    /// Reads a rule from its JSON form.
    pub fn from_json(v: &Value) -> Self {
        PolicyRule {
            verbs: strings(v, "verbs"),
            api_groups: strings(v, "apiGroups"),
            resources: strings(v, "resources"),
            resource_names: strings(v, "resourceNames"),
            non_resource_urls: strings(v, "nonResourceURLs"),
        }
    }

    /// Whether this rule allows the request (`RuleAllows`); which of its permissions did is
    /// [`PolicyRule::permission_for`].
    pub fn allows(&self, attributes: &Attributes) -> bool {
        self.permission_for(attributes).is_some()
    }
}

/// Role or ClusterRole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RoleKind {
    /// A namespaced Role.
    Role,
    /// A ClusterRole.
    ClusterRole,
}

impl RoleKind {
    /// The kind as written in `roleRef.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            RoleKind::Role => "Role",
            RoleKind::ClusterRole => "ClusterRole",
        }
    }
}

/// Which rule allowed a request: the binding, the role it binds and the rule's index in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleRef {
    /// Namespace of the RoleBinding, "" for a ClusterRoleBinding.
    pub binding_namespace: String,
    /// Name of the binding.
    pub binding: String,
    /// Kind of the bound role.
    pub role_kind: RoleKind,
    /// Namespace of a Role ("" for a ClusterRole, even when a RoleBinding binds it).
    pub role_namespace: String,
    /// Name of the role (for an aggregated ClusterRole: the ClusterRole the rule comes from).
    pub role: String,
    /// Index of the rule in that role's `rules`.
    pub index: usize,
}

/// Writes `ClusterRole "name"` or `Role "namespace/name"`.
pub(crate) fn write_role(
    f: &mut fmt::Formatter<'_>,
    kind: RoleKind,
    namespace: &str,
    name: &str,
) -> fmt::Result {
    if namespace.is_empty() {
        write!(f, "{} \"{name}\"", kind.as_str())
    } else {
        write!(f, "{} \"{namespace}/{name}\"", kind.as_str())
    }
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_role(f, self.role_kind, &self.role_namespace, &self.role)?;
        write!(f, " rule {} via ", self.index)?;
        if self.binding_namespace.is_empty() {
            write!(f, "ClusterRoleBinding \"{}\"", self.binding)
        } else {
            write!(
                f,
                "RoleBinding \"{}/{}\"",
                self.binding_namespace, self.binding
            )
        }
    }
}

/// The outcome of authorizing one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The user is in `system:masters`: no rule was consulted.
    Privileged,
    /// A rule allowed it; `reason` is the server's text (`RBAC: allowed by ...`).
    Allowed {
        /// The rule.
        rule: RuleRef,
        /// Which of the rule's permissions (verb × group × resource entry) allowed it (boxed:
        /// the other outcomes carry nothing).
        permission: Box<Permission>,
        /// The reason a SubjectAccessReview reports.
        reason: String,
    },
    /// No rule allowed it.
    Denied,
}

#[derive(Debug, Clone)]
struct Subject {
    kind: String,
    name: String,
    namespace: String,
}

impl Subject {
    /// `appliesToUser`: a ServiceAccount subject without a namespace means the binding's.
    fn applies_to(&self, user: &UserInfo, binding_namespace: &str) -> bool {
        match self.kind.as_str() {
            "User" => user.name == self.name,
            "Group" => user.groups.contains(&self.name),
            "ServiceAccount" => {
                let ns = if self.namespace.is_empty() {
                    binding_namespace
                } else {
                    &self.namespace
                };
                !ns.is_empty() && user.name == format!("system:serviceaccount:{ns}:{}", self.name)
            }
            _ => false,
        }
    }

    /// `describeSubject` of the server's allow reason.
    fn describe(&self, binding_namespace: &str) -> String {
        if self.kind == "ServiceAccount" {
            let ns = if self.namespace.is_empty() {
                binding_namespace
            } else {
                &self.namespace
            };
            format!("{} \"{}/{}\"", self.kind, self.name, ns)
        } else {
            format!("{} \"{}\"", self.kind, self.name)
        }
    }
}

#[derive(Debug, Clone)]
struct Binding {
    namespace: String,
    name: String,
    role_kind: Option<RoleKind>,
    role_name: String,
    subjects: Vec<Subject>,
}

impl Binding {
    fn from_json(v: &Value) -> Self {
        let role_kind = match v.pointer("/roleRef/kind").and_then(Value::as_str) {
            Some("Role") => Some(RoleKind::Role),
            Some("ClusterRole") => Some(RoleKind::ClusterRole),
            _ => None,
        };
        Binding {
            namespace: text(v, "/metadata/namespace"),
            name: text(v, "/metadata/name"),
            role_kind,
            role_name: text(v, "/roleRef/name"),
            subjects: v
                .get("subjects")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|s| Subject {
                            kind: text(s, "/kind"),
                            name: text(s, "/name"),
                            namespace: text(s, "/namespace"),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// A role's rules and whether it is one of the defaults every cluster has.
#[derive(Debug, Clone)]
struct Role {
    rules: Vec<PolicyRule>,
    bootstrap: bool,
    /// For an aggregated ClusterRole: the ClusterRole and index each rule comes from (the
    /// aggregation controller copies them into `rules`; uses are counted at the source).
    origins: Option<Vec<(String, usize)>>,
    /// `aggregationRule.clusterRoleSelectors`, when the role aggregates others.
    aggregation: Option<Vec<crate::selector::LabelSelector>>,
}

impl Role {
    fn from_json(v: &Value) -> Self {
        Role {
            rules: v
                .get("rules")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(PolicyRule::from_json).collect())
                .unwrap_or_default(),
            bootstrap: v
                .pointer("/metadata/labels")
                .and_then(|l| l.get(BOOTSTRAP_LABEL.0))
                .and_then(Value::as_str)
                == Some(BOOTSTRAP_LABEL.1),
            origins: None,
            aggregation: v
                .pointer("/aggregationRule/clusterRoleSelectors")
                .and_then(Value::as_array)
                .map(|selectors| {
                    selectors
                        .iter()
                        // A selector the server would have refused matches nothing.
                        .filter_map(|s| crate::selector::LabelSelector::from_object(s).ok())
                        .collect()
                }),
        }
    }
}

/// One rule of a stored role, for listing what exists (and so what was never used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinedRule {
    /// Role or ClusterRole.
    pub role_kind: RoleKind,
    /// Namespace of a Role, "" for a ClusterRole.
    pub role_namespace: String,
    /// Role name.
    pub role: String,
    /// Index in `rules`.
    pub index: usize,
    /// The rule.
    pub rule: PolicyRule,
}

/// Every Role, ClusterRole and binding of the store, ready to evaluate.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    cluster_role_bindings: Vec<Binding>,
    role_bindings: HashMap<String, Vec<Binding>>,
    cluster_roles: HashMap<String, Role>,
    roles: HashMap<(String, String), Role>,
}

impl Policy {
    /// Compiles the four kinds' objects (as stored, in any order).
    pub fn compile<'a>(
        roles: impl IntoIterator<Item = &'a Arc<Value>>,
        cluster_roles: impl IntoIterator<Item = &'a Arc<Value>>,
        role_bindings: impl IntoIterator<Item = &'a Arc<Value>>,
        cluster_role_bindings: impl IntoIterator<Item = &'a Arc<Value>>,
    ) -> Self {
        let mut p = Policy::default();
        for r in roles {
            p.roles.insert(
                (text(r, "/metadata/namespace"), text(r, "/metadata/name")),
                Role::from_json(r),
            );
        }
        let cluster_roles: Vec<&Arc<Value>> = cluster_roles.into_iter().collect();
        for r in &cluster_roles {
            p.cluster_roles
                .insert(text(r, "/metadata/name"), Role::from_json(r));
        }
        p.aggregate(&cluster_roles);
        for b in role_bindings {
            let b = Binding::from_json(b);
            p.role_bindings
                .entry(b.namespace.clone())
                .or_default()
                .push(b);
        }
        p.cluster_role_bindings = cluster_role_bindings
            .into_iter()
            .map(|b| Binding::from_json(b))
            .collect();
        p
    }

    /// What the clusterrole-aggregation controller does: a ClusterRole with an
    /// `aggregationRule` gets the rules of every other ClusterRole its selectors match, in name
    /// order, without duplicates (its own stored rules are replaced, as the controller does).
    fn aggregate(&mut self, cluster_roles: &[&Arc<Value>]) {
        let mut sources: Vec<&Arc<Value>> = cluster_roles.to_vec();
        sources.sort_by_key(|r| text(r, "/metadata/name"));
        let aggregating: Vec<String> = self
            .cluster_roles
            .iter()
            .filter(|(_, r)| r.aggregation.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        for name in aggregating {
            let Some(selectors) = self
                .cluster_roles
                .get(&name)
                .and_then(|r| r.aggregation.clone())
            else {
                continue;
            };
            let mut rules: Vec<PolicyRule> = Vec::new();
            let mut origins = Vec::new();
            for source in &sources {
                let source_name = text(source, "/metadata/name");
                if source_name == name || !selectors.iter().any(|s| s.matches(source)) {
                    continue;
                }
                let Some(source_role) = self.cluster_roles.get(&source_name) else {
                    continue;
                };
                for (i, rule) in source_role.rules.iter().enumerate() {
                    if !rules.contains(rule) {
                        rules.push(rule.clone());
                        origins.push((source_name.clone(), i));
                    }
                }
            }
            if let Some(role) = self.cluster_roles.get_mut(&name) {
                role.rules = rules;
                role.origins = Some(origins);
            }
        }
    }

    /// Authorizes a request (`RBACAuthorizer.Authorize`, after the privileged-group check).
    pub fn authorize(&self, user: &UserInfo, attributes: &Attributes) -> Decision {
        if user.is_privileged() {
            return Decision::Privileged;
        }
        let namespace = attributes.namespace();
        let cluster = self.cluster_role_bindings.iter();
        let local = if namespace.is_empty() {
            [].iter()
        } else {
            self.role_bindings
                .get(namespace)
                .map(|v| v.iter())
                .unwrap_or_else(|| [].iter())
        };
        for binding in cluster.chain(local) {
            let Some(subject) = binding
                .subjects
                .iter()
                .find(|s| s.applies_to(user, &binding.namespace))
            else {
                continue;
            };
            let Some((role_kind, role_namespace, role)) = self.resolve(binding) else {
                continue;
            };
            if let Some((index, permission)) = role
                .rules
                .iter()
                .enumerate()
                .find_map(|(i, r)| r.permission_for(attributes).map(|p| (i, p)))
            {
                let binding_text = if binding.namespace.is_empty() {
                    format!("ClusterRoleBinding \"{}\"", binding.name)
                } else {
                    format!("RoleBinding \"{}/{}\"", binding.name, binding.namespace)
                };
                let reason = format!(
                    "RBAC: allowed by {binding_text} of {} \"{}\" to {}",
                    role_kind.as_str(),
                    binding.role_name,
                    subject.describe(&binding.namespace)
                );
                // A rule of an aggregated ClusterRole is counted where it is written.
                let (role, index) = match role.origins.as_ref().and_then(|o| o.get(index)) {
                    Some((source, i)) => (source.clone(), *i),
                    None => (binding.role_name.clone(), index),
                };
                return Decision::Allowed {
                    rule: RuleRef {
                        binding_namespace: binding.namespace.clone(),
                        binding: binding.name.clone(),
                        role_kind,
                        role_namespace,
                        role,
                        index,
                    },
                    permission: Box::new(permission),
                    reason,
                };
            }
        }
        Decision::Denied
    }

    /// The role a binding refers to (`GetRoleReferenceRules`): a Role only from a RoleBinding
    /// in its namespace; a missing role grants nothing.
    fn resolve(&self, binding: &Binding) -> Option<(RoleKind, String, &Role)> {
        match binding.role_kind? {
            RoleKind::Role if !binding.namespace.is_empty() => self
                .roles
                .get(&(binding.namespace.clone(), binding.role_name.clone()))
                .map(|r| (RoleKind::Role, binding.namespace.clone(), r)),
            RoleKind::Role => None,
            RoleKind::ClusterRole => self
                .cluster_roles
                .get(&binding.role_name)
                .map(|r| (RoleKind::ClusterRole, String::new(), r)),
        }
    }

    /// Every rule of every stored role that is not one of the built-in defaults, sorted.
    pub fn defined_rules(&self) -> Vec<DefinedRule> {
        let mut out: Vec<DefinedRule> = Vec::new();
        let mut push = |kind: RoleKind, ns: &str, name: &str, role: &Role| {
            // Aggregated roles hold copies; their rules are listed where they are written.
            if role.bootstrap || role.origins.is_some() {
                return;
            }
            for (index, rule) in role.rules.iter().enumerate() {
                out.push(DefinedRule {
                    role_kind: kind,
                    role_namespace: ns.to_string(),
                    role: name.to_string(),
                    index,
                    rule: rule.clone(),
                });
            }
        };
        for (name, role) in &self.cluster_roles {
            push(RoleKind::ClusterRole, "", name, role);
        }
        for ((ns, name), role) in &self.roles {
            push(RoleKind::Role, ns, name, role);
        }
        out.sort_by(|a, b| {
            (a.role_kind, &a.role_namespace, &a.role, a.index).cmp(&(
                b.role_kind,
                &b.role_namespace,
                &b.role,
                b.index,
            ))
        });
        out
    }
}

/// Go's `%q` for the names in messages (quotes and backslashes escaped).
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The 403 the server sends when no rule allowed the request (`responsewriters.Forbidden`
/// with `forbiddenMessage`, wrapped by `apierrors.NewForbidden`).
pub fn forbidden(user: &UserInfo, attributes: &Attributes) -> crate::status::ApiError {
    match attributes {
        Attributes::NonResource(n) => crate::status::ApiError::Forbidden {
            message: format!(
                "forbidden: User {} cannot {} path {}",
                quoted(&user.name),
                n.verb,
                quoted(&n.path)
            ),
            name: String::new(),
            group: String::new(),
            kind: String::new(),
        },
        Attributes::Resource(r) => {
            let resource = if r.subresource.is_empty() {
                r.resource.clone()
            } else {
                format!("{}/{}", r.resource, r.subresource)
            };
            let scope = if r.namespace.is_empty() {
                "at the cluster scope".to_string()
            } else {
                format!("in the namespace {}", quoted(&r.namespace))
            };
            let detail = format!(
                "User {} cannot {} resource {} in API group {} {scope}",
                quoted(&user.name),
                r.verb,
                quoted(&resource),
                quoted(&r.group)
            );
            let qualified = crate::status::qualified(&r.resource, &r.group);
            let message = if r.name.is_empty() {
                format!("{qualified} is forbidden: {detail}")
            } else {
                format!("{qualified} {} is forbidden: {detail}", quoted(&r.name))
            };
            crate::status::ApiError::Forbidden {
                message,
                name: r.name.clone(),
                group: r.group.clone(),
                kind: r.resource.clone(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rbac::request::{NonResourceAttributes, ResourceAttributes};
    use serde_json::json;

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

    fn rule(v: Value) -> PolicyRule {
        PolicyRule::from_json(&v)
    }

    #[test]
    fn rules_match_like_the_server() {
        let status = rule(
            json!({"apiGroups": ["g.io"], "resources": ["ws/status"], "verbs": ["patch", "update"]}),
        );
        assert!(status.allows(&res("patch", "g.io", "ws", "status", "a", "w")));
        assert!(!status.allows(&res("patch", "g.io", "ws", "", "a", "w")));
        assert!(!status.allows(&res("get", "g.io", "ws", "status", "a", "w")));
        assert!(!status.allows(&res("patch", "other.io", "ws", "status", "a", "w")));

        let any_status =
            rule(json!({"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["*"]}));
        assert!(any_status.allows(&res("update", "x", "pods", "status", "", "p")));
        assert!(!any_status.allows(&res("update", "x", "pods", "", "", "p")));
        assert!(!any_status.allows(&res("update", "x", "pods", "scale", "", "p")));

        let main_only = rule(json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}));
        assert!(!main_only.allows(&res("get", "", "pods", "log", "a", "p")));

        let named = rule(
            json!({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["lock"], "verbs": ["get", "list", "watch", "create", "update"]}),
        );
        assert!(named.allows(&res("get", "", "configmaps", "", "a", "lock")));
        assert!(named.allows(&res("watch", "", "configmaps", "", "a", "lock")));
        assert!(!named.allows(&res("get", "", "configmaps", "", "a", "other")));
        assert!(!named.allows(&res("list", "", "configmaps", "", "a", "")));
        assert!(!named.allows(&res("create", "", "configmaps", "", "a", "")));

        let urls = rule(json!({"nonResourceURLs": ["/apis/*", "/version"], "verbs": ["get"]}));
        let nr = |path: &str, verb: &str| {
            Attributes::NonResource(NonResourceAttributes {
                verb: verb.into(),
                path: path.into(),
            })
        };
        assert!(urls.allows(&nr("/apis/apps/v1", "get")));
        assert!(urls.allows(&nr("/version", "get")));
        assert!(!urls.allows(&nr("/version/x", "get")));
        assert!(!urls.allows(&nr("/version", "post")));
        assert!(!urls.allows(&res("get", "", "pods", "", "", "")));
    }

    fn obj(v: Value) -> Arc<Value> {
        Arc::new(v)
    }

    #[test]
    fn role_binding_to_a_cluster_role_grants_only_in_its_namespace() {
        let cr = obj(json!({"metadata": {"name": "reader"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}));
        let rb = obj(json!({"metadata": {"name": "read", "namespace": "a"},
            "roleRef": {"kind": "ClusterRole", "name": "reader", "apiGroup": "rbac.authorization.k8s.io"},
            "subjects": [{"kind": "ServiceAccount", "name": "op"}]}));
        let p = Policy::compile([], [&cr], [&rb], []);
        let sa = UserInfo::service_account("a", "op");
        match p.authorize(&sa, &res("get", "", "configmaps", "", "a", "c")) {
            Decision::Allowed {
                rule,
                permission,
                reason,
            } => {
                assert_eq!(
                    permission.to_string(),
                    "get \"configmaps\" in API group \"\""
                );
                assert_eq!(
                    rule.to_string(),
                    "ClusterRole \"reader\" rule 0 via RoleBinding \"a/read\""
                );
                assert_eq!(
                    reason,
                    "RBAC: allowed by RoleBinding \"read/a\" of ClusterRole \"reader\" to ServiceAccount \"op/a\""
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            p.authorize(&sa, &res("get", "", "configmaps", "", "b", "c")),
            Decision::Denied
        );
        assert_eq!(
            p.authorize(&sa, &res("get", "", "configmaps", "", "", "c")),
            Decision::Denied
        );
        // The subject's namespace defaults to the binding's: another namespace's account with
        // the same name gets nothing.
        assert_eq!(
            p.authorize(
                &UserInfo::service_account("b", "op"),
                &res("get", "", "configmaps", "", "a", "c")
            ),
            Decision::Denied
        );
    }

    #[test]
    fn groups_users_missing_roles_and_masters() {
        let cr = obj(json!({"metadata": {"name": "all"},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}));
        let by_group = obj(json!({"metadata": {"name": "g"},
            "roleRef": {"kind": "ClusterRole", "name": "all"},
            "subjects": [{"kind": "Group", "name": "ops"}]}));
        let dangling = obj(json!({"metadata": {"name": "d"},
            "roleRef": {"kind": "ClusterRole", "name": "missing"},
            "subjects": [{"kind": "User", "name": "bob"}]}));
        let p = Policy::compile([], [&cr], [], [&by_group, &dangling]);
        let any = res("delete", "apps", "deployments", "", "x", "d");
        assert!(matches!(
            p.authorize(&UserInfo::user("alice", &["ops"]), &any),
            Decision::Allowed { .. }
        ));
        assert_eq!(
            p.authorize(&UserInfo::user("bob", &[]), &any),
            Decision::Denied
        );
        assert_eq!(
            p.authorize(&UserInfo::user("root", &["system:masters"]), &any),
            Decision::Privileged
        );
    }

    #[test]
    fn aggregated_cluster_roles_take_the_rules_of_the_roles_they_select() {
        let view = obj(json!({"metadata": {"name": "view"},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"aggregate-to-view": "true"}}]},
            "rules": []}));
        let widgets = obj(
            json!({"metadata": {"name": "widgets-view", "labels": {"aggregate-to-view": "true"}},
            "rules": [{"apiGroups": ["g.io"], "resources": ["widgets"], "verbs": ["get"]}]}),
        );
        let unrelated = obj(json!({"metadata": {"name": "secrets"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}));
        let binding = obj(json!({"metadata": {"name": "viewers"},
            "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "ann"}]}));
        let p = Policy::compile([], [&view, &widgets, &unrelated], [], [&binding]);
        let ann = UserInfo::user("ann", &[]);
        match p.authorize(&ann, &res("get", "g.io", "widgets", "", "a", "w")) {
            Decision::Allowed { rule, reason, .. } => {
                assert_eq!(
                    rule.to_string(),
                    "ClusterRole \"widgets-view\" rule 0 via ClusterRoleBinding \"viewers\""
                );
                assert_eq!(
                    reason,
                    "RBAC: allowed by ClusterRoleBinding \"viewers\" of ClusterRole \"view\" to User \"ann\""
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            p.authorize(&ann, &res("get", "", "secrets", "", "a", "s")),
            Decision::Denied
        );
        let listed: Vec<String> = p.defined_rules().iter().map(|d| d.role.clone()).collect();
        assert_eq!(listed, ["secrets", "widgets-view"]);
    }

    #[test]
    fn forbidden_messages_match_the_server() {
        let sa = UserInfo::service_account("mcp-system", "mcp-droplet-operator");
        let cases = [
            (
                res(
                    "patch",
                    "mcp.agentopia.io",
                    "mcpdeployments",
                    "status",
                    "team-a",
                    "x",
                ),
                "mcpdeployments.mcp.agentopia.io \"x\" is forbidden: User \"system:serviceaccount:mcp-system:mcp-droplet-operator\" cannot patch resource \"mcpdeployments/status\" in API group \"mcp.agentopia.io\" in the namespace \"team-a\"",
            ),
            (
                res("list", "", "secrets", "", "team-a", ""),
                "secrets is forbidden: User \"system:serviceaccount:mcp-system:mcp-droplet-operator\" cannot list resource \"secrets\" in API group \"\" in the namespace \"team-a\"",
            ),
            (
                res("create", "mcp.agentopia.io", "mcptemplates", "", "", ""),
                "mcptemplates.mcp.agentopia.io is forbidden: User \"system:serviceaccount:mcp-system:mcp-droplet-operator\" cannot create resource \"mcptemplates\" in API group \"mcp.agentopia.io\" at the cluster scope",
            ),
        ];
        for (attrs, message) in cases {
            let e = forbidden(&sa, &attrs);
            assert_eq!(e.to_string(), message);
            assert_eq!(e.code(), 403);
        }
        let e = forbidden(
            &sa,
            &Attributes::NonResource(NonResourceAttributes {
                verb: "get".into(),
                path: "/metrics".into(),
            }),
        );
        assert_eq!(
            e.to_string(),
            "forbidden: User \"system:serviceaccount:mcp-system:mcp-droplet-operator\" cannot get path \"/metrics\""
        );
        assert_eq!(e.to_status()["details"], json!({}));
    }
}
