//! What RBAC allowed, by which rule, and what it denied: aggregated counts, bounded in memory,
//! so a test can assert that a component never hit a 403 and list the rules no scenario used.

use super::UserInfo;
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
        let name = if self.role_namespace.is_empty() {
            self.role.clone()
        } else {
            format!("{}/{}", self.role_namespace, self.role)
        };
        write!(
            f,
            "{} \"{}\" rule {}: verbs {:?} apiGroups {:?} resources {:?}",
            self.role_kind.as_str(),
            name,
            self.index,
            self.rule.verbs,
            self.rule.api_groups,
            self.rule.resources
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
/// request shape stops growing at the limit (then `dropped` counts what was left out).
#[derive(Debug, Clone)]
pub struct AccessRecord {
    allowed: HashMap<(String, Attributes, RuleRef), u64>,
    denied: HashMap<(String, Attributes), u64>,
    rule_counts: BTreeMap<RuleRef, u64>,
    privileged: u64,
    dropped: u64,
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
            privileged: 0,
            dropped: 0,
            limit,
        }
    }

    /// The cap on distinct request shapes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Counts a request `rule` allowed.
    pub fn record_allowed(&mut self, user: &UserInfo, attributes: &Attributes, rule: &RuleRef) {
        *self.rule_counts.entry(rule.clone()).or_insert(0) += 1;
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
            record.record_allowed(&user, &get(&format!("c{i}")), &rule(0));
        }
        record.record_allowed(&user, &get("c0"), &rule(0));
        assert_eq!(record.rule_counts()[&rule(0)], 6);
        assert_eq!(record.allowed().len(), 2);
        assert_eq!(record.allowed()[0].count, 2);
        assert_eq!(record.dropped(), 3);
    }
}
