//! The droplet's cloud-init `user_data`: installs Docker and the droplet agent, writes the
//! agent's bootstrap file and blocks containers from the metadata service.
//!
//! `user_data` is readable from the droplet's metadata service, so it carries no long-lived
//! secret: only a single-use enrolment token, which the agent trades for its credentials.
//! Contract with the agent: `/etc/mcp-droplet-agent/bootstrap.json` (mode 0600) containing
//! `{"dropletName", "enrolmentToken", "listen", "operatorCA"}`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::json;

/// Where the agent reads its bootstrap settings.
pub const BOOTSTRAP_PATH: &str = "/etc/mcp-droplet-agent/bootstrap.json";

/// The agent's default listen address on the droplet.
pub const DEFAULT_AGENT_LISTEN: &str = "0.0.0.0:9443";

/// DigitalOcean's metadata service address, which containers must not reach.
pub const METADATA_ADDRESS: &str = "169.254.169.254";

/// DigitalOcean's `user_data` size limit.
pub const USER_DATA_LIMIT: usize = 64 * 1024;

/// A single-use enrolment token (32 random bytes, base64url), kept as a
/// [`SecretString`]: its `Debug` is redacted and it is zeroized on drop.
pub type EnrolmentToken = SecretString;

/// Draws a new enrolment token from `rng` (inject a seeded generator in tests).
pub fn new_enrolment_token(rng: &mut impl RngCore) -> EnrolmentToken {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(bytes.as_mut());
    SecretString::from(URL_SAFE_NO_PAD.encode(bytes.as_ref()))
}

/// Where the agent comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentSource {
    /// A static binary downloaded over HTTPS, optionally checked against a SHA-256.
    ReleaseUrl {
        /// The download URL.
        url: String,
        /// Lower-case hex SHA-256 of the binary.
        sha256: Option<String>,
    },
    /// A container image run with host networking.
    Image {
        /// The image reference.
        image: String,
    },
}

/// Settings of the generated cloud-init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapConfig {
    /// How to install the agent.
    pub agent: AgentSource,
    /// The agent's listen address.
    pub listen: String,
    /// PEM of the operator's CA, when the agent must pin it.
    pub operator_ca: Option<String>,
    /// Extra arguments for the agent binary (after the program name).
    pub agent_args: Vec<String>,
}

impl BootstrapConfig {
    /// Installs the agent from `url` with default settings.
    pub fn from_release_url(url: impl Into<String>) -> Self {
        Self {
            agent: AgentSource::ReleaseUrl {
                url: url.into(),
                sha256: None,
            },
            listen: DEFAULT_AGENT_LISTEN.to_owned(),
            operator_ca: None,
            agent_args: Vec::new(),
        }
    }
}

/// Why `user_data` could not be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootstrapError {
    /// A value would need characters we refuse to embed in a shell script.
    #[error("{field} contains characters that are not allowed: {value:?}")]
    UnsafeValue {
        /// Which setting.
        field: &'static str,
        /// The offending value (never a secret).
        value: String,
    },
    /// The result is larger than DigitalOcean accepts.
    #[error("user_data is {0} bytes, above DigitalOcean's 64 KiB limit")]
    TooLarge(usize),
    /// Serialisation failed.
    #[error("cannot render cloud-config: {0}")]
    Render(String),
}

/// The JSON the agent reads from [`BOOTSTRAP_PATH`] (no Debug: it holds the enrolment token).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BootstrapFile<'a> {
    droplet_name: &'a str,
    enrolment_token: &'a str,
    listen: &'a str,
    #[serde(rename = "operatorCA")]
    operator_ca: Option<&'a str>,
}

/// The script that keeps containers away from the metadata service (idempotent).
pub fn metadata_block_script() -> String {
    format!(
        r#"#!/bin/sh
# Containers must not reach the metadata service: it serves user_data, which holds the
# enrolment token. DOCKER-USER is evaluated before Docker's own forwarding rules.
set -eu
iptables -N DOCKER-USER 2>/dev/null || true
if ! iptables -C DOCKER-USER -d {METADATA_ADDRESS}/32 -j DROP 2>/dev/null; then
    iptables -I DOCKER-USER 1 -d {METADATA_ADDRESS}/32 -j DROP
fi
"#
    )
}

fn safe(field: &'static str, value: &str, extra: &[char]) -> Result<(), BootstrapError> {
    let ok = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._/:@+=%~".contains(c) || extra.contains(&c));
    if ok {
        Ok(())
    } else {
        Err(BootstrapError::UnsafeValue {
            field,
            value: value.to_owned(),
        })
    }
}

