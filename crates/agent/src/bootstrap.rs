//! The bootstrap config cloud-init writes to `/etc/mcp-droplet-agent/bootstrap.json`.

use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Where cloud-init writes the bootstrap config on a droplet.
pub const BOOTSTRAP_PATH: &str = "/etc/mcp-droplet-agent/bootstrap.json";

/// Why the bootstrap config could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The user_data is not valid cloud-config YAML.
    #[error("user_data is not valid cloud-config YAML: {0}")]
    Yaml(String),
    /// The user_data does not start with `#cloud-config`.
    #[error("user_data does not start with #cloud-config")]
    NotCloudConfig,
    /// No `write_files` entry for the bootstrap path.
    #[error("user_data has no write_files entry for {BOOTSTRAP_PATH}")]
    Missing,
    /// The bootstrap JSON is invalid.
    #[error("bootstrap config is invalid: {0}")]
    Json(String),
    /// Reading the file failed.
    #[error("cannot read bootstrap config {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// What the agent needs to start: its name, the single-use enrolment token and where to listen.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapConfig {
    /// The droplet's name (also used as the certificate's subject name).
    pub droplet_name: String,
    /// Single-use token; spent by the first successful enrolment.
    pub enrolment_token: Secret,
    /// Listen address, e.g. `0.0.0.0:9443`.
    pub listen: String,
    /// PEM of the operator's CA, reserved for mutual TLS (unused for now).
    #[serde(default, rename = "operatorCA")]
    pub operator_ca: Option<String>,
}

#[derive(Deserialize)]
struct CloudConfig {
    #[serde(default)]
    write_files: Vec<WriteFile>,
}

#[derive(Deserialize)]
struct WriteFile {
    path: String,
    #[serde(default)]
    content: String,
}

impl BootstrapConfig {
    /// Parses the bootstrap JSON.
    pub fn from_json(json: &str) -> Result<Self, BootstrapError> {
        let config: Self =
            serde_json::from_str(json).map_err(|e| BootstrapError::Json(e.to_string()))?;
        if config.droplet_name.is_empty() || config.enrolment_token.is_empty() {
            return Err(BootstrapError::Json(
                "dropletName and enrolmentToken must not be empty".into(),
            ));
        }
        Ok(config)
    }

    /// Extracts the config from the `#cloud-config` user_data the operator generated.
    pub fn from_user_data(user_data: &str) -> Result<Self, BootstrapError> {
        if !user_data.trim_start().starts_with("#cloud-config") {
            return Err(BootstrapError::NotCloudConfig);
        }
        let cloud: CloudConfig =
            serde_yaml_ng::from_str(user_data).map_err(|e| BootstrapError::Yaml(e.to_string()))?;
        let file = cloud
            .write_files
            .into_iter()
            .find(|f| f.path == BOOTSTRAP_PATH)
            .ok_or(BootstrapError::Missing)?;
        Self::from_json(&file.content)
    }

    /// Reads the config from a file on disk (the real droplet).
    pub fn from_file(path: &Path) -> Result<Self, BootstrapError> {
        let json = std::fs::read_to_string(path).map_err(|source| BootstrapError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER_DATA: &str = r#"#cloud-config
package_update: false
write_files:
  - path: /etc/other
    content: "x"
  - path: /etc/mcp-droplet-agent/bootstrap.json
    permissions: "0600"
    content: |
      {"dropletName": "d1", "enrolmentToken": "tok-123", "listen": "0.0.0.0:9443", "operatorCA": null}
runcmd:
  - [systemctl, start, mcp-droplet-agent]
"#;

    #[test]
    fn parses_user_data() {
        let c = BootstrapConfig::from_user_data(USER_DATA).unwrap();
        assert_eq!(c.droplet_name, "d1");
        assert_eq!(c.enrolment_token.expose(), "tok-123");
        assert_eq!(c.listen, "0.0.0.0:9443");
        assert_eq!(c.operator_ca, None);
    }

    #[test]
    fn rejects_other_user_data() {
        assert!(matches!(
            BootstrapConfig::from_user_data("#!/bin/sh\necho hi"),
            Err(BootstrapError::NotCloudConfig)
        ));
        assert!(matches!(
            BootstrapConfig::from_user_data("#cloud-config\nwrite_files: []\n"),
            Err(BootstrapError::Missing)
        ));
        assert!(matches!(
            BootstrapConfig::from_user_data(
                "#cloud-config\nwrite_files:\n - path: /etc/mcp-droplet-agent/bootstrap.json\n   content: '{}'\n"
            ),
            Err(BootstrapError::Json(_))
        ));
    }
}
