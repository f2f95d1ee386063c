//! The desired server on the agent, pure: which env a deployment needs (template schema,
//! defaults, references), the agent's `ServerSpec` once the values are known, and its
//! configuration hash.
//!
//! The hash is the agent library's `ServerSpec::hash`, keyed with the deployment's endpoint
//! token (random, kept in a Secret): secret values are part of it, so a rotated Secret changes
//! it, and nobody who sees the hash (status, container label) can test guesses of a value
//! without the token.

use std::collections::{BTreeMap, BTreeSet};

use mcp_droplet_agent::api::{
    EnvVar as AgentEnv, NetworkPolicy, Resources as AgentResources, ServerSpec,
    Transport as AgentTransport, Volume,
};
use mcp_droplet_agent::secret::Secret;

use crate::api::deployment::MCPDeployment;
use crate::api::template::{MCPTemplate, Transport};

/// Label on the agent's server carrying the configuration hash.
pub const CONFIG_HASH_LABEL: &str = "mcp.agentopia.io/config-hash";
/// Label on the agent's server naming the deployment (`namespace/name`).
pub const DEPLOYMENT_LABEL: &str = "mcp.agentopia.io/deployment";
/// Characters of the hash kept (64 bits: plenty to detect a change).
pub const HASH_CHARS: usize = 16;

/// Where one env variable's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvSource {
    /// A literal (from the deployment or the template's default).
    Literal(String),
    /// A key of a Secret; the value is secret.
    Secret {
        /// Secret name.
        name: String,
        /// Key.
        key: String,
        /// Missing is not an error.
        optional: bool,
    },
    /// A key of a ConfigMap.
    ConfigMap {
        /// ConfigMap name.
        name: String,
        /// Key.
        key: String,
        /// Missing is not an error.
        optional: bool,
    },
}

/// A resolved env value.
#[derive(Clone, PartialEq, Eq)]
pub enum EnvValue {
    /// Shown to the agent as a plain value.
    Plain(String),
    /// Sent as a secret value (redacted by the agent).
    Secret(String),
}

impl std::fmt::Debug for EnvValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnvValue::Plain(v) => write!(f, "Plain({v:?})"),
            EnvValue::Secret(_) => f.write_str("Secret(***)"),
        }
    }
}

/// The env a deployment needs, by name: its own entries, then the template's defaults.
/// Errors (for people) when a required variable is missing, a secret variable is given as a
/// literal, or a value is not one of the template's choices.
pub fn env_sources(
    deployment: &MCPDeployment,
    template: &MCPTemplate,
) -> Result<BTreeMap<String, EnvSource>, String> {
    let mut out = BTreeMap::new();
    let schema: BTreeMap<&str, &crate::api::template::EnvSchema> = template
        .spec
        .env
        .iter()
        .map(|e| (e.name.as_str(), e))
        .collect();
    for var in &deployment.spec.env {
        let entry = schema.get(var.name.as_str());
        let source = match (&var.value, &var.value_from) {
            (Some(value), _) => {
                if entry.is_some_and(|e| e.secret) {
                    return Err(format!(
                        "env {} is secret in the template: give it through valueFrom.secretKeyRef",
                        var.name
                    ));
                }
                if let Some(e) = entry
                    && !e.choices.is_empty()
                    && !e.choices.contains(value)
                {
                    return Err(format!(
                        "env {} must be one of {}",
                        var.name,
                        e.choices.join(", ")
                    ));
                }
                EnvSource::Literal(value.clone())
            }
            (None, Some(from)) => match (&from.secret_key_ref, &from.config_map_key_ref) {
                (Some(s), _) => EnvSource::Secret {
                    name: s.name.clone(),
                    key: s.key.clone(),
                    optional: s.optional.unwrap_or(false),
                },
                (None, Some(c)) => EnvSource::ConfigMap {
                    name: c.name.clone(),
                    key: c.key.clone(),
                    optional: c.optional.unwrap_or(false),
                },
                (None, None) => {
                    return Err(format!("env {} has an empty valueFrom", var.name));
                }
            },
            (None, None) => {
                return Err(format!("env {} has neither value nor valueFrom", var.name));
            }
        };
        out.insert(var.name.clone(), source);
    }
    for e in &template.spec.env {
        if out.contains_key(&e.name) {
            continue;
        }
        match &e.default {
            Some(default) => {
                out.insert(e.name.clone(), EnvSource::Literal(default.clone()));
            }
            None if e.required => {
                return Err(format!(
                    "env {} is required by MCPTemplate {:?}",
                    e.name,
                    template.metadata.name.as_deref().unwrap_or_default()
                ));
            }
            None => {}
        }
    }
    Ok(out)
}

/// The Secrets a deployment's env refers to (what the Secret watch maps back).
pub fn referenced_secrets(deployment: &MCPDeployment) -> BTreeSet<String> {
    deployment
        .spec
        .env
        .iter()
        .filter_map(|v| v.value_from.as_ref())
        .filter_map(|f| f.secret_key_ref.as_ref())
        .map(|s| s.name.clone())
        .collect()
}

/// The server's name on the agent: the deployment's name as a DNS label.
pub fn server_name(deployment: &MCPDeployment) -> String {
    deployment
        .metadata
        .name
        .as_deref()
        .unwrap_or_default()
        .replace('.', "-")
}

