//! What RBAC allowed, by which rule and which of its permissions, and what it denied: aggregated
//! counts, bounded in memory, so a test can assert that a component never hit a 403 and list the
//! rules, and the single verbs on single resources, that no scenario used.

use super::UserInfo;
use super::permission::{Permission, RulePermission};
use super::policy::{Policy, PolicyRule, RoleKind, RuleRef};
use super::request::Attributes;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The default cap on distinct (user, request, rule) shapes kept.
pub const DEFAULT_RECORD_LIMIT: usize = 10_000;

/// One kind of allowed request and how often it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedAccess {
    /// The user name.
    pub user: String,
    /// What was asked.
    pub attributes: Attributes,
    /// The rule that allowed it.
    pub rule: RuleRef,
    /// How many times.
    pub count: u64,
}

/// One kind of denied request and how often it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeniedAccess {
    /// The user name.
    pub user: String,
    /// What was asked.
    pub attributes: Attributes,
    /// How many times.
    pub count: u64,
}

/// A rule of a stored role that allowed no request (through any binding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusedRule {
    /// Role or ClusterRole.
    pub role_kind: RoleKind,
    /// Namespace of a Role, "" for a ClusterRole.
    pub role_namespace: String,
    /// Role name.
    pub role: String,
    /// Index in the role's `rules`.
    pub index: usize,
    /// The rule itself.
    pub rule: PolicyRule,
}

impl std::fmt::Display for UnusedRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        super::policy::write_role(f, self.role_kind, &self.role_namespace, &self.role)?;
        write!(
            f,
            " rule {}: verbs {:?} apiGroups {:?} resources {:?}",
            self.index, self.rule.verbs, self.rule.api_groups, self.rule.resources
        )?;
        if !self.rule.resource_names.is_empty() {
            write!(f, " resourceNames {:?}", self.rule.resource_names)?;
        }
        if !self.rule.non_resource_urls.is_empty() {
            write!(f, " nonResourceURLs {:?}", self.rule.non_resource_urls)?;
        }
        Ok(())
    }
}

/// Counts of authorized and denied requests. Per-rule counts are always exact; the detail per
/// request shape stops growing at the limit (then `dropped` counts what was left out). The
/// per-permission counts are keyed by the rules' own entries, so the roles as written bound
/// them; they are exact unless more distinct permissions than the limit were used (then
/// `permissions_dropped` counts the uses left out).
#[derive(Debug, Clone)]
pub struct AccessRecord {
    allowed: HashMap<(String, Attributes, RuleRef), u64>,
    denied: HashMap<(String, Attributes), u64>,
    rule_counts: BTreeMap<RuleRef, u64>,
    permission_counts: BTreeMap<RulePermission, u64>,
    privileged: u64,
    dropped: u64,
    permissions_dropped: u64,
    limit: usize,
}

impl Default for AccessRecord {
    fn default() -> Self {
        AccessRecord::with_limit(DEFAULT_RECORD_LIMIT)
    }
}

impl AccessRecord {
    /// An empty record keeping at most `limit` distinct request shapes per map.
    pub fn with_limit(limit: usize) -> Self {
        AccessRecord {
            allowed: HashMap::new(),
            denied: HashMap::new(),
            rule_counts: BTreeMap::new(),
            permission_counts: BTreeMap::new(),
            privileged: 0,
            dropped: 0,
            permissions_dropped: 0,
            limit,
        }
    }

    /// The cap on distinct request shapes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Counts a request `rule` allowed through its `permission`.
    pub fn record_allowed(
        &mut self,
        user: &UserInfo,
        attributes: &Attributes,
        rule: &RuleRef,
        permission: &Permission,
    ) {
        *self.rule_counts.entry(rule.clone()).or_insert(0) += 1;
        let used = RulePermission {
            role_kind: rule.role_kind,
            role_namespace: rule.role_namespace.clone(),
            role: rule.role.clone(),
            index: rule.index,
            permission: permission.clone(),
        };
        if let Some(n) = self.permission_counts.get_mut(&used) {
            *n += 1;
        } else if self.permission_counts.len() < self.limit {
            self.permission_counts.insert(used, 1);
        } else {
            self.permissions_dropped += 1;
        }
        let key = (user.name.clone(), attributes.clone(), rule.clone());
        if let Some(n) = self.allowed.get_mut(&key) {
            *n += 1;
        } else if self.allowed.len() < self.limit {
            self.allowed.insert(key, 1);
        } else {
            self.dropped += 1;
        }
    }

    /// Counts a denied request.
    pub fn record_denied(&mut self, user: &UserInfo, attributes: &Attributes) {
        let key = (user.name.clone(), attributes.clone());
        if let Some(n) = self.denied.get_mut(&key) {
            *n += 1;
        } else if self.denied.len() < self.limit {
            self.denied.insert(key, 1);
        } else {
            self.dropped += 1;
        }
    }

