//! The template's whole status as a pure function of its spec, its generation, the registry's
//! answer and `now`: which checks pass, which warnings apply, Accepted or Rejected, the kstatus
//! conditions, the events to report and when to look again.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;

use crate::api::conditions::{ConditionStatus, condition, find};
use crate::api::template::{MCPTemplate, MCPTemplateStatus, TemplatePhase};
use crate::api::template_checks::{CheckArea, TemplateProblem, check_template};
use crate::api::template_warnings::{WARNING, all_warnings, warning_condition};
use crate::controller::kstatus::{Health, merged_conditions};
use crate::image_check::{CheckedImage, ImageCheck};

/// Condition type: `spec.image` is a reference a registry accepts.
pub const IMAGE_REFERENCE: &str = "ImageReference";
/// Condition type: the registry has the image (True), has not (False), or could not say.
pub const IMAGE_AVAILABLE: &str = "ImageAvailable";
/// Condition type: the transport fits the port.
pub const TRANSPORT: &str = "Transport";
/// Condition type: the env schema is consistent.
pub const ENV_SCHEMA: &str = "EnvSchema";
/// Condition type: the resources are valid and some droplet size can hold them.
pub const RESOURCES: &str = "Resources";

/// Reason of a check condition that passes.
pub const VALID: &str = "Valid";
/// Reason of `Ready` on an accepted template.
pub const ACCEPTED: &str = "Accepted";
/// Reason of `ImageAvailable=True`.
pub const IMAGE_FOUND: &str = "ImageFound";
/// Reason of `ImageAvailable=False`, and of `Stalled` when that is what rejects.
pub const IMAGE_NOT_FOUND: &str = "ImageNotFound";
/// Reason of `ImageAvailable=Unknown` when the operator runs without registry checks.
pub const IMAGE_CHECK_DISABLED: &str = "ImageCheckDisabled";
/// Reason of `ImageAvailable=Unknown` when the reference does not parse.
pub const NOT_CHECKED: &str = "NotChecked";

/// Longest condition message written (the schema allows 32 KiB; a template's own strings, such as
/// hundreds of long arguments quoted by a lint, must not push a status past it).
pub const MAX_CONDITION_MESSAGE: usize = 4096;
/// Longest event note written (the API server refuses notes over 1 KiB).
pub const MAX_EVENT_NOTE: usize = 1000;

/// `text` cut to at most `max` bytes at a character boundary, marked with `...` when cut.
fn bounded(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str("...");
    text
}

/// What the controller learnt about the image before planning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageObservation {
    /// The registry's answer (possibly from the cache).
    Checked(CheckedImage),
    /// The operator runs without registry checks.
    Disabled,
    /// Not asked: the reference does not parse.
    NotChecked,
}

/// An event to report on the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedEvent {
    /// `Warning` rather than `Normal`.
    pub warning: bool,
    /// CamelCase reason.
    pub reason: String,
    /// For people; never a secret (templates hold none).
    pub note: String,
}

/// Everything the controller does after observing.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplatePlan {
    /// The whole status (conditions merged with the current ones, so an unchanged status is
    /// equal to the current one and is not written).
    pub status: MCPTemplateStatus,
    /// Events for what changed since the current status.
    pub events: Vec<PlannedEvent>,
    /// When to look again (the next registry check, or the periodic resync).
    pub requeue_after: Duration,
}

