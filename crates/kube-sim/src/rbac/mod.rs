//! Authentication by bearer token and RBAC authorization, as the real API server does them when
//! it runs with `--authorization-mode=RBAC` and without anonymous access.
//!
//! Opt-in: [`crate::Config::with_rbac`]. Each token maps to a user ([`UserInfo`]); the
//! `Config::token` is the superuser (group `system:masters`, which bypasses RBAC like the real
//! server's privileged-group authorizer). Every other request is authorized from the Roles,
//! ClusterRoles, RoleBindings and ClusterRoleBindings in the store, evaluated like
//! `plugin/pkg/auth/authorizer/rbac`: the first rule that allows the request wins, and what it
//! was is counted in the [`access::AccessRecord`] tests read from the handle.
//!
//! Submodules: [`request`] (HTTP request → authorization attributes, like the server's
//! `RequestInfoFactory`), [`policy`] (compiled roles and bindings, rule matching, the 403
//! message), [`permission`] (a rule's verb × resource permissions and which one allowed a
//! request), [`access`] (the bounded record of what was allowed by which rule and permission and
//! what was denied), `bootstrap` (the default ClusterRoles every real cluster has).

pub mod access;
pub(crate) mod authorizer;
mod bootstrap;
pub mod permission;
pub mod policy;
pub mod request;
mod setup;

pub use access::{AccessRecord, AllowedAccess, DeniedAccess, UnusedRule};
pub use bootstrap::{BOOTSTRAP_LABEL, bootstrap_objects};
pub use permission::{Permission, RulePermission};
pub use policy::{Decision, Policy, PolicyRule, RoleKind, RuleRef};
pub use request::{Attributes, NonResourceAttributes, ResourceAttributes};
pub use setup::{RbacScenario, ServiceAccountRef, documents_from_yaml, start_with_rbac};

use crate::BearerToken;

/// The API group of Roles, ClusterRoles and their bindings.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// The group whose members bypass authorization (the real server's privileged group).
pub const SYSTEM_MASTERS: &str = "system:masters";
/// Every authenticated user is in this group.
pub const SYSTEM_AUTHENTICATED: &str = "system:authenticated";
/// The user name kube-sim gives the superuser token.
pub const ADMIN_USER: &str = "kube-sim:admin";

/// Who a bearer token authenticates as.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserInfo {
    /// The user name, e.g. `system:serviceaccount:mcp-system:operator` or `jane`.
    pub name: String,
    /// Groups, `system:authenticated` included.
    pub groups: Vec<String>,
}

impl UserInfo {
    /// A plain user in `groups` (plus `system:authenticated`, as every authenticated user).
    pub fn user(name: impl Into<String>, groups: &[&str]) -> Self {
        let mut groups: Vec<String> = groups.iter().map(|g| (*g).to_string()).collect();
        if !groups.iter().any(|g| g == SYSTEM_AUTHENTICATED) {
            groups.push(SYSTEM_AUTHENTICATED.to_string());
        }
        UserInfo {
            name: name.into(),
            groups,
        }
    }

    /// The user a service account's token authenticates as:
    /// `system:serviceaccount:<ns>:<name>` in `system:serviceaccounts`,
    /// `system:serviceaccounts:<ns>` and `system:authenticated`.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        UserInfo {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{namespace}"),
                SYSTEM_AUTHENTICATED.to_string(),
            ],
        }
    }

    /// The superuser of `Config::token`.
    pub fn admin() -> Self {
        UserInfo::user(ADMIN_USER, &[SYSTEM_MASTERS])
    }

    /// Whether RBAC is bypassed for this user (member of `system:masters`).
    pub fn is_privileged(&self) -> bool {
        self.groups.iter().any(|g| g == SYSTEM_MASTERS)
    }
}

/// The RBAC setting of [`crate::Config`]: which token is which user. The superuser token is
/// `Config::token` (a random one is made when it is unset).
#[derive(Debug, Clone, Default)]
pub struct Rbac {
    pub(crate) users: Vec<(BearerToken, UserInfo)>,
    pub(crate) record_limit: Option<usize>,
}

impl Rbac {
    /// RBAC with no users but the superuser.
    pub fn new() -> Self {
        Rbac::default()
    }

    /// Adds a token that authenticates as `user`.
    pub fn with_user(mut self, token: BearerToken, user: UserInfo) -> Self {
        self.users.push((token, user));
        self
    }

    /// Adds a token of the service account `namespace/name` (the object itself need not exist,
    /// as with a projected token whose account was deleted later).
    pub fn with_service_account(self, token: BearerToken, namespace: &str, name: &str) -> Self {
        self.with_user(token, UserInfo::service_account(namespace, name))
    }

    /// Caps the number of distinct request shapes the access record keeps (default 10,000);
    /// per-rule counts stay exact beyond it.
    pub fn with_record_limit(mut self, limit: usize) -> Self {
        self.record_limit = Some(limit);
        self
    }
}

/// A fresh random token (for the superuser when none is configured, and for
/// [`crate::Handle::service_account_token`]).
pub(crate) fn random_token() -> BearerToken {
    BearerToken::new(format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    ))
}