    /// Counts a request of a `system:masters` member (no rule consulted).
    pub fn record_privileged(&mut self) {
        self.privileged += 1;
    }

    /// How often each rule allowed a request.
    pub fn rule_counts(&self) -> &BTreeMap<RuleRef, u64> {
        &self.rule_counts
    }

    /// How often each permission of a rule allowed a request (through any binding).
    pub fn permission_counts(&self) -> &BTreeMap<RulePermission, u64> {
        &self.permission_counts
    }

    /// Uses of permissions left out of `permission_counts` because the limit was reached
    /// (0: `unused_permissions` is exact).
    pub fn permissions_dropped(&self) -> u64 {
        self.permissions_dropped
    }

    /// Allowed requests, sorted by user, then request.
    pub fn allowed(&self) -> Vec<AllowedAccess> {
        let mut out: Vec<AllowedAccess> = self
            .allowed
            .iter()
            .map(|((user, attributes, rule), count)| AllowedAccess {
                user: user.clone(),
                attributes: attributes.clone(),
                rule: rule.clone(),
                count: *count,
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.user, &a.attributes, &a.rule).cmp(&(&b.user, &b.attributes, &b.rule))
        });
        out
    }

    /// Denied requests, sorted by user, then request.
    pub fn denied(&self) -> Vec<DeniedAccess> {
        let mut out: Vec<DeniedAccess> = self
            .denied
            .iter()
            .map(|((user, attributes), count)| DeniedAccess {
                user: user.clone(),
                attributes: attributes.clone(),
                count: *count,
            })
            .collect();
        out.sort_by(|a, b| (&a.user, &a.attributes).cmp(&(&b.user, &b.attributes)));
        out
    }

    /// Requests of `system:masters` members.
    pub fn privileged_requests(&self) -> u64 {
        self.privileged
    }

    /// Request shapes left out of `allowed`/`denied` because the limit was reached.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The rules of `policy`'s roles (the built-in defaults aside) that allowed nothing.
    pub fn unused_rules(&self, policy: &Policy) -> Vec<UnusedRule> {
        let used: BTreeSet<(RoleKind, &str, &str, usize)> = self
            .rule_counts
            .keys()
            .map(|r| {
                (
                    r.role_kind,
                    r.role_namespace.as_str(),
                    r.role.as_str(),
                    r.index,
                )
            })
            .collect();
        policy
            .defined_rules()
            .into_iter()
            .filter(|d| {
                !used.contains(&(
                    d.role_kind,
                    d.role_namespace.as_str(),
                    d.role.as_str(),
                    d.index,
                ))
            })
            .map(|d| UnusedRule {
                role_kind: d.role_kind,
                role_namespace: d.role_namespace,
                role: d.role,
                index: d.index,
                rule: d.rule,
            })
            .collect()
    }
}