/// The agent's desired spec for the deployment, with its configuration hash (also set as the
/// [`CONFIG_HASH_LABEL`] label). `request` is the scheduler's request (memory bytes, CPU).
pub fn server_spec(
    deployment: &MCPDeployment,
    template: &MCPTemplate,
    env: &BTreeMap<String, EnvValue>,
    request: scheduler::Resources,
    token: &Secret,
) -> (ServerSpec, String) {
    let t = &template.spec;
    let transport = match t.transport {
        Transport::Stdio => AgentTransport::Stdio,
        Transport::StreamableHttp => AgentTransport::StreamableHttp,
        Transport::Sse => AgentTransport::Sse,
    };
    let http = t.transport != Transport::Stdio;
    let args = if deployment.spec.args.is_empty() {
        t.args.clone()
    } else {
        deployment.spec.args.clone()
    };
    let network_none = t.network.as_ref().and_then(|n| n.none).unwrap_or(false);
    let mut spec = ServerSpec {
        image: t.image.clone(),
        pull_credentials: None,
        env: env
            .iter()
            .map(|(name, value)| match value {
                EnvValue::Plain(v) => AgentEnv {
                    name: name.clone(),
                    value: v.clone(),
                    secret_value: None,
                },
                EnvValue::Secret(v) => AgentEnv {
                    name: name.clone(),
                    value: String::new(),
                    secret_value: Some(Secret::new(v.clone())),
                },
            })
            .collect(),
        command: t.command.clone(),
        args,
        transport,
        port: if http {
            t.port.and_then(|p| u16::try_from(p).ok())
        } else {
            None
        },
        mcp_path: http.then(|| t.path.clone()),
        resources: AgentResources {
            memory_bytes: request.memory,
            cpu_millis: u32::try_from(request.cpu_millis).unwrap_or(u32::MAX),
        },
        volumes: t
            .volumes
            .iter()
            .map(|v| Volume {
                name: v.name.clone(),
                mount_path: v.mount_path.clone(),
                read_only: false,
            })
            .collect(),
        labels: BTreeMap::from([(
            DEPLOYMENT_LABEL.to_string(),
            crate::fleet::key_of(&deployment.metadata),
        )]),
        network_policy: if network_none {
            NetworkPolicy::None
        } else {
            NetworkPolicy::Egress
        },
        read_only_root_filesystem: true,
        endpoint_token: token.clone(),
    };
    let full = spec.hash(token);
    let hash: String = full.chars().take(HASH_CHARS).collect();
    spec.labels
        .insert(CONFIG_HASH_LABEL.to_string(), hash.clone());
    (spec, hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, EnvValue)]) -> BTreeMap<String, EnvValue> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn required_defaulted_and_secret_env() {
        let template = MCPTemplate::test("gh")
            .secret_env("TOKEN")
            .env_default("MODE", "fast", &["fast", "slow"])
            .build();
        let missing = MCPDeployment::test("x").template("gh").build();
        assert!(
            env_sources(&missing, &template)
                .unwrap_err()
                .contains("TOKEN")
        );
        let literal_secret = MCPDeployment::test("x").env("TOKEN", "oops").build();
        assert!(
            env_sources(&literal_secret, &template)
                .unwrap_err()
                .contains("secretKeyRef")
        );
        let good = MCPDeployment::test("x")
            .env_from_secret("TOKEN", "gh-token", "token")
            .build();
        let sources = env_sources(&good, &template).unwrap();
        assert_eq!(sources["MODE"], EnvSource::Literal("fast".into()));
        assert_eq!(
            sources["TOKEN"],
            EnvSource::Secret {
                name: "gh-token".into(),
                key: "token".into(),
                optional: false
            }
        );
        assert_eq!(
            referenced_secrets(&good),
            BTreeSet::from(["gh-token".to_string()])
        );
        let bad_choice = MCPDeployment::test("x")
            .env_from_secret("TOKEN", "gh-token", "token")
            .env("MODE", "turbo")
            .build();
        assert!(
            env_sources(&bad_choice, &template)
                .unwrap_err()
                .contains("one of")
        );
    }

    #[test]
    fn the_hash_follows_secret_values_and_hides_them() {
        let template = MCPTemplate::test("gh").streamable_http(8080).build();
        let deployment = MCPDeployment::test("x").build();
        let token = Secret::new("0123456789abcdef0123456789abcdef");
        let request = scheduler::Resources::new(256 * scheduler::MIB, 250, 0);
        let a = env_of(&[("TOKEN", EnvValue::Secret("one".into()))]);
        let b = env_of(&[("TOKEN", EnvValue::Secret("two".into()))]);
        let (spec_a, hash_a) = server_spec(&deployment, &template, &a, request, &token);
        let (_, hash_a_again) = server_spec(&deployment, &template, &a, request, &token);
        let (_, hash_b) = server_spec(&deployment, &template, &b, request, &token);
        assert_eq!(hash_a, hash_a_again);
        assert_ne!(hash_a, hash_b);
        assert_eq!(hash_a.len(), HASH_CHARS);
        assert_eq!(spec_a.labels[CONFIG_HASH_LABEL], hash_a);
        assert_eq!(spec_a.port, Some(8080));
        assert_eq!(spec_a.mcp_path.as_deref(), Some("/mcp"));
        assert!(!format!("{:?}", a).contains("one"));
        let other_token = Secret::new("fedcba9876543210fedcba9876543210");
        let (_, keyed) = server_spec(&deployment, &template, &a, request, &other_token);
        assert_ne!(hash_a, keyed);
    }
}