/// The script that installs the agent binary or pulls its image.
pub fn agent_install_script(agent: &AgentSource) -> Result<String, BootstrapError> {
    match agent {
        AgentSource::ReleaseUrl { url, sha256 } => {
            safe("agent release URL", url, &['?', '&'])?;
            if !url.starts_with("https://") && !url.starts_with("http://") {
                return Err(BootstrapError::UnsafeValue {
                    field: "agent release URL",
                    value: url.clone(),
                });
            }
            let check = match sha256 {
                Some(sum) => {
                    if sum.len() != 64 || !sum.chars().all(|c| c.is_ascii_hexdigit()) {
                        return Err(BootstrapError::UnsafeValue {
                            field: "agent sha256",
                            value: sum.clone(),
                        });
                    }
                    format!("echo '{sum}  '\"$tmp\" | sha256sum -c -\n")
                }
                None => String::new(),
            };
            Ok(format!(
                r#"#!/bin/sh
# Installs the droplet agent binary.
set -eu
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
curl -fsSL --retry 5 --retry-delay 2 -o "$tmp" '{url}'
{check}install -m 0755 "$tmp" /usr/local/bin/mcp-droplet-agent
"#
            ))
        }
        AgentSource::Image { image } => {
            safe("agent image", image, &[])?;
            Ok(format!(
                r#"#!/bin/sh
# Pulls the droplet agent image.
set -eu
docker pull '{image}'
"#
            ))
        }
    }
}

fn agent_unit(config: &BootstrapConfig) -> Result<String, BootstrapError> {
    for arg in &config.agent_args {
        safe("agent argument", arg, &[])?;
    }
    let args = config.agent_args.join(" ");
    let exec = match &config.agent {
        AgentSource::ReleaseUrl { .. } => format!("/usr/local/bin/mcp-droplet-agent {args}"),
        // The image runs as uid 65532 by default (Dockerfile); on a droplet the agent reads the
        // root-only bootstrap file and drives the Docker Engine, so it runs as root there, like
        // the binary the unit starts directly.
        AgentSource::Image { image } => format!(
            "/usr/bin/docker run --rm --name mcp-droplet-agent --network host --user 0:0 \
             -v /etc/mcp-droplet-agent:/etc/mcp-droplet-agent \
             -v /var/lib/mcp-droplet-agent:/var/lib/mcp-droplet-agent \
             -v /var/run/docker.sock:/var/run/docker.sock \
             -e MCP_DROPLET_AGENT_BOOTSTRAP={BOOTSTRAP_PATH} {image} {args}"
        ),
    };
    Ok(format!(
        "[Unit]\nDescription=MCP droplet agent\nAfter=docker.service mcp-block-metadata.service\n\
         Requires=docker.service\n\n[Service]\nEnvironment=MCP_DROPLET_AGENT_BOOTSTRAP={BOOTSTRAP_PATH}\n\
         ExecStart={}\nRestart=always\nRestartSec=5\n\n[Install]\nWantedBy=multi-user.target\n",
        exec.trim_end()
    ))
}

const BLOCK_UNIT: &str = "[Unit]\nDescription=Block containers from the metadata service\n\
After=docker.service\nRequires=docker.service\n\n[Service]\nType=oneshot\n\
ExecStart=/usr/local/sbin/mcp-block-metadata\nRemainAfterExit=yes\n\n[Install]\nWantedBy=multi-user.target\n";

/// Generates the `#cloud-config` user data for one droplet.
pub fn render_user_data(
    droplet_name: &str,
    token: &EnrolmentToken,
    config: &BootstrapConfig,
) -> Result<String, BootstrapError> {
    safe("listen address", &config.listen, &[])?;
    let bootstrap = BootstrapFile {
        droplet_name,
        enrolment_token: token.expose_secret(),
        listen: &config.listen,
        operator_ca: config.operator_ca.as_deref(),
    };
    let bootstrap_json =
        serde_json::to_string(&bootstrap).map_err(|e| BootstrapError::Render(e.to_string()))?;
    let document = json!({
        "package_update": true,
        "packages": ["docker.io", "iptables", "curl", "ca-certificates"],
        "write_files": [
            {
                "path": BOOTSTRAP_PATH,
                "permissions": "0600",
                "owner": "root:root",
                "content": bootstrap_json,
            },
            {
                "path": "/usr/local/sbin/mcp-block-metadata",
                "permissions": "0755",
                "content": metadata_block_script(),
            },
            {
                "path": "/usr/local/sbin/mcp-install-agent",
                "permissions": "0755",
                "content": agent_install_script(&config.agent)?,
            },
            {
                "path": "/etc/systemd/system/mcp-block-metadata.service",
                "permissions": "0644",
                "content": BLOCK_UNIT,
            },
            {
                "path": "/etc/systemd/system/mcp-droplet-agent.service",
                "permissions": "0644",
                "content": agent_unit(config)?,
            },
        ],
        "runcmd": [
            ["systemctl", "enable", "--now", "docker"],
            ["/usr/local/sbin/mcp-block-metadata"],
            ["/usr/local/sbin/mcp-install-agent"],
            ["systemctl", "daemon-reload"],
            ["systemctl", "enable", "--now", "mcp-block-metadata.service", "mcp-droplet-agent.service"],
        ],
    });
    let yaml =
        serde_yaml_ng::to_string(&document).map_err(|e| BootstrapError::Render(e.to_string()))?;
    let user_data = format!("#cloud-config\n{yaml}");
    if user_data.len() > USER_DATA_LIMIT {
        return Err(BootstrapError::TooLarge(user_data.len()));
    }
    Ok(user_data)
}