impl AccessRecord {
    /// For each rule of `policy`'s roles (the built-in defaults aside), the permissions (verb ×
    /// apiGroup × resource, or verb × URL, as written) that allowed no request, in the roles'
    /// and rules' order.
    pub fn unused_permissions(&self, policy: &Policy) -> Vec<RulePermission> {
        policy
            .defined_rules()
            .into_iter()
            .flat_map(|d| {
                d.rule
                    .permissions()
                    .into_iter()
                    .map(move |permission| RulePermission {
                        role_kind: d.role_kind,
                        role_namespace: d.role_namespace.clone(),
                        role: d.role.clone(),
                        index: d.index,
                        permission,
                    })
            })
            .filter(|p| !self.permission_counts.contains_key(p))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rbac::request::ResourceAttributes;

    fn get(name: &str) -> Attributes {
        Attributes::Resource(ResourceAttributes {
            verb: "get".into(),
            group: String::new(),
            resource: "configmaps".into(),
            subresource: String::new(),
            namespace: "a".into(),
            name: name.into(),
        })
    }

    fn rule(index: usize) -> RuleRef {
        RuleRef {
            binding_namespace: "a".into(),
            binding: "b".into(),
            role_kind: RoleKind::Role,
            role_namespace: "a".into(),
            role: "r".into(),
            index,
        }
    }

    #[test]
    fn memory_is_bounded_and_rule_counts_stay_exact() {
        let mut record = AccessRecord::with_limit(2);
        let user = UserInfo::service_account("a", "op");
        for i in 0..5 {
            record.record_allowed(&user, &get(&format!("c{i}")), &rule(0), &get_configmaps());
        }
        record.record_allowed(&user, &get("c0"), &rule(0), &get_configmaps());
        assert_eq!(record.rule_counts()[&rule(0)], 6);
        assert_eq!(record.allowed().len(), 2);
        assert_eq!(record.allowed()[0].count, 2);
        assert_eq!(record.dropped(), 3);
        assert_eq!(record.permission_counts().len(), 1);
        assert_eq!(record.permission_counts().values().sum::<u64>(), 6);
        assert_eq!(record.permissions_dropped(), 0);
    }

    fn get_configmaps() -> Permission {
        Permission::Resource {
            verb: "get".into(),
            api_group: String::new(),
            resource: "configmaps".into(),
        }
    }

    fn role(rules: serde_json::Value) -> std::sync::Arc<serde_json::Value> {
        std::sync::Arc::new(serde_json::json!({
            "metadata": {"name": "r", "namespace": "a"}, "rules": rules}))
    }

    fn binding() -> std::sync::Arc<serde_json::Value> {
        std::sync::Arc::new(serde_json::json!({
            "metadata": {"name": "b", "namespace": "a"},
            "roleRef": {"kind": "Role", "name": "r", "apiGroup": "rbac.authorization.k8s.io"},
            "subjects": [{"kind": "ServiceAccount", "name": "op"}]}))
    }

    fn request(verb: &str, resource: &str, subresource: &str) -> Attributes {
        Attributes::Resource(ResourceAttributes {
            verb: verb.into(),
            group: "g.io".into(),
            resource: resource.into(),
            subresource: subresource.into(),
            namespace: "a".into(),
            name: "x".into(),
        })
    }

    /// Authorizes `attributes` as the operator and records the outcome, as the server does.
    fn authorize(policy: &Policy, record: &mut AccessRecord, attributes: &Attributes) {
        let user = UserInfo::service_account("a", "op");
        match policy.authorize(&user, attributes) {
            crate::rbac::Decision::Allowed {
                rule, permission, ..
            } => record.record_allowed(&user, attributes, &rule, &permission),
            crate::rbac::Decision::Denied => record.record_denied(&user, attributes),
            crate::rbac::Decision::Privileged => record.record_privileged(),
        }
    }

    #[test]
    fn unused_permissions_are_each_verb_on_each_resource_no_request_used() {
        let role = role(serde_json::json!([
            {"apiGroups": ["g.io"], "resources": ["a", "b"], "verbs": ["get", "list", "watch", "patch"]},
            {"apiGroups": ["g.io"], "resources": ["a/status"], "verbs": ["patch"]},
        ]));
        let binding = binding();
        let policy = Policy::compile([&role], [], [&binding], []);
        let mut record = AccessRecord::default();
        assert_eq!(record.unused_permissions(&policy).len(), 9);
        authorize(&policy, &mut record, &request("get", "a", ""));
        authorize(&policy, &mut record, &request("get", "a", ""));
        authorize(&policy, &mut record, &request("watch", "b", ""));
        authorize(&policy, &mut record, &request("patch", "a", "status"));
        // Denied: no permission is used by it.
        authorize(&policy, &mut record, &request("delete", "a", ""));
        let unused: Vec<String> = record
            .unused_permissions(&policy)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            unused,
            [
                "Role \"a/r\" rule 0: get \"b\" in API group \"g.io\"",
                "Role \"a/r\" rule 0: list \"a\" in API group \"g.io\"",
                "Role \"a/r\" rule 0: list \"b\" in API group \"g.io\"",
                "Role \"a/r\" rule 0: watch \"a\" in API group \"g.io\"",
                "Role \"a/r\" rule 0: patch \"a\" in API group \"g.io\"",
                "Role \"a/r\" rule 0: patch \"b\" in API group \"g.io\"",
            ]
        );
        let get_a = RulePermission {
            role_kind: RoleKind::Role,
            role_namespace: "a".into(),
            role: "r".into(),
            index: 0,
            permission: Permission::Resource {
                verb: "get".into(),
                api_group: "g.io".into(),
                resource: "a".into(),
            },
        };
        assert_eq!(record.permission_counts()[&get_a], 2);
        assert_eq!(record.denied().len(), 1);
    }

    #[test]
    fn the_permission_record_is_bounded_and_says_when_it_is_not_exact() {
        let role = role(serde_json::json!([
            {"apiGroups": ["g.io"], "resources": ["a", "b", "c"], "verbs": ["get"]},
        ]));
        let binding = binding();
        let policy = Policy::compile([&role], [], [&binding], []);
        let mut record = AccessRecord::with_limit(2);
        for resource in ["a", "b", "c", "c"] {
            authorize(&policy, &mut record, &request("get", resource, ""));
        }
        assert_eq!(record.permission_counts().len(), 2);
        assert_eq!(record.permissions_dropped(), 2);
        // Exact per rule all the same.
        assert_eq!(record.rule_counts().values().sum::<u64>(), 4);
    }
}
