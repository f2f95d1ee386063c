//! What a valid MCPTemplate asks for that deserves a person's attention, as warnings: the
//! template is still Accepted, but users see a `Warning` condition (and, from the template
//! controller, an event) naming the field. Two kinds:
//!
//! - settings the operator cannot honour yet ([`template_warnings`]), instead of silently
//!   giving less than asked for (decision 0009);
//! - basic security lints ([`security_warnings`]): an unpinned image, privileged-looking
//!   arguments, the Docker socket or system directories as mount points, a volume at `/`,
//!   unrestricted egress, secret-looking variables not marked secret (decision 0010).
//!
//! Pure: the template reconciler writes [`warning_condition`] of [`all_warnings`] into status;
//! `plan` prints the unhonoured settings on stderr; the field descriptions in the CRD say the same.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;

use super::conditions::{ConditionStatus, condition};
use super::image_reference::ImageReference;
use super::template::{MCPTemplateSpec, Transport};

/// Condition type set on templates that are accepted with warnings.
pub const WARNING: &str = "Warning";

/// Reason of the `Warning` condition when nothing is wrong.
pub const NO_WARNINGS: &str = "NoWarnings";

/// One setting of an accepted template that deserves attention (not honoured, or risky).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateWarning {
    /// The field path, e.g. `spec.network.allowHosts`.
    pub field: &'static str,
    /// A stable CamelCase reason for conditions, events and alerts.
    pub reason: &'static str,
    /// What it means for the user, naming the field.
    pub message: String,
}

/// The settings of `spec` the operator does not honour, in a stable order (empty when it
/// honours everything).
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

/// The security lints of `spec`, most serious first (empty when none applies).
pub fn security_warnings(spec: &MCPTemplateSpec) -> Vec<TemplateWarning> {
    let mut warnings = Vec::new();
    let invocation: Vec<&str> = spec
        .command
        .iter()
        .chain(&spec.args)
        .map(String::as_str)
        .collect();

    let privileged: Vec<&str> = invocation
        .iter()
        .enumerate()
        .filter(|(i, arg)| looks_privileged(arg, invocation.get(i + 1).copied()))
        .map(|(_, arg)| *arg)
        .collect();
    if !privileged.is_empty() {
        warnings.push(TemplateWarning {
            field: "spec.args",
            reason: "PrivilegedSettings",
            message: format!(
                "spec.command/spec.args ask for host-level privileges ({}): the agent runs \
                 containers unprivileged, and a server that needs this can take over the droplet",
                privileged.join(" ")
            ),
        });
    }

    let socket_mounts: Vec<&str> = spec
        .volumes
        .iter()
        .map(|v| v.mount_path.as_str())
        .chain(invocation.iter().copied())
        .filter(|path| is_runtime_socket(path))
        .collect();
    if !socket_mounts.is_empty() {
        warnings.push(TemplateWarning {
            field: "spec.volumes",
            reason: "DockerSocketMount",
            message: format!(
                "{} names a container runtime socket: whoever holds it controls every container \
                 on the droplet",
                socket_mounts.join(", ")
            ),
        });
    }

    let system_mounts: Vec<String> = spec
        .volumes
        .iter()
        .filter(|v| {
            let path = normalise_path(&v.mount_path);
            path != "/" && !is_runtime_socket(&path) && is_system_path(&path)
        })
        .map(|v| format!("{} at {}", v.name, v.mount_path))
        .collect();
    if !system_mounts.is_empty() {
        warnings.push(TemplateWarning {
            field: "spec.volumes",
            reason: "HostPathMount",
            message: format!(
                "spec.volumes mount over system directories ({}): they look like host paths and \
                 hide the image's own files there",
                system_mounts.join(", ")
            ),
        });
    }

    let at_root: Vec<&str> = spec
        .volumes
        .iter()
        .filter(|v| normalise_path(&v.mount_path) == "/")
        .map(|v| v.name.as_str())
        .collect();
    if !at_root.is_empty() {
        warnings.push(TemplateWarning {
            field: "spec.volumes",
            reason: "VolumeAtRoot",
            message: format!(
                "spec.volumes {} mounted at /: it replaces the container's whole file system",
                at_root.join(", ")
            ),
        });
    }

    for env in &spec.env {
        if env.secret || !looks_secret(&env.name) {
            continue;
        }
        let (reason, problem) = if env.default.is_some() {
            (
                "SecretEnvWithDefault",
                "has a default value, stored in plain text in the template",
            )
        } else {
            (
                "SecretEnvNotMarkedSecret",
                "is not marked secret, so deployments may set it as a plain value",
            )
        };
        warnings.push(TemplateWarning {
            field: "spec.env",
            reason,
            message: format!(
                "spec.env {} looks like a secret but {problem}; set secret: true (and no default) \
                 so it can only come from a Secret",
                env.name
            ),
        });
    }

    match &spec.network {
        Some(network) if network.none == Some(true) => {}
        Some(network) => {
            let broad: Vec<&str> = network
                .allow_hosts
                .iter()
                .flatten()
                .map(String::as_str)
                .filter(|host| matches!(*host, "*" | "0.0.0.0/0" | "::/0"))
                .collect();
            if !broad.is_empty() {
                warnings.push(TemplateWarning {
                    field: "spec.network.allowHosts",
                    reason: "BroadNetworkAccess",
                    message: format!(
                        "spec.network.allowHosts allows every host ({}): list the hosts the \
                         server needs",
                        broad.join(", ")
                    ),
                });
            }
        }
        None => warnings.push(TemplateWarning {
            field: "spec.network",
            reason: "BroadNetworkAccess",
            message: "spec.network is not set, so the container may reach any host: declare \
                      spec.network.allowHosts, or set spec.network.none when it needs no network"
                .to_string(),
        }),
    }

    // An unparsable image is the ImageReference condition's business, not a lint.
    if let Ok(image) = ImageReference::parse(&spec.image)
        && !image.is_pinned()
        && image.effective_tag() == Some(super::image_reference::DEFAULT_TAG)
    {
        warnings.push(TemplateWarning {
            field: "spec.image",
            reason: "UnpinnedImageTag",
            message: format!(
                "spec.image {} is not pinned (tag latest{}): each pull may run different code; \
                 use a version tag or a digest",
                spec.image,
                if image.tag.is_none() {
                    " by default"
                } else {
                    ""
                }
            ),
        });
    }

    if spec.transport == Transport::Stdio
        && let Some(port) = spec.port
    {
        warnings.push(TemplateWarning {
            field: "spec.port",
            reason: "PortIgnoredForStdio",
            message: format!(
                "spec.port {port} is ignored: a stdio server is reached through the agent's \
                 bridge, not a port"
            ),
        });
    }
    warnings
}

