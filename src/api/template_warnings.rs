//! What a valid MCPTemplate asks for that the operator cannot honour yet, as warnings: the
//! template is still Accepted, but users see a `Warning` condition (and, from the template
//! controller, an event) naming the field, instead of silently getting less than they asked for.
//!
//! Pure: the template reconciler writes [`warning_condition`] into status, `plan` prints the
//! warnings on stderr, and the field descriptions in the CRD say the same.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;

use super::conditions::{ConditionStatus, condition};
use super::template::MCPTemplateSpec;

/// Condition type set on templates that are accepted with warnings.
pub const WARNING: &str = "Warning";

/// Reason of the `Warning` condition when nothing is wrong.
pub const NO_WARNINGS: &str = "NoWarnings";

/// One setting of a template that is accepted but not (fully) honoured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateWarning {
    /// The field path, e.g. `spec.network.allowHosts`.
    pub field: &'static str,
    /// A stable CamelCase reason for conditions, events and alerts.
    pub reason: &'static str,
    /// What it means for the user, naming the field.
    pub message: String,
}

/// The warnings of `spec`, in a stable order (empty when the operator honours everything).
pub fn template_warnings(spec: &MCPTemplateSpec) -> Vec<TemplateWarning> {
    let mut warnings = Vec::new();
    let allowed = spec
        .network
        .as_ref()
        .and_then(|network| network.allow_hosts.as_ref())
        .filter(|hosts| !hosts.is_empty());
    if let Some(hosts) = allowed {
        warnings.push(TemplateWarning {
            field: "spec.network.allowHosts",
            reason: "AllowHostsNotEnforced",
            message: format!(
                "spec.network.allowHosts ({}) is not enforced yet: the droplet agent gives the \
                 container full egress; set spec.network.none to cut it off entirely",
                hosts.join(", ")
            ),
        });
    }
    warnings
}

/// The `Warning` condition for `warnings` at object generation `generation`: `True` with the
/// first warning's reason and every message, or `False` with reason `NoWarnings`.
pub fn warning_condition(
    warnings: &[TemplateWarning],
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    match warnings.first() {
        Some(first) => {
            let message = warnings
                .iter()
                .map(|w| w.message.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            condition(
                WARNING,
                ConditionStatus::True,
                first.reason,
                message,
                generation,
                now,
            )
        }
        None => condition(
            WARNING,
            ConditionStatus::False,
            NO_WARNINGS,
            "every setting of the template is honoured",
            generation,
            now,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::template::{MCPTemplate, NetworkPolicy};

    fn warnings_of(template: MCPTemplate) -> Vec<TemplateWarning> {
        template_warnings(&template.spec)
    }

    #[test]
    fn allowed_hosts_are_a_warning_naming_the_field() {
        let warnings = warnings_of(
            MCPTemplate::test("github")
                .allow_hosts(&["api.github.com"])
                .build(),
        );
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].field, "spec.network.allowHosts");
        assert_eq!(warnings[0].reason, "AllowHostsNotEnforced");
        assert!(
            warnings[0]
                .message
                .starts_with("spec.network.allowHosts (api.github.com) is not enforced yet")
        );
    }

    #[test]
    fn no_network_settings_an_empty_list_or_none_give_no_warning() {
        assert!(warnings_of(MCPTemplate::test("time").build()).is_empty());
        assert!(warnings_of(MCPTemplate::test("time").no_network().build()).is_empty());
        let mut empty = MCPTemplate::test("time").build();
        empty.spec.network = Some(NetworkPolicy {
            allow_hosts: Some(vec![]),
            none: None,
        });
        assert!(warnings_of(empty).is_empty());
    }

    #[test]
    fn the_condition_is_true_with_the_reason_or_false_without_warnings() {
        let now = Timestamp::UNIX_EPOCH;
        let warnings = warnings_of(
            MCPTemplate::test("fetch")
                .allow_hosts(&["a.example", "b.example"])
                .build(),
        );
        let warned = warning_condition(&warnings, Some(3), now);
        assert_eq!(
            (warned.type_.as_str(), warned.status.as_str()),
            ("Warning", "True")
        );
        assert_eq!(warned.reason, "AllowHostsNotEnforced");
        assert!(warned.message.contains("a.example, b.example"));
        assert_eq!(warned.observed_generation, Some(3));

        let clean = warning_condition(&[], Some(3), now);
        assert_eq!(
            (clean.status.as_str(), clean.reason.as_str()),
            ("False", "NoWarnings")
        );
    }
}
