//! The running server's side of RBAC: the token table, the compiled policy (rebuilt only when
//! a role or binding changed) and the access record.

use super::access::AccessRecord;
use super::policy::{Decision, Policy};
use super::request::Attributes;
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
            Decision::Allowed { rule, .. } => record.record_allowed(user, attributes, rule),
            Decision::Denied => record.record_denied(user, attributes),
        }
        decision
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