/// Every warning of `spec`: security lints first (most serious first), then unhonoured
/// settings; the order of [`warning_condition`]'s reason and message.
pub fn all_warnings(spec: &MCPTemplateSpec) -> Vec<TemplateWarning> {
    let mut warnings = security_warnings(spec);
    warnings.extend(template_warnings(spec));
    warnings
}

/// `/a//b/` -> `/a/b`; `/` and `//` -> `/`.
fn normalise_path(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

fn is_runtime_socket(text: &str) -> bool {
    ["docker.sock", "containerd.sock", "podman.sock", "crio.sock"]
        .iter()
        .any(|socket| text.contains(socket))
}

/// Directories of the container's own system (or, mounted, of a host): `/etc`, `/proc`, ...
fn is_system_path(path: &str) -> bool {
    const SYSTEM: [&str; 14] = [
        "/bin", "/boot", "/dev", "/etc", "/host", "/lib", "/lib64", "/proc", "/root", "/run",
        "/sbin", "/sys", "/usr", "/var/run",
    ];
    SYSTEM
        .iter()
        .any(|dir| path == *dir || path.starts_with(&format!("{dir}/")))
        || path == "/var/lib/docker"
        || path.starts_with("/var/lib/docker/")
}

/// Container-runtime flags and tools that ask for more than an unprivileged container gets;
/// `next` is the following argument, for the `--net host` spelling.
fn looks_privileged(arg: &str, next: Option<&str>) -> bool {
    let lower = arg.to_ascii_lowercase();
    let (flag, value) = match lower.split_once('=') {
        Some((flag, value)) => (flag, Some(value.to_string())),
        None => (lower.as_str(), next.map(str::to_ascii_lowercase)),
    };
    let namespace_flag = matches!(
        flag,
        "--net" | "--network" | "--pid" | "--ipc" | "--uts" | "--userns" | "--cgroupns"
    );
    let host_namespace = namespace_flag && value.as_deref() == Some("host");
    let unconfined = flag == "--security-opt"
        && value
            .as_deref()
            .is_some_and(|v| v.contains("unconfined") || v.contains("privileged"));
    matches!(flag, "--privileged" | "--cap-add" | "--device")
        || host_namespace
        || unconfined
        || matches!(lower.as_str(), "sudo" | "nsenter" | "chroot")
}

/// Names that usually carry credentials (`GITHUB_TOKEN`, `DB_PASSWORD`, `OPENAI_API_KEY`).
fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    [
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "API_KEY",
        "APIKEY",
        "ACCESS_KEY",
        "PRIVATE_KEY",
        "CREDENTIAL",
    ]
    .iter()
    .any(|marker| upper.contains(marker))
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
    use crate::testing::TemplateBuilder;

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

    fn reasons(template: TemplateBuilder) -> Vec<&'static str> {
        security_warnings(&template.build().spec)
            .into_iter()
            .map(|w| w.reason)
            .collect()
    }

    /// A template that draws no lint: pinned by version, no network.
    fn clean(name: &str) -> TemplateBuilder {
        MCPTemplate::test(name).no_network()
    }

    fn with_args(args: &[&str]) -> TemplateBuilder {
        clean("x").args(args)
    }

    #[test]
    fn security_lints_name_what_they_saw() {
        let cases: Vec<(&str, TemplateBuilder, Vec<&str>)> = vec![
            ("clean", clean("time"), vec![]),
            (
                "a version tag and allowed hosts",
                MCPTemplate::test("g").allow_hosts(&["api.github.com"]),
                vec![],
            ),
            (
                "no network section",
                MCPTemplate::test("t"),
                vec!["BroadNetworkAccess"],
            ),
            (
                "allowHosts *",
                MCPTemplate::test("t").allow_hosts(&["api.example", "*"]),
                vec!["BroadNetworkAccess"],
            ),
            (
                "a wildcard subdomain is not broad",
                MCPTemplate::test("t").allow_hosts(&["*.example.com"]),
                vec![],
            ),
            (
                "latest",
                clean("t").image("mcp/time:latest"),
                vec!["UnpinnedImageTag"],
            ),
            (
                "no tag",
                clean("t").image("mcp/time"),
                vec!["UnpinnedImageTag"],
            ),
            (
                "a digest pins even latest",
                clean("t").image(&format!("mcp/time:latest@sha256:{}", "a".repeat(64))),
                vec![],
            ),
            ("a version tag", clean("t").image("mcp/time:1.2"), vec![]),
            (
                "--privileged",
                with_args(&["--privileged"]),
                vec!["PrivilegedSettings"],
            ),
            (
                "--cap-add=SYS_ADMIN",
                with_args(&["--cap-add=SYS_ADMIN"]),
                vec!["PrivilegedSettings"],
            ),
            (
                "--net host",
                with_args(&["--net", "host"]),
                vec!["PrivilegedSettings"],
            ),
            (
                "--pid=host",
                with_args(&["--pid=host"]),
                vec!["PrivilegedSettings"],
            ),
            (
                "seccomp unconfined",
                with_args(&["--security-opt", "seccomp=unconfined"]),
                vec!["PrivilegedSettings"],
            ),
            (
                "--network bridge",
                with_args(&["--network", "bridge"]),
                vec![],
            ),
            (
                "ordinary flags",
                with_args(&["--port", "8080", "--verbose"]),
                vec![],
            ),
            (
                "docker socket volume",
                clean("t").volume("sock", "/var/run/docker.sock", None),
                vec!["DockerSocketMount"],
            ),
            (
                "docker socket in args",
                with_args(&["--docker-host", "unix:///run/docker.sock"]),
                vec!["DockerSocketMount"],
            ),
            (
                "/etc",
                clean("t").volume("conf", "/etc/app", None),
                vec!["HostPathMount"],
            ),
            (
                "/proc",
                clean("t").volume("p", "/proc", None),
                vec!["HostPathMount"],
            ),
            (
                "/data is fine",
                clean("t").volume("data", "/data", Some("1Gi")),
                vec![],
            ),
            (
                "/etcetera is fine",
                clean("t").volume("data", "/etcetera", None),
                vec![],
            ),
            (
                "at /",
                clean("t").volume("all", "/", None),
                vec!["VolumeAtRoot"],
            ),
            (
                "at //",
                clean("t").volume("all", "//", None),
                vec!["VolumeAtRoot"],
            ),
            (
                "token with a default",
                clean("t").env_default("API_TOKEN", "abc", &[]),
                vec!["SecretEnvWithDefault"],
            ),
            (
                "password not secret",
                clean("t").optional_env("DB_PASSWORD"),
                vec!["SecretEnvNotMarkedSecret"],
            ),
            (
                "marked secret",
                clean("t").secret_env("GITHUB_TOKEN"),
                vec![],
            ),
            (
                "ordinary env with a default",
                clean("t").env_default("LOG_LEVEL", "info", &[]),
                vec![],
            ),
            (
                "stdio with a port",
                clean("t").port(8080),
                vec!["PortIgnoredForStdio"],
            ),
            ("http with a port", clean("t").streamable_http(8080), vec![]),
            (
                "several, most serious first",
                with_args(&["--privileged"])
                    .image("mcp/time")
                    .volume("all", "/", None)
                    .allow_hosts(&["*"]),
                vec![
                    "PrivilegedSettings",
                    "VolumeAtRoot",
                    "BroadNetworkAccess",
                    "UnpinnedImageTag",
                ],
            ),
        ];
        for (name, template, expected) in cases {
            assert_eq!(reasons(template), expected, "{name}");
        }
    }

    #[test]
    fn all_warnings_put_lints_before_unhonoured_settings() {
        let spec = MCPTemplate::test("t")
            .image("mcp/t")
            .allow_hosts(&["api.example"])
            .build()
            .spec;
        let all: Vec<_> = all_warnings(&spec).into_iter().map(|w| w.reason).collect();
        assert_eq!(all, vec!["UnpinnedImageTag", "AllowHostsNotEnforced"]);
        let message = &security_warnings(&spec)[0].message;
        assert!(
            message.contains("spec.image mcp/t is not pinned (tag latest by default)"),
            "{message}"
        );
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
