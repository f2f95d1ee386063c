//! What makes an MCPTemplate unusable, grouped by the status condition that reports it: the image
//! reference, the transport against the port, the env schema, the resources. Pure.
//!
//! Two sources: the rules the CRD schema cannot express (an image reference the registry would
//! refuse, duplicate env or volume names, requests no droplet size can hold, zero requests), and
//! the schema and CEL rules themselves, through the offline validator ([`super::validation`]),
//! because an object stored under an older CRD, or by a server that skipped validation, never
//! met them. The template reconciler turns the result into conditions; a problem rejects.

use std::collections::BTreeSet;

use scheduler::{DEFAULT_SYSTEM_RESERVE, Resources};

use super::image_reference::ImageReference;
use super::quantity::{format_bytes, format_cpu_millis, parse_bytes, parse_cpu_millis};
use super::template::{MCPTemplate, MCPTemplateSpec, Transport};
use super::validation::validate_manifest;

/// Which status condition reports a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CheckArea {
    /// `spec.image` (condition `ImageReference`).
    ImageReference,
    /// `spec.transport`, `spec.port`, `spec.path` (condition `Transport`).
    Transport,
    /// `spec.env` (condition `EnvSchema`).
    EnvSchema,
    /// `spec.resources` and `spec.volumes` (condition `Resources`).
    Resources,
    /// Anything else (`spec.network`, unknown fields): only `Ready`/`Stalled` report it.
    Spec,
}

impl CheckArea {
    /// Every area, in the order conditions are written.
    pub const ALL: [CheckArea; 5] = [
        CheckArea::ImageReference,
        CheckArea::Transport,
        CheckArea::EnvSchema,
        CheckArea::Resources,
        CheckArea::Spec,
    ];

    /// The area of a schema error at `field` (a dotted path such as `spec.env[0].name`).
    pub fn of_field(field: &str) -> Self {
        let under = |prefix: &str| {
            field == prefix
                || field.starts_with(&format!("{prefix}."))
                || field.starts_with(&format!("{prefix}["))
        };
        if under("spec.image") {
            Self::ImageReference
        } else if under("spec.transport") || under("spec.port") || under("spec.path") {
            Self::Transport
        } else if under("spec.env") {
            Self::EnvSchema
        } else if under("spec.resources") || under("spec.volumes") {
            Self::Resources
        } else {
            Self::Spec
        }
    }
}

/// One reason a template cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateProblem {
    /// Which condition reports it.
    pub area: CheckArea,
    /// The field, e.g. `spec.env[1].default`.
    pub field: String,
    /// A stable CamelCase reason for conditions and events.
    pub reason: &'static str,
    /// What is wrong, for people, naming the field.
    pub message: String,
}

/// The outcome of [`check_template`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateChecks {
    /// The parsed image reference, when it parses.
    pub image: Option<ImageReference>,
    /// Every problem, grouped by area in [`CheckArea::ALL`] order.
    pub problems: Vec<TemplateProblem>,
}

impl TemplateChecks {
    /// The problems reported by `area`'s condition.
    pub fn in_area(&self, area: CheckArea) -> impl Iterator<Item = &TemplateProblem> {
        self.problems.iter().filter(move |p| p.area == area)
    }

