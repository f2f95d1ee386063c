//! Standard Kubernetes conditions: built from a few fields and merged so that
//! `lastTransitionTime` changes only when the status flips and unchanged conditions are not rewritten.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// Summary condition of every kind (kstatus-compatible; Flux and Argo CD read it).
pub const READY: &str = "Ready";
/// True while the operator is working towards the desired state.
pub const RECONCILING: &str = "Reconciling";
/// True when progress stopped on an error that needs a person (bad input, missing secret).
pub const STALLED: &str = "Stalled";

/// The three condition statuses of the Kubernetes API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionStatus {
    /// `True`.
    True,
    /// `False`.
    False,
    /// `Unknown`.
    Unknown,
}

impl ConditionStatus {
    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

impl From<bool> for ConditionStatus {
    fn from(value: bool) -> Self {
        if value {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        }
    }
}

/// Builds a condition observed at `now` for object generation `generation`.
pub fn condition(
    type_: &str,
    status: impl Into<ConditionStatus>,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: status.into().as_str().to_string(),
        reason: reason.to_string(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: Time(now),
    }
}

/// Sets `new` into `conditions`, keyed by type. Returns whether anything changed.
///
/// When a condition of that type exists with the same status, its `lastTransitionTime` is kept and
/// only reason, message and observedGeneration are updated; an identical condition is left as is.
pub fn set_condition(conditions: &mut Vec<Condition>, new: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(existing) if existing.status == new.status => {
            let unchanged = existing.reason == new.reason
                && existing.message == new.message
                && existing.observed_generation == new.observed_generation;
            if unchanged {
                return false;
            }
            existing.reason = new.reason;
            existing.message = new.message;
            existing.observed_generation = new.observed_generation;
            true
        }
        Some(existing) => {
            *existing = new;
            true
        }
        None => {
            conditions.push(new);
            true
        }
    }
}

/// Merges a full desired set into the existing list (see [`set_condition`]); conditions of types
/// not in `desired` are kept. Returns the merged list and whether it differs from `existing`.
pub fn merge_conditions(existing: &[Condition], desired: Vec<Condition>) -> (Vec<Condition>, bool) {
    let mut merged = existing.to_vec();
    let mut changed = false;
    for c in desired {
        changed |= set_condition(&mut merged, c);
    }
    (merged, changed)
}

/// The condition of this type, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of this type is present with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn same_status_keeps_transition_time() {
        let mut conds = vec![condition(
            READY,
            false,
            "Pulling",
            "pulling image",
            Some(1),
            at(100),
        )];
        let changed = set_condition(
            &mut conds,
            condition(
                READY,
                false,
                "Deploying",
                "starting container",
                Some(1),
                at(200),
            ),
        );
        assert!(changed);
        assert_eq!(conds[0].reason, "Deploying");
        assert_eq!(conds[0].last_transition_time, Time(at(100)));
    }

    #[test]
    fn flip_updates_transition_time() {
        let mut conds = vec![condition(READY, false, "Pulling", "", Some(1), at(100))];
        assert!(set_condition(
            &mut conds,
            condition(READY, true, "Ready", "", Some(1), at(300))
        ));
        assert_eq!(conds[0].status, "True");
        assert_eq!(conds[0].last_transition_time, Time(at(300)));
    }

    #[test]
    fn identical_condition_is_not_rewritten() {
        let mut conds = vec![condition(READY, true, "Ready", "ok", Some(2), at(100))];
        assert!(!set_condition(
            &mut conds,
            condition(READY, true, "Ready", "ok", Some(2), at(999))
        ));
        assert_eq!(conds[0].last_transition_time, Time(at(100)));
    }

    #[test]
    fn merge_keeps_other_types_and_reports_change() {
        let existing = vec![
            condition(READY, true, "Ready", "", Some(1), at(1)),
            condition(
                "AgentCapabilities",
                false,
                "LegacyAgent",
                "",
                Some(1),
                at(1),
            ),
        ];
        let (merged, changed) = merge_conditions(
            &existing,
            vec![condition(READY, true, "Ready", "", Some(1), at(5))],
        );
        assert!(!changed);
        assert_eq!(merged.len(), 2);
        let (merged, changed) = merge_conditions(
            &merged,
            vec![condition(
                STALLED,
                true,
                "MissingSecret",
                "x",
                Some(1),
                at(5),
            )],
        );
        assert!(changed);
        assert!(is_true(&merged, STALLED));
        assert!(!is_true(&merged, RECONCILING));
    }
}
