//! kstatus conditions (`Ready`, `Reconciling`, `Stalled`), so Argo CD, Flux and `kubectl wait`
//! read every kind's health the same way. Pure: the caller says what state the object is in.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::api::conditions::{ConditionStatus, condition, merge_conditions};

/// Condition type: the summary (True only when the object is fully converged).
pub const READY: &str = "Ready";
/// Condition type: work is under way (abnormal-true: present while not converged).
pub const RECONCILING: &str = "Reconciling";
/// Condition type: no progress without a change by a person (abnormal-true).
pub const STALLED: &str = "Stalled";

/// Where an object stands, with the reason (CamelCase, stable) and a message for people.
#[derive(Debug, Clone, PartialEq)]
pub enum Health {
    /// Converged.
    Ready {
        /// Reason of the Ready condition.
        reason: String,
        /// Message of the Ready condition.
        message: String,
    },
    /// Still working towards the spec (a step is running, a retry is pending).
    Progressing {
        /// Reason of the Reconciling condition (and of Ready=False).
        reason: String,
        /// Message.
        message: String,
    },
    /// Blocked until a person changes something (missing template or Secret, rejected spec).
    Stalled {
        /// Reason of the Stalled condition (and of Ready=False).
        reason: String,
        /// Message naming what to fix.
        message: String,
    },
}

impl Health {
    /// Converged with `reason`.
    pub fn ready(reason: &str, message: impl Into<String>) -> Self {
        Health::Ready {
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// In progress with `reason`.
    pub fn progressing(reason: &str, message: impl Into<String>) -> Self {
        Health::Progressing {
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// Stalled with `reason`.
    pub fn stalled(reason: &str, message: impl Into<String>) -> Self {
        Health::Stalled {
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// Whether the object is converged.
    pub fn is_ready(&self) -> bool {
        matches!(self, Health::Ready { .. })
    }
}

/// The three kstatus conditions for `health` at `generation`. Reconciling and Stalled are
/// written False (not removed) when they do not apply, so server-side apply never leaves a stale
/// True behind and `kubectl describe` shows all three.
pub fn kstatus_conditions(
    health: &Health,
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let c = |type_: &str, status: ConditionStatus, reason: &str, message: &str| {
        condition(type_, status, reason, message, generation, now)
    };
    match health {
        Health::Ready { reason, message } => vec![
            c(READY, ConditionStatus::True, reason, message),
            c(RECONCILING, ConditionStatus::False, reason, ""),
            c(STALLED, ConditionStatus::False, reason, ""),
        ],
        Health::Progressing { reason, message } => vec![
            c(READY, ConditionStatus::False, reason, message),
            c(RECONCILING, ConditionStatus::True, reason, message),
            c(STALLED, ConditionStatus::False, reason, ""),
        ],
        Health::Stalled { reason, message } => vec![
            c(READY, ConditionStatus::False, reason, message),
            c(RECONCILING, ConditionStatus::False, reason, ""),
            c(STALLED, ConditionStatus::True, reason, message),
        ],
    }
}

/// Merges the kstatus conditions for `health` and any `extra` conditions into `existing`,
/// keeping `lastTransitionTime` of every condition whose status did not flip.
pub fn merged_conditions(
    existing: &[Condition],
    health: &Health,
    extra: Vec<Condition>,
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let mut desired = kstatus_conditions(health, generation, now);
    desired.extend(extra);
    merge_conditions(existing, desired).0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::find;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("valid timestamp")
    }

    #[test]
    fn stalled_sets_ready_false_with_the_reason() {
        let conds = kstatus_conditions(
            &Health::stalled("SecretNotFound", "Secret x"),
            Some(3),
            at(0),
        );
        let ready = find(&conds, READY).expect("ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "SecretNotFound")
        );
        assert_eq!(
            find(&conds, STALLED).map(|c| c.status.as_str()),
            Some("True")
        );
        assert_eq!(
            find(&conds, RECONCILING).map(|c| c.status.as_str()),
            Some("False")
        );
        assert!(conds.iter().all(|c| c.observed_generation == Some(3)));
    }

    #[test]
    fn transition_time_kept_until_the_status_flips() {
        let first = merged_conditions(
            &[],
            &Health::progressing("Pulling", "pulling"),
            vec![],
            Some(1),
            at(0),
        );
        let again = merged_conditions(
            &first,
            &Health::progressing("Deploying", "deploying"),
            vec![],
            Some(1),
            at(10),
        );
        let ready_again = find(&again, READY).expect("ready");
        assert_eq!(ready_again.last_transition_time.0, at(0));
        assert_eq!(ready_again.reason, "Deploying");
        let done = merged_conditions(
            &again,
            &Health::ready("Verified", "ok"),
            vec![],
            Some(1),
            at(20),
        );
        assert_eq!(
            find(&done, READY).expect("ready").last_transition_time.0,
            at(20)
        );
    }
}