/// The shell scripts embedded in the user data, for linting (`shellcheck`).
pub fn embedded_scripts(config: &BootstrapConfig) -> Result<Vec<String>, BootstrapError> {
    Ok(vec![
        metadata_block_script(),
        agent_install_script(&config.agent)?,
    ])
}

/// Reads the bootstrap file back out of generated user data (what the simulated world's agent
/// does instead of running cloud-init).
pub fn bootstrap_json_from_user_data(user_data: &str) -> Option<serde_json::Value> {
    let document: serde_json::Value = serde_yaml_ng::from_str(user_data).ok()?;
    document
        .get("write_files")?
        .as_array()?
        .iter()
        .find(|f| f.get("path").and_then(|p| p.as_str()) == Some(BOOTSTRAP_PATH))
        .and_then(|f| f.get("content")?.as_str())
        .and_then(|c| serde_json::from_str(c).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn token() -> EnrolmentToken {
        new_enrolment_token(&mut StdRng::seed_from_u64(1))
    }

    #[test]
    fn token_is_32_bytes_base64url_and_hidden() {
        let t = token();
        assert_eq!(t.expose_secret().len(), 43);
        assert!(
            t.expose_secret()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert!(!format!("{t:?}").contains(t.expose_secret()));
        assert_ne!(
            t.expose_secret(),
            new_enrolment_token(&mut StdRng::seed_from_u64(2)).expose_secret(),
            "different draws differ"
        );
    }

    #[test]
    fn user_data_carries_the_bootstrap_contract() {
        let config = BootstrapConfig::from_release_url("https://example.invalid/agent");
        let user_data = render_user_data("mcp-a-b-12345678", &token(), &config).expect("render");
        assert!(user_data.starts_with("#cloud-config\n"));
        let bootstrap = bootstrap_json_from_user_data(&user_data).expect("bootstrap file");
        assert_eq!(
            bootstrap,
            json!({
                "dropletName": "mcp-a-b-12345678",
                "enrolmentToken": token().expose_secret(),
                "listen": "0.0.0.0:9443",
                "operatorCA": null,
            })
        );
        let document: serde_json::Value = serde_yaml_ng::from_str(&user_data).expect("yaml");
        let file = &document["write_files"][0];
        assert_eq!(file["path"], BOOTSTRAP_PATH);
        assert_eq!(file["permissions"], "0600");
        assert!(user_data.contains("DOCKER-USER -d 169.254.169.254/32 -j DROP"));
    }

    #[test]
    fn release_binary_is_checked_against_its_sha256() {
        let sum = "0123456789abcdef".repeat(4);
        let script = agent_install_script(&AgentSource::ReleaseUrl {
            url: "https://example.invalid/mcp-droplet-agent-x86_64-linux".to_owned(),
            sha256: Some(sum.clone()),
        })
        .expect("script");
        let check = script.find("sha256sum -c").expect("checksum verified");
        let install = script.find("install -m 0755").expect("installed");
        assert!(check < install, "verified before it is installed");
        assert!(script.contains(&sum));
    }

    #[test]
    fn agent_image_runs_as_root_on_the_droplet() {
        let config = BootstrapConfig {
            agent: AgentSource::Image {
                image: "ghcr.io/agentopia/mcp-droplet-agent:0.1.0".to_owned(),
            },
            ..BootstrapConfig::from_release_url("unused")
        };
        let unit = agent_unit(&config).expect("unit");
        assert!(unit.contains("--user 0:0"), "{unit}");
    }

    #[test]
    fn unsafe_values_are_refused() {
        let config = BootstrapConfig::from_release_url("https://x/agent'; rm -rf /");
        assert!(matches!(
            render_user_data("d", &token(), &config),
            Err(BootstrapError::UnsafeValue { .. })
        ));
    }
}
