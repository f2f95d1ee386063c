//! The running server's side of RBAC: the token table, the compiled policy (rebuilt only when
//! a role or binding changed) and the access record.

use super::access::AccessRecord;
use super::policy::{Decision, Policy};
use super::request::{Attributes, ResourceAttributes};
use super::{Rbac, UserInfo};
use crate::BearerToken;
use crate::resources::TypeKey;
use crate::store::State;
use std::sync::{Arc, Mutex, MutexGuard};

/// Authentication and authorization state shared by all requests.
pub struct Authorizer {
    admin: BearerToken,
    users: Mutex<Vec<(BearerToken, UserInfo)>>,
    policy: Mutex<Option<(u64, Arc<Policy>)>>,
    record: Mutex<AccessRecord>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in one request must not take authorization down for the others.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn key(plural: &str) -> TypeKey {
    TypeKey {
        group: super::RBAC_GROUP.to_string(),
        plural: plural.to_string(),
    }
}

impl Authorizer {
    /// From the configuration; `admin` is the superuser token.
    pub fn new(admin: BearerToken, rbac: &Rbac) -> Self {
        Authorizer {
            admin,
            users: Mutex::new(rbac.users.clone()),
            policy: Mutex::new(None),
            record: Mutex::new(AccessRecord::with_limit(
                rbac.record_limit
                    .unwrap_or(super::access::DEFAULT_RECORD_LIMIT),
            )),
        }
    }

    /// Who presented this token, if anyone known.
    pub fn authenticate(&self, presented: &str) -> Option<UserInfo> {
        if self.admin.matches(presented) {
            return Some(UserInfo::admin());
        }
        // Every entry is compared so the time does not tell which token was close.
        let mut found = None;
        for (token, user) in lock(&self.users).iter() {
            if token.matches(presented) && found.is_none() {
                found = Some(user.clone());
            }
        }
        found
    }

    /// Registers another token.
    pub fn add_user(&self, token: BearerToken, user: UserInfo) {
        lock(&self.users).push((token, user));
    }

    /// The policy as of the store's current roles and bindings.
    pub fn policy(&self, st: &State) -> Arc<Policy> {
        let generation = st.rbac_generation();
        let mut cached = lock(&self.policy);
        if let Some((g, p)) = cached.as_ref()
            && *g == generation
        {
            return p.clone();
        }
        let p = Arc::new(Policy::compile(
            &st.objects_of(&key("roles")),
            &st.objects_of(&key("clusterroles")),
            &st.objects_of(&key("rolebindings")),
            &st.objects_of(&key("clusterrolebindings")),
        ));
        *cached = Some((generation, p.clone()));
        p
    }

    /// Authorizes a request and counts the outcome.
    pub fn authorize(&self, policy: &Policy, user: &UserInfo, attributes: &Attributes) -> Decision {
        let decision = policy.authorize(user, attributes);
        let mut record = lock(&self.record);
        match &decision {
            Decision::Privileged => record.record_privileged(),
            Decision::Allowed {
                rule, permission, ..
            } => record.record_allowed(user, attributes, rule, permission),
            Decision::Denied => record.record_denied(user, attributes),
        }
        decision
    }

    /// The user an `Impersonate-User` (and `Impersonate-Group`) request acts as, after checking
    /// that `actor` may `impersonate` them, as the server's impersonation filter does. A
    /// service-account name is checked against `serviceaccounts` in its namespace and gets the
    /// account's groups unless groups are given; everyone impersonated is in
    /// `system:authenticated`.
    pub fn impersonate(
        &self,
        policy: &Policy,
        actor: UserInfo,
        user: Option<&str>,
        groups: &[String],
    ) -> Result<UserInfo, crate::status::ApiError> {
        let Some(name) = user else {
            if groups.is_empty() {
                return Ok(actor);
            }
            return Err(crate::status::ApiError::BadRequest(
                "requested impersonation of groups without impersonating a user".into(),
            ));
        };
        let check = |resource: &str, namespace: &str, name: &str| {
            let attributes = Attributes::Resource(ResourceAttributes {
                verb: "impersonate".into(),
                group: String::new(),
                resource: resource.into(),
                subresource: String::new(),
                namespace: namespace.into(),
                name: name.into(),
            });
            match self.authorize(policy, &actor, &attributes) {
                Decision::Privileged | Decision::Allowed { .. } => Ok(()),
                Decision::Denied => Err(super::policy::forbidden(&actor, &attributes)),
            }
        };
        let service_account = name
            .strip_prefix("system:serviceaccount:")
            .and_then(|rest| rest.split_once(':'));
        let mut out = match service_account {
            Some((namespace, account)) => {
                check("serviceaccounts", namespace, account)?;
                let mut sa = UserInfo::service_account(namespace, account);
                // The account's groups are implied only when no group is asked for.
                sa.groups
                    .retain(|g| groups.is_empty() && g != super::SYSTEM_AUTHENTICATED);
                sa
            }
            None => {
                check("users", "", name)?;
                UserInfo {
                    name: name.to_string(),
                    groups: Vec::new(),
                }
            }
        };
        for group in groups {
            check("groups", "", group)?;
            if !out.groups.contains(group) {
                out.groups.push(group.clone());
            }
        }
        if out.name != "system:anonymous"
            && !out.groups.iter().any(|g| g == super::SYSTEM_AUTHENTICATED)
        {
            out.groups.push(super::SYSTEM_AUTHENTICATED.to_string());
        }
        Ok(out)
    }

    /// A copy of the access record.
    pub fn record(&self) -> AccessRecord {
        lock(&self.record).clone()
    }

    /// Empties the access record.
    pub fn clear_record(&self) {
        let mut record = lock(&self.record);
        *record = AccessRecord::with_limit(record.limit());
    }
}