/// Plans the status of `template` given the registry's answer, at `now`; `resync` bounds the
/// requeue.
pub fn plan(
    template: &MCPTemplate,
    image: &ImageObservation,
    resync: Duration,
    now: Timestamp,
) -> TemplatePlan {
    let generation = template.metadata.generation;
    let checks = check_template(template);
    let warnings = all_warnings(&template.spec);

    let mut extra: Vec<Condition> = [
        (IMAGE_REFERENCE, CheckArea::ImageReference),
        (TRANSPORT, CheckArea::Transport),
        (ENV_SCHEMA, CheckArea::EnvSchema),
        (RESOURCES, CheckArea::Resources),
    ]
    .into_iter()
    .map(|(type_, area)| {
        let problems: Vec<&TemplateProblem> = checks.in_area(area).collect();
        area_condition(
            type_,
            area,
            &problems,
            checks.image.as_ref(),
            generation,
            now,
        )
    })
    .collect();
    let (available, image_problem) = image_condition(template, image, generation, now);
    extra.push(available);
    extra.push(warning_condition(&warnings, generation, now));
    for c in &mut extra {
        c.message = bounded(std::mem::take(&mut c.message), MAX_CONDITION_MESSAGE);
    }

    let mut rejections: Vec<(&str, String)> = checks
        .problems
        .iter()
        .map(|p| (p.reason, p.message.clone()))
        .collect();
    if let Some(message) = image_problem {
        rejections.push((IMAGE_NOT_FOUND, message));
    }
    let health = match rejections.first() {
        None => Health::ready(ACCEPTED, accepted_message(warnings.len(), image)),
        Some((reason, _)) => Health::stalled(
            reason,
            bounded(
                rejections
                    .iter()
                    .map(|(_, m)| m.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
                MAX_CONDITION_MESSAGE,
            ),
        ),
    };
    let phase = if health.is_ready() {
        TemplatePhase::Accepted
    } else {
        TemplatePhase::Rejected
    };

    let current = template.status.as_ref();
    let existing = current.map(|s| s.conditions.as_slice()).unwrap_or(&[]);
    let conditions = merged_conditions(existing, &health, extra, generation, now);
    let status = MCPTemplateStatus {
        phase: Some(phase),
        observed_generation: generation,
        conditions,
    };
    let mut events = events(current, &status, &health, &warnings_messages(&warnings));
    for event in &mut events {
        event.note = bounded(std::mem::take(&mut event.note), MAX_EVENT_NOTE);
    }
    TemplatePlan {
        requeue_after: requeue_after(image, resync, now),
        status,
        events,
    }
}

fn warnings_messages(
    warnings: &[crate::api::template_warnings::TemplateWarning],
) -> Vec<(&'static str, String)> {
    warnings
        .iter()
        .map(|w| (w.reason, w.message.clone()))
        .collect()
}

fn accepted_message(warnings: usize, image: &ImageObservation) -> String {
    let mut message = "the template is valid".to_string();
    match image {
        ImageObservation::Checked(CheckedImage {
            check: ImageCheck::Exists { .. },
            ..
        }) => message.push_str(" and its image exists"),
        ImageObservation::Checked(CheckedImage {
            check: ImageCheck::Unknown { reason, .. },
            ..
        }) => message.push_str(&format!(
            "; whether its image exists is unknown ({})",
            reason.condition_reason()
        )),
        ImageObservation::Checked(_)
        | ImageObservation::Disabled
        | ImageObservation::NotChecked => {}
    }
    if warnings > 0 {
        message.push_str(&format!(
            "; {warnings} warning(s), see the Warning condition"
        ));
    }
    message
}

fn area_condition(
    type_: &str,
    area: CheckArea,
    problems: &[&TemplateProblem],
    image: Option<&crate::api::image_reference::ImageReference>,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    match problems.first() {
        Some(first) => condition(
            type_,
            ConditionStatus::False,
            first.reason,
            problems
                .iter()
                .map(|p| p.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
            generation,
            now,
        ),
        None => {
            let message = match (area, image) {
                (CheckArea::ImageReference, Some(image)) => format!("resolves to {image}"),
                (CheckArea::Transport, _) => "the transport and port fit".to_string(),
                (CheckArea::EnvSchema, _) => "the env schema is consistent".to_string(),
                (CheckArea::Resources, _) => "some droplet size can hold the requests".to_string(),
                _ => String::new(),
            };
            condition(
                type_,
                ConditionStatus::True,
                VALID,
                message,
                generation,
                now,
            )
        }
    }
}

/// The `ImageAvailable` condition, and the rejection message when the image is missing.
fn image_condition(
    template: &MCPTemplate,
    image: &ImageObservation,
    generation: Option<i64>,
    now: Timestamp,
) -> (Condition, Option<String>) {
    let c = |status, reason: &str, message: String| {
        condition(IMAGE_AVAILABLE, status, reason, message, generation, now)
    };
    let spec_image = &template.spec.image;
    match image {
        ImageObservation::Checked(checked) => match &checked.check {
            ImageCheck::Exists { digest } => {
                let digest = digest
                    .as_deref()
                    .map(|d| format!(" (digest {d})"))
                    .unwrap_or_default();
                (
                    c(
                        ConditionStatus::True,
                        IMAGE_FOUND,
                        format!("{spec_image} exists in its registry{digest}"),
                    ),
                    None,
                )
            }
            ImageCheck::Missing { detail } => {
                let message = format!("{spec_image} does not exist: {detail}");
                (
                    c(ConditionStatus::False, IMAGE_NOT_FOUND, message.clone()),
                    Some(message),
                )
            }
            ImageCheck::Unknown { reason, detail } => (
                c(
                    ConditionStatus::Unknown,
                    reason.condition_reason(),
                    format!(
                        "could not tell whether {spec_image} exists: {detail}; the template \
                         stays accepted and the check is repeated"
                    ),
                ),
                None,
            ),
        },
        ImageObservation::Disabled => (
            c(
                ConditionStatus::Unknown,
                IMAGE_CHECK_DISABLED,
                "the operator runs without registry checks".to_string(),
            ),
            None,
        ),
        ImageObservation::NotChecked => (
            c(
                ConditionStatus::Unknown,
                NOT_CHECKED,
                "not checked: spec.image is not a valid reference".to_string(),
            ),
            None,
        ),
    }
}

/// Accepted/Rejected when the phase or the generation changed, each new warning once, and a
/// registry that stopped answering once per flip to Unknown.
fn events(
    current: Option<&MCPTemplateStatus>,
    desired: &MCPTemplateStatus,
    health: &Health,
    warnings: &[(&'static str, String)],
) -> Vec<PlannedEvent> {
    let mut events = Vec::new();
    let phase_changed = current.and_then(|s| s.phase) != desired.phase
        || current.and_then(|s| s.observed_generation) != desired.observed_generation;
    if phase_changed {
        match health {
            Health::Ready { message, .. } => events.push(PlannedEvent {
                warning: false,
                reason: ACCEPTED.to_string(),
                note: message.clone(),
            }),
            Health::Stalled { message, .. } | Health::Progressing { message, .. } => {
                events.push(PlannedEvent {
                    warning: true,
                    reason: "Rejected".to_string(),
                    note: message.clone(),
                });
            }
        }
    }
    let old_conditions = current.map(|s| s.conditions.as_slice()).unwrap_or(&[]);
    let old_warning = find(old_conditions, WARNING).filter(|c| c.status == "True");
    let old_warnings = old_warning.map(|c| c.message.as_str()).unwrap_or("");
    // A cut message cannot say which warnings it held; for the same generation they are old news.
    let cut_same_generation = old_warning.is_some_and(|c| {
        c.message.ends_with("...") && c.observed_generation == desired.observed_generation
    });
    for (reason, message) in warnings {
        if !cut_same_generation && !old_warnings.contains(message.as_str()) {
            events.push(PlannedEvent {
                warning: true,
                reason: (*reason).to_string(),
                note: message.clone(),
            });
        }
    }
    let was_unknown = find(old_conditions, IMAGE_AVAILABLE).is_some_and(|c| c.status == "Unknown");
    if let Some(available) = find(&desired.conditions, IMAGE_AVAILABLE)
        && available.status == "Unknown"
        && available.reason != IMAGE_CHECK_DISABLED
        && available.reason != NOT_CHECKED
        && !was_unknown
    {
        events.push(PlannedEvent {
            warning: true,
            reason: available.reason.clone(),
            note: available.message.clone(),
        });
    }
    events
}

fn requeue_after(image: &ImageObservation, resync: Duration, now: Timestamp) -> Duration {
    match image {
        ImageObservation::Checked(checked) => clock::elapsed(now, checked.recheck_at)
            .max(Duration::from_secs(1))
            .min(resync),
        ImageObservation::Disabled | ImageObservation::NotChecked => resync,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::find;
    use crate::controller::kstatus::{READY, RECONCILING, STALLED};
    use crate::image_check::UnknownReason;
    use crate::testing::TemplateBuilder;

    const DIGEST: &str = "sha256:abababababababababababababababababababababababababababababababab";

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("valid timestamp")
    }

    fn checked(check: ImageCheck, recheck_in: i64) -> ImageObservation {
        ImageObservation::Checked(CheckedImage {
            check,
            checked_at: at(0),
            recheck_at: at(recheck_in),
        })
    }

    fn exists() -> ImageObservation {
        checked(
            ImageCheck::Exists {
                digest: Some(DIGEST.into()),
            },
            3600,
        )
    }

    fn missing() -> ImageObservation {
        checked(
            ImageCheck::Missing {
                detail: "registry ghcr.io has no manifest 1.0 in example/t: 404".into(),
            },
            120,
        )
    }

    fn unreachable() -> ImageObservation {
        checked(
            ImageCheck::Unknown {
                reason: UnknownReason::Unreachable,
                detail: "connection refused".into(),
            },
            60,
        )
    }

    /// A template that draws no warning, at generation 1.
    fn clean() -> TemplateBuilder {
        MCPTemplate::test("t").no_network()
    }

    fn with_generation(template: TemplateBuilder, generation: i64) -> MCPTemplate {
        let mut t = template.build();
        t.metadata.generation = Some(generation);
        t
    }

    fn cond<'a>(plan: &'a TemplatePlan, type_: &str) -> (&'a str, &'a str) {
        let c = find(&plan.status.conditions, type_).unwrap_or_else(|| panic!("no {type_}"));
        (c.status.as_str(), c.reason.as_str())
    }

    const RESYNC: Duration = Duration::from_secs(600);

    #[test]
    fn status_by_spec_and_registry_answer() {
        struct Case {
            name: &'static str,
            template: TemplateBuilder,
            image: ImageObservation,
            phase: TemplatePhase,
            ready: (&'static str, &'static str),
            stalled: (&'static str, &'static str),
            checks: [(&'static str, (&'static str, &'static str)); 6],
        }
        let ok = |t: &'static str| (t, ("True", VALID));
        let cases = vec![
            Case {
                name: "valid, image found",
                template: clean(),
                image: exists(),
                phase: TemplatePhase::Accepted,
                ready: ("True", ACCEPTED),
                stalled: ("False", ACCEPTED),
                checks: [
                    ok(IMAGE_REFERENCE),
                    ok(TRANSPORT),
                    ok(ENV_SCHEMA),
                    ok(RESOURCES),
                    (IMAGE_AVAILABLE, ("True", IMAGE_FOUND)),
                    (WARNING, ("False", "NoWarnings")),
                ],
            },
            Case {
                name: "valid, image missing: rejected",
                template: clean(),
                image: missing(),
                phase: TemplatePhase::Rejected,
                ready: ("False", IMAGE_NOT_FOUND),
                stalled: ("True", IMAGE_NOT_FOUND),
                checks: [
                    ok(IMAGE_REFERENCE),
                    ok(TRANSPORT),
                    ok(ENV_SCHEMA),
                    ok(RESOURCES),
                    (IMAGE_AVAILABLE, ("False", IMAGE_NOT_FOUND)),
                    (WARNING, ("False", "NoWarnings")),
                ],
            },
            Case {
                name: "valid, registry unreachable: still accepted",
                template: clean(),
                image: unreachable(),
                phase: TemplatePhase::Accepted,
                ready: ("True", ACCEPTED),
                stalled: ("False", ACCEPTED),
                checks: [
                    ok(IMAGE_REFERENCE),
                    ok(TRANSPORT),
                    ok(ENV_SCHEMA),
                    ok(RESOURCES),
                    (IMAGE_AVAILABLE, ("Unknown", "RegistryUnreachable")),
                    (WARNING, ("False", "NoWarnings")),
                ],
            },
            Case {
                name: "checks disabled",
                template: clean(),
                image: ImageObservation::Disabled,
                phase: TemplatePhase::Accepted,
                ready: ("True", ACCEPTED),
                stalled: ("False", ACCEPTED),
                checks: [
                    ok(IMAGE_REFERENCE),
                    ok(TRANSPORT),
                    ok(ENV_SCHEMA),
                    ok(RESOURCES),
                    (IMAGE_AVAILABLE, ("Unknown", IMAGE_CHECK_DISABLED)),
                    (WARNING, ("False", "NoWarnings")),
                ],
            },
            Case {
                name: "bad reference: rejected, not checked",
                template: clean().image("ghcr.io/Upper/x:1"),
                image: ImageObservation::NotChecked,
                phase: TemplatePhase::Rejected,
                ready: ("False", "InvalidImageReference"),
                stalled: ("True", "InvalidImageReference"),
                checks: [
                    (IMAGE_REFERENCE, ("False", "InvalidImageReference")),
                    ok(TRANSPORT),
                    ok(ENV_SCHEMA),
                    ok(RESOURCES),
                    (IMAGE_AVAILABLE, ("Unknown", NOT_CHECKED)),
                    (WARNING, ("False", "NoWarnings")),
                ],
            },
            Case {
                name: "sse without a port and too much memory, image found",
                template: clean().sse(8080).no_port().memory("4Ti"),
                image: exists(),
                phase: TemplatePhase::Rejected,
                ready: ("False", "PortRequired"),
                stalled: ("True", "PortRequired"),
                checks: [
                    ok(IMAGE_REFERENCE),
                    (TRANSPORT, ("False", "PortRequired")),
                    ok(ENV_SCHEMA),
                    (RESOURCES, ("False", "ExceedsLargestDroplet")),
                    (IMAGE_AVAILABLE, ("True", IMAGE_FOUND)),
                    (WARNING, ("False", "NoWarnings")),
                ],
            },
            Case {
                name: "env schema broken and image missing: both reasons",
                template: clean().env_default("MODE", "x", &["a"]),
                image: missing(),
                phase: TemplatePhase::Rejected,
                ready: ("False", "DefaultNotInChoices"),
                stalled: ("True", "DefaultNotInChoices"),
                checks: [
                    ok(IMAGE_REFERENCE),
                    ok(TRANSPORT),
                    (ENV_SCHEMA, ("False", "DefaultNotInChoices")),
                    ok(RESOURCES),
                    (IMAGE_AVAILABLE, ("False", IMAGE_NOT_FOUND)),
                    (WARNING, ("False", "NoWarnings")),
                ],
            },
            Case {
                name: "warnings do not reject",
                template: MCPTemplate::test("t")
                    .image("mcp/time:latest")
                    .args(&["--privileged"]),
                image: exists(),
                phase: TemplatePhase::Accepted,
                ready: ("True", ACCEPTED),
                stalled: ("False", ACCEPTED),
                checks: [
                    ok(IMAGE_REFERENCE),
                    ok(TRANSPORT),
                    ok(ENV_SCHEMA),
                    ok(RESOURCES),
                    (IMAGE_AVAILABLE, ("True", IMAGE_FOUND)),
                    (WARNING, ("True", "PrivilegedSettings")),
                ],
            },
        ];
        for case in cases {
            let plan = plan(
                &with_generation(case.template, 4),
                &case.image,
                RESYNC,
                at(10),
            );
            let name = case.name;
            assert_eq!(plan.status.phase, Some(case.phase), "{name}");
            assert_eq!(plan.status.observed_generation, Some(4), "{name}");
            assert_eq!(cond(&plan, READY), case.ready, "{name}");
            assert_eq!(cond(&plan, STALLED), case.stalled, "{name}");
            assert_eq!(cond(&plan, RECONCILING).0, "False", "{name}");
            for (type_, expected) in case.checks {
                assert_eq!(cond(&plan, type_), expected, "{name}: {type_}");
            }
            assert!(
                plan.status
                    .conditions
                    .iter()
                    .all(|c| c.observed_generation == Some(4)),
                "{name}"
            );
        }
    }

    #[test]
    fn messages_say_what_to_fix() {
        let rejected = plan(&with_generation(clean(), 1), &missing(), RESYNC, at(0));
        let ready = find(&rejected.status.conditions, READY).expect("ready");
        assert!(
            ready.message.starts_with(
                "ghcr.io/example/t:1.0 does not exist: registry ghcr.io has no manifest"
            ),
            "{}",
            ready.message
        );
        let found = plan(&with_generation(clean(), 1), &exists(), RESYNC, at(0));
        let available = find(&found.status.conditions, IMAGE_AVAILABLE).expect("available");
        assert_eq!(
            available.message,
            format!("ghcr.io/example/t:1.0 exists in its registry (digest {DIGEST})")
        );
        let unknown = plan(&with_generation(clean(), 1), &unreachable(), RESYNC, at(0));
        let ready = find(&unknown.status.conditions, READY).expect("ready");
        assert_eq!(
            ready.message,
            "the template is valid; whether its image exists is unknown (RegistryUnreachable)"
        );
    }

    #[test]
    fn a_converged_status_plans_itself_again_with_no_events() {
        let first = plan(&with_generation(clean(), 2), &exists(), RESYNC, at(0));
        assert!(!first.events.is_empty());
        let mut converged = with_generation(clean(), 2);
        converged.status = Some(first.status.clone());
        let again = plan(&converged, &exists(), RESYNC, at(500));
        assert_eq!(
            again.status, first.status,
            "an unchanged status is not rewritten"
        );
        assert!(again.events.is_empty(), "{:?}", again.events);
    }

    #[test]
    fn events_follow_changes() {
        fn reasons(p: &TemplatePlan) -> Vec<(bool, &str)> {
            p.events
                .iter()
                .map(|e| (e.warning, e.reason.as_str()))
                .collect()
        }
        let warned = MCPTemplate::test("t").image("mcp/time").no_network();
        let first = plan(
            &with_generation(warned.clone(), 1),
            &exists(),
            RESYNC,
            at(0),
        );
        assert_eq!(
            reasons(&first),
            vec![(false, ACCEPTED), (true, "UnpinnedImageTag")]
        );

        // The image disappears: Rejected once; the warning is old news.
        let mut accepted = with_generation(warned.clone(), 1);
        accepted.status = Some(first.status.clone());
        let gone = plan(&accepted, &missing(), RESYNC, at(10));
        assert_eq!(reasons(&gone), vec![(true, "Rejected")]);

        // The registry stops answering: one event for the flip to Unknown, none after.
        let down = plan(&accepted, &unreachable(), RESYNC, at(10));
        assert_eq!(reasons(&down), vec![(true, "RegistryUnreachable")]);
        let mut still_down = accepted.clone();
        still_down.status = Some(down.status.clone());
        assert!(
            plan(&still_down, &unreachable(), RESYNC, at(20))
                .events
                .is_empty()
        );

        // A new generation with a new warning: Accepted again and the new warning only.
        let mut edited = with_generation(warned.allow_hosts(&["*"]), 2);
        edited.status = Some(first.status.clone());
        let replanned = plan(&edited, &exists(), RESYNC, at(30));
        assert_eq!(
            reasons(&replanned),
            vec![
                (false, ACCEPTED),
                (true, "BroadNetworkAccess"),
                (true, "AllowHostsNotEnforced")
            ]
        );
    }

    #[test]
    fn messages_and_notes_stay_within_what_the_api_server_takes() {
        let long = format!("--cap-add={}", "Ä".repeat(900));
        let args: Vec<&str> = std::iter::repeat_n(long.as_str(), 40).collect();
        let template = with_generation(clean().args(&args).memory("0").cpu("0"), 1);
        let planned = plan(&template, &missing(), RESYNC, at(0));
        for c in &planned.status.conditions {
            assert!(
                c.message.len() <= MAX_CONDITION_MESSAGE,
                "{}: {}",
                c.type_,
                c.message.len()
            );
        }
        let warning = find(&planned.status.conditions, WARNING).expect("warning");
        assert!(warning.message.ends_with("..."));
        assert!(!planned.events.is_empty());
        for e in &planned.events {
            assert!(
                e.note.len() <= MAX_EVENT_NOTE,
                "{}: {}",
                e.reason,
                e.note.len()
            );
        }
        let mut converged = template.clone();
        converged.status = Some(planned.status.clone());
        let again = plan(&converged, &missing(), RESYNC, at(10));
        assert!(again.events.is_empty(), "{:?}", again.events);
        assert_eq!(again.status, planned.status);
        assert_eq!(bounded("short".into(), 10), "short");
        assert_eq!(bounded("ÄÄÄÄÄ".into(), 7), "ÄÄ...");
        assert_eq!(bounded("ÄÄÄÄÄ".into(), 6), "Ä...");
    }

    #[test]
    fn transition_times_move_only_when_a_status_flips() {
        let first = plan(&with_generation(clean(), 1), &exists(), RESYNC, at(0));
        let mut object = with_generation(clean(), 1);
        object.status = Some(first.status);
        let rejected = plan(&object, &missing(), RESYNC, at(100));
        let time = |p: &TemplatePlan, t: &str| {
            find(&p.status.conditions, t)
                .expect("condition")
                .last_transition_time
                .0
        };
        assert_eq!(time(&rejected, READY), at(100));
        assert_eq!(time(&rejected, IMAGE_AVAILABLE), at(100));
        assert_eq!(time(&rejected, RESOURCES), at(0));
    }

    #[test]
    fn requeue_at_the_next_check_within_the_resync() {
        let cases = [
            (exists(), at(10), RESYNC),
            (missing(), at(10), Duration::from_secs(110)),
            (unreachable(), at(10), Duration::from_secs(50)),
            (unreachable(), at(500), Duration::from_secs(1)),
            (ImageObservation::Disabled, at(10), RESYNC),
            (ImageObservation::NotChecked, at(10), RESYNC),
        ];
        for (image, now, expected) in cases {
            let p = plan(&with_generation(clean(), 1), &image, RESYNC, now);
            assert_eq!(p.requeue_after, expected, "{image:?}");
        }
    }
}