    /// No problem at all.
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Reason of schema problems in the image field.
pub const INVALID_IMAGE_REFERENCE: &str = "InvalidImageReference";
/// Reason of schema problems outside the checked areas.
pub const INVALID_SPEC: &str = "InvalidSpec";

/// Checks `template`: the rules the schema cannot express, then the schema and CEL rules.
pub fn check_template(template: &MCPTemplate) -> TemplateChecks {
    let spec = &template.spec;
    let mut problems = Vec::new();
    let image = match ImageReference::parse(&spec.image) {
        Ok(image) => Some(image),
        Err(error) => {
            problems.push(problem(
                CheckArea::ImageReference,
                "spec.image",
                INVALID_IMAGE_REFERENCE,
                format!("spec.image {:?}: {error}", spec.image),
            ));
            None
        }
    };
    check_transport(spec, &mut problems);
    check_env(spec, &mut problems);
    check_resources(spec, &mut problems);
    add_schema_problems(template, &mut problems);
    problems.sort_by_key(|p| p.area);
    TemplateChecks { image, problems }
}

fn problem(
    area: CheckArea,
    field: impl Into<String>,
    reason: &'static str,
    message: String,
) -> TemplateProblem {
    TemplateProblem {
        area,
        field: field.into(),
        reason,
        message,
    }
}

fn check_transport(spec: &MCPTemplateSpec, problems: &mut Vec<TemplateProblem>) {
    match (spec.transport, spec.port) {
        (Transport::StreamableHttp | Transport::Sse, None) => problems.push(problem(
            CheckArea::Transport,
            "spec.port",
            "PortRequired",
            format!(
                "spec.transport {} needs spec.port, the port the server listens on",
                spec.transport.as_str()
            ),
        )),
        (_, Some(port)) if !(1..=65535).contains(&port) => problems.push(problem(
            CheckArea::Transport,
            "spec.port",
            "InvalidPort",
            format!("spec.port {port} is not a TCP port (1-65535)"),
        )),
        _ => {}
    }
}

fn check_env(spec: &MCPTemplateSpec, problems: &mut Vec<TemplateProblem>) {
    let mut seen = BTreeSet::new();
    for (i, env) in spec.env.iter().enumerate() {
        let field = format!("spec.env[{i}]");
        if !seen.insert(env.name.as_str()) {
            problems.push(problem(
                CheckArea::EnvSchema,
                format!("{field}.name"),
                "DuplicateEnvName",
                format!("spec.env declares {} more than once", env.name),
            ));
        }
        if env.secret && env.default.is_some() {
            problems.push(problem(
                CheckArea::EnvSchema,
                format!("{field}.default"),
                "SecretWithDefault",
                format!(
                    "spec.env {} is secret but has a default: secrets come from a Secret \
                     reference, never from the template",
                    env.name
                ),
            ));
        }
        if let Some(default) = &env.default
            && !env.choices.is_empty()
            && !env.choices.contains(default)
        {
            problems.push(problem(
                CheckArea::EnvSchema,
                format!("{field}.default"),
                "DefaultNotInChoices",
                format!(
                    "spec.env {}: the default {default:?} is not one of the choices ({})",
                    env.name,
                    env.choices.join(", ")
                ),
            ));
        }
    }
}

fn check_resources(spec: &MCPTemplateSpec, problems: &mut Vec<TemplateProblem>) {
    let mut quantity = |field: &str, value: Option<&String>, cpu: bool| -> Option<u64> {
        let value = value?;
        let parsed = if cpu {
            parse_cpu_millis(value)
        } else {
            parse_bytes(value)
        };
        match parsed {
            Ok(0) if field != "spec.resources.disk" && !field.starts_with("spec.volumes") => {
                problems.push(problem(
                    CheckArea::Resources,
                    field,
                    "ZeroResources",
                    format!(
                        "{field} is {value}: a server needs some {}",
                        if cpu { "CPU" } else { "memory" }
                    ),
                ));
                None
            }
            Ok(amount) => Some(amount),
            Err(error) => {
                problems.push(problem(
                    CheckArea::Resources,
                    field,
                    "InvalidQuantity",
                    format!("{field} {value:?}: {error}"),
                ));
                None
            }
        }
    };
    let resources = &spec.resources;
    let memory = quantity("spec.resources.memory", resources.memory.as_ref(), false);
    let cpu = quantity("spec.resources.cpu", resources.cpu.as_ref(), true);
    let disk = quantity("spec.resources.disk", resources.disk.as_ref(), false);
    let mut volumes_disk = 0u64;
    for (i, volume) in spec.volumes.iter().enumerate() {
        let size = quantity(
            &format!("spec.volumes[{i}].size"),
            volume.size.as_ref(),
            false,
        );
        volumes_disk = volumes_disk.saturating_add(size.unwrap_or(0));
    }

    let mut names = BTreeSet::new();
    let mut paths = BTreeSet::new();
    for (i, volume) in spec.volumes.iter().enumerate() {
        if !names.insert(volume.name.as_str()) {
            problems.push(problem(
                CheckArea::Resources,
                format!("spec.volumes[{i}].name"),
                "DuplicateVolume",
                format!("spec.volumes declares {} more than once", volume.name),
            ));
        }
        let path = volume.mount_path.trim_end_matches('/');
        if !paths.insert(path) {
            problems.push(problem(
                CheckArea::Resources,
                format!("spec.volumes[{i}].mountPath"),
                "DuplicateMountPath",
                format!("spec.volumes mount two volumes at {}", volume.mount_path),
            ));
        }
    }

    let request = Resources::new(
        memory.unwrap_or(0),
        cpu.unwrap_or(0),
        disk.unwrap_or(0).saturating_add(volumes_disk),
    );
    let largest = crate::catalog::sizes()
        .iter()
        .map(|size| size.capacity().minus(DEFAULT_SYSTEM_RESERVE))
        .fold(Resources::ZERO, |max, a| {
            Resources::new(
                max.memory.max(a.memory),
                max.cpu_millis.max(a.cpu_millis),
                max.disk.max(a.disk),
            )
        });
    let fits_some_size = crate::catalog::sizes()
        .iter()
        .any(|size| request.fits_in(&size.capacity().minus(DEFAULT_SYSTEM_RESERVE)));
    if !fits_some_size {
        problems.push(problem(
            CheckArea::Resources,
            "spec.resources",
            "ExceedsLargestDroplet",
            format!(
                "no droplet size can hold memory {}, CPU {}, disk {} (volumes included); the \
                 most a size offers after the system reserve is memory {}, CPU {}, disk {}",
                format_bytes(request.memory),
                format_cpu_millis(request.cpu_millis),
                format_bytes(request.disk),
                format_bytes(largest.memory),
                format_cpu_millis(largest.cpu_millis),
                format_bytes(largest.disk),
            ),
        ));
    }
}

/// The schema's and CEL rules' verdict, for what the checks above did not already report in
/// the same area (they cover the CEL rules with stable reasons of their own).
fn add_schema_problems(template: &MCPTemplate, problems: &mut Vec<TemplateProblem>) {
    // Status is the operator's own output; only what the user wrote is judged.
    let mut object = match serde_json::to_value(template) {
        Ok(object) => object,
        Err(_) => return,
    };
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    let Err(errors) = validate_manifest(&object, None) else {
        return;
    };
    let reported: BTreeSet<CheckArea> = problems.iter().map(|p| p.area).collect();
    let any_reported = !reported.is_empty();
    for error in errors {
        let area = CheckArea::of_field(&error.field);
        // A rule on the whole spec (the port and network rules) is one the checks above
        // already restate when they found anything.
        let restated = reported.contains(&area) || (area == CheckArea::Spec && any_reported);
        if restated {
            continue;
        }
        let reason = match area {
            CheckArea::ImageReference => INVALID_IMAGE_REFERENCE,
            CheckArea::Transport => "InvalidTransport",
            CheckArea::EnvSchema => "InvalidEnvSchema",
            CheckArea::Resources => "InvalidResources",
            CheckArea::Spec => INVALID_SPEC,
        };
        problems.push(problem(
            area,
            error.field.clone(),
            reason,
            error.to_string(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::template::EnvSchema as EnvEntry;
    use crate::testing::TemplateBuilder;

    fn reasons(template: TemplateBuilder) -> Vec<(CheckArea, &'static str)> {
        check_template(&template.build())
            .problems
            .into_iter()
            .map(|p| (p.area, p.reason))
            .collect()
    }

    fn t() -> TemplateBuilder {
        MCPTemplate::test("t")
    }

    #[test]
    fn problems_land_in_their_area_with_a_stable_reason() {
        use CheckArea::*;
        let secret_default = EnvEntry {
            name: "TOKEN".into(),
            secret: true,
            default: Some("x".into()),
            ..EnvEntry::default()
        };
        type Case = (
            &'static str,
            TemplateBuilder,
            Vec<(CheckArea, &'static str)>,
        );
        let cases: Vec<Case> = vec![
            ("the builder's template", t(), vec![]),
            (
                "an http server",
                t().streamable_http(8080).memory("1Gi").cpu("high"),
                vec![],
            ),
            (
                "uppercase image",
                t().image("ghcr.io/Team/x:1"),
                vec![(ImageReference, "InvalidImageReference")],
            ),
            (
                "repository too long for the registry",
                t().image(&format!("ghcr.io/{}:1", "a".repeat(300))),
                vec![(ImageReference, "InvalidImageReference")],
            ),
            (
                "sse without a port",
                t().sse(8080).no_port(),
                vec![(Transport, "PortRequired")],
            ),
            (
                "port out of range",
                t().streamable_http(70000),
                vec![(Transport, "InvalidPort")],
            ),
            (
                "duplicate env",
                t().optional_env("A").optional_env("A"),
                vec![(EnvSchema, "DuplicateEnvName")],
            ),
            (
                "secret with a default",
                t().env(secret_default),
                vec![(EnvSchema, "SecretWithDefault")],
            ),
            (
                "default outside the choices",
                t().env_default("MODE", "fast", &["slow", "safe"]),
                vec![(EnvSchema, "DefaultNotInChoices")],
            ),
            (
                "zero memory",
                t().memory("0"),
                vec![(Resources, "ZeroResources")],
            ),
            (
                "zero cpu",
                t().cpu("0m"),
                vec![(Resources, "ZeroResources")],
            ),
            ("zero disk is fine", t().disk("0"), vec![]),
            (
                "bad quantity",
                t().memory("lots"),
                vec![(Resources, "InvalidQuantity")],
            ),
            (
                "memory beyond every size",
                t().memory("4Ti"),
                vec![(Resources, "ExceedsLargestDroplet")],
            ),
            (
                "cpu beyond every size",
                t().cpu("500"),
                vec![(Resources, "ExceedsLargestDroplet")],
            ),
            (
                "volumes beyond every disk",
                t().volume("a", "/a", Some("900Ti")),
                vec![(Resources, "ExceedsLargestDroplet")],
            ),
            (
                "duplicate volume name and path",
                t().volume("a", "/data", None).volume("a", "/data/", None),
                vec![
                    (Resources, "DuplicateVolume"),
                    (Resources, "DuplicateMountPath"),
                ],
            ),
            (
                "several areas, in condition order",
                t().memory("0").image("BAD").sse(1).no_port(),
                vec![
                    (ImageReference, "InvalidImageReference"),
                    (Transport, "PortRequired"),
                    (Resources, "ZeroResources"),
                ],
            ),
        ];
        for (name, template, expected) in cases {
            assert_eq!(reasons(template), expected, "{name}");
        }
    }

    #[test]
    fn schema_rules_the_checks_do_not_restate_are_reported_from_the_validator() {
        // allowHosts and none together break a CEL rule on spec that no check restates.
        let mut template = t().allow_hosts(&["a.example"]).build();
        if let Some(network) = template.spec.network.as_mut() {
            network.none = Some(true);
        }
        let checks = check_template(&template);
        assert_eq!(checks.problems.len(), 1, "{:?}", checks.problems);
        assert_eq!(checks.problems[0].area, CheckArea::Spec);
        assert_eq!(checks.problems[0].reason, INVALID_SPEC);
        assert!(
            checks.problems[0].message.contains("exclusive"),
            "{:?}",
            checks.problems
        );

        // A path the schema's pattern refuses lands in Transport.
        let checks = check_template(&t().streamable_http(80).path("no-slash").build());
        assert_eq!(
            checks
                .problems
                .iter()
                .map(|p| (p.area, p.reason))
                .collect::<Vec<_>>(),
            vec![(CheckArea::Transport, "InvalidTransport")]
        );
    }

    #[test]
    fn the_image_is_parsed_for_the_registry_check() {
        let checks = check_template(&t().image("mcp/time:1").build());
        assert!(checks.is_valid());
        assert_eq!(
            checks.image.map(|i| i.to_string()).as_deref(),
            Some("docker.io/mcp/time:1")
        );
    }

    #[test]
    fn fields_map_to_areas() {
        let cases = [
            ("spec.image", CheckArea::ImageReference),
            ("spec.imagePullPolicy", CheckArea::Spec),
            ("spec.port", CheckArea::Transport),
            ("spec.env[0].name", CheckArea::EnvSchema),
            ("spec.volumes[1].size", CheckArea::Resources),
            ("spec.resources.memory", CheckArea::Resources),
            ("spec", CheckArea::Spec),
        ];
        for (field, area) in cases {
            assert_eq!(CheckArea::of_field(field), area, "{field}");
        }
    }
}
