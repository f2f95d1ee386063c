//! A reqwest client for the DTMA's HTTP contract (research/dtma.md §6.2), with each quirk turned
//! into a typed outcome: callers never see "500 means already stopped".

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;

use super::DtmaError;
use super::wire::{
    AgentStatus, DeployGroupBody, DeployToolBody, ErrorBody, GroupDeployData, GroupHealth,
    GroupRemoveData, ToolInstance, ToolsStatus,
};
use secrecy::{ExposeSecret, SecretString};

/// Deadline for health, status and the small control calls.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline for deploys: the agent pulls the image synchronously, with no timeout of its own.
pub const DEPLOY_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// What `deploy` achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployOutcome {
    /// A new container was created and started.
    Created {
        /// Docker id.
        container_id: String,
    },
    /// The name already existed with the same image (a repeated call, or after an agent restart).
    AlreadyDeployed,
}

/// What `start` or `stop` achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlOutcome {
    /// Done (or it already was in that state).
    Done,
    /// The container no longer exists on the host.
    Gone,
}

/// What `remove` achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveOutcome {
    /// Removed now.
    Removed,
    /// It was already gone.
    AlreadyGone,
}

/// Client for one droplet's DTMA.
#[derive(Debug, Clone)]
pub struct DtmaClient {
    http: reqwest::Client,
    base: Url,
    token: SecretString,
}

struct Answer {
    status: StatusCode,
    body: String,
}

impl Answer {
    fn error_body(&self) -> ErrorBody {
        serde_json::from_str(&self.body).unwrap_or_default()
    }

    fn error_text(&self) -> String {
        let text = self.error_body().text();
        if text.is_empty() {
            self.body.chars().take(200).collect()
        } else {
            text
        }
    }
}

impl DtmaClient {
    /// A client for the agent at `base_url` (usually `http://<ip>:30000`).
    pub fn new(base_url: &str, token: SecretString) -> Result<Self, DtmaError> {
        let base = Url::parse(base_url.trim_end_matches('/'))
            .map_err(|e| DtmaError::InvalidBaseUrl(format!("{base_url}: {e}")))?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONTROL_TIMEOUT)
            .build()
            .map_err(|e| DtmaError::Http(e.to_string()))?;
        Ok(Self { http, base, token })
    }

    /// The agent's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    fn url(&self, path: &str) -> Result<Url, DtmaError> {
        self.base
            .join(path)
            .map_err(|e| DtmaError::InvalidBaseUrl(format!("{path}: {e}")))
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        timeout: Duration,
    ) -> Result<Answer, DtmaError> {
        // The token goes on every call, even open ones: harmless, and right if auth is added.
        let mut request = self
            .http
            .request(method, self.url(path)?)
            .bearer_auth(self.token.expose_secret())
            .timeout(timeout);
        if let Some(body) = body {
            // `.json` sets Content-Type: without it the agent sees an empty body and says 400.
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| DtmaError::Http(e.to_string()))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| DtmaError::Http(e.to_string()))?;
        let answer = Answer { status, body };
        match status.as_u16() {
            401 | 403 => Err(DtmaError::Unauthorized {
                status: status.as_u16(),
            }),
            500 if answer.error_text().contains("DTMA configuration error") => {
                Err(DtmaError::AgentMisconfigured)
            }
            _ => Ok(answer),
        }
    }

    fn decode<T: DeserializeOwned>(answer: &Answer, what: &str) -> Result<T, DtmaError> {
        serde_json::from_str(&answer.body).map_err(|e| DtmaError::Decode(format!("{what}: {e}")))
    }

    fn unexpected(answer: &Answer, what: &str) -> DtmaError {
        DtmaError::Api {
            call: what.to_owned(),
            status: answer.status.as_u16(),
            message: answer.error_text(),
        }
    }

    /// `GET /health`: liveness only (plain text `OK`).
    pub async fn health(&self) -> Result<(), DtmaError> {
        let answer = self
            .call(Method::GET, "/health", None, CONTROL_TIMEOUT)
            .await?;
        if answer.status.is_success() {
            Ok(())
        } else {
            Err(Self::unexpected(&answer, "health"))
        }
    }

    /// `GET /status`: version and host metrics.
    pub async fn status(&self) -> Result<AgentStatus, DtmaError> {
        let answer = self
            .call(Method::GET, "/status", None, CONTROL_TIMEOUT)
            .await?;
        if !answer.status.is_success() {
            return Err(Self::unexpected(&answer, "status"));
        }
        Self::decode(&answer, "status")
    }

    /// `GET /tools/status`: every container on the host; the source of truth for reconciling.
    pub async fn list_instances(&self) -> Result<Vec<ToolInstance>, DtmaError> {
        let answer = self
            .call(Method::GET, "/tools/status", None, CONTROL_TIMEOUT)
            .await?;
        if !answer.status.is_success() {
            return Err(Self::unexpected(&answer, "list instances"));
        }
        Ok(Self::decode::<ToolsStatus>(&answer, "list instances")?.tool_instances)
    }

    async fn listed(&self, name: &str) -> Result<Option<ToolInstance>, DtmaError> {
        Ok(self
            .list_instances()
            .await?
            .into_iter()
            .find(|instance| instance.instance_name_on_toolbox == name))
    }

    /// `POST /tools`: pull, create and start; a name conflict with the same image is success.
    pub async fn deploy(&self, body: &DeployToolBody) -> Result<DeployOutcome, DtmaError> {
        let json = serde_json::to_value(body).map_err(|e| DtmaError::Decode(e.to_string()))?;
        let answer = self
            .call(Method::POST, "/tools", Some(json), DEPLOY_TIMEOUT)
            .await?;
        if answer.status == StatusCode::CREATED || answer.status.is_success() {
            let value: serde_json::Value = Self::decode(&answer, "deploy")?;
            let container_id = value["data"]["container_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            return Ok(DeployOutcome::Created { container_id });
        }
        let text = answer.error_text();
        // 409 from DTMA's memory, or Docker's conflict (as a 500) for a name only the host knows.
        let conflict = answer.status == StatusCode::CONFLICT
            || (answer.status == StatusCode::INTERNAL_SERVER_ERROR
                && (text.contains("Conflict") || text.contains("already in use")));
        if !conflict {
            return Err(Self::unexpected(&answer, "deploy"));
        }
        match self.listed(&body.instance_name_on_toolbox).await? {
            Some(existing) if existing.image == body.docker_image_url => {
                Ok(DeployOutcome::AlreadyDeployed)
            }
            None if text.contains("already exists") => Err(DtmaError::GhostEntry {
                name: body.instance_name_on_toolbox.clone(),
            }),
            _ => Err(DtmaError::Conflict {
                name: body.instance_name_on_toolbox.clone(),
                message: text,
            }),
        }
    }

    /// `POST /tools/{name}/start`; "already running" is success.
    pub async fn start(&self, name: &str) -> Result<ControlOutcome, DtmaError> {
        let answer = self
            .call(
                Method::POST,
                &format!("/tools/{}/start", segment(name)),
                None,
                CONTROL_TIMEOUT,
            )
            .await?;
        match answer.status.as_u16() {
            200..=299 => Ok(ControlOutcome::Done),
            404 => self.not_in_memory(name).await,
            500 if answer.error_text().contains("no such container") => Ok(ControlOutcome::Gone),
            _ => Err(Self::unexpected(&answer, "start")),
        }
    }

    /// `POST /tools/{name}/stop`; Docker's 304 (passed on as a 500) means already stopped.
    pub async fn stop(&self, name: &str) -> Result<ControlOutcome, DtmaError> {
        let answer = self
            .call(
                Method::POST,
                &format!("/tools/{}/stop", segment(name)),
                // Docker's grace period is 10 s; leave room for it.
                None,
                CONTROL_TIMEOUT + Duration::from_secs(15),
            )
            .await?;
        match answer.status.as_u16() {
            200..=299 => Ok(ControlOutcome::Done),
            500 => {
                let text = answer.error_text();
                if text.contains("304") || text.contains("already stopped") {
                    Ok(ControlOutcome::Done)
                } else if text.contains("no such container") {
                    Ok(ControlOutcome::Gone)
                } else {
                    Err(Self::unexpected(&answer, "stop"))
                }
            }
            404 => self.not_in_memory(name).await,
            _ => Err(Self::unexpected(&answer, "stop")),
        }
    }

    /// A 404 from start/stop: gone from the host, or only forgotten by a restarted agent.
    async fn not_in_memory(&self, name: &str) -> Result<ControlOutcome, DtmaError> {
        match self.listed(name).await? {
            None => Ok(ControlOutcome::Gone),
            Some(_) => Err(DtmaError::AgentForgot {
                name: name.to_owned(),
            }),
        }
    }

    /// `DELETE /tools/{name}`; a 404 is success only if the host no longer lists the name.
    pub async fn remove(&self, name: &str) -> Result<RemoveOutcome, DtmaError> {
        let answer = self
            .call(
                Method::DELETE,
                &format!("/tools/{}", segment(name)),
                None,
                CONTROL_TIMEOUT + Duration::from_secs(15),
            )
            .await?;
        match answer.status.as_u16() {
            200..=299 => Ok(RemoveOutcome::Removed),
            404 => match self.listed(name).await? {
                None => Ok(RemoveOutcome::AlreadyGone),
                Some(_) => Err(DtmaError::Orphaned {
                    name: name.to_owned(),
                }),
            },
            500 if answer.error_text().contains("no such container") => {
                Err(DtmaError::GhostEntry {
                    name: name.to_owned(),
                })
            }
            _ => Err(Self::unexpected(&answer, "remove")),
        }
    }

    /// `POST /mcp/groups`; the 201 is not trusted: per-server errors become an error here.
    pub async fn deploy_mcp_group(&self, body: &DeployGroupBody) -> Result<Vec<String>, DtmaError> {
        let json = serde_json::to_value(body).map_err(|e| DtmaError::Decode(e.to_string()))?;
        let answer = self
            .call(Method::POST, "/mcp/groups", Some(json), DEPLOY_TIMEOUT)
            .await?;
        if !answer.status.is_success() {
            return Err(Self::unexpected(&answer, "deploy group"));
        }
        let value: serde_json::Value = Self::decode(&answer, "deploy group")?;
        let data: GroupDeployData = serde_json::from_value(value["data"].clone())
            .map_err(|e| DtmaError::Decode(format!("deploy group: {e}")))?;
        if data.errors.is_empty() {
            Ok(data.deployed_servers)
        } else {
            Err(DtmaError::GroupMembersFailed {
                group: body.group_id.clone(),
                errors: data.errors,
            })
        }
    }

    /// `DELETE /mcp/groups/{g}?forceRemove=true`; an unknown group (a 500 at HEAD) is gone.
    pub async fn remove_mcp_group(&self, group: &str) -> Result<RemoveOutcome, DtmaError> {
        let answer = self
            .call(
                Method::DELETE,
                &format!("/mcp/groups/{}?forceRemove=true", segment(group)),
                None,
                CONTROL_TIMEOUT + Duration::from_secs(30),
            )
            .await?;
        match answer.status.as_u16() {
            200..=299 => {
                let value: serde_json::Value = Self::decode(&answer, "remove group")?;
                let data: GroupRemoveData =
                    serde_json::from_value(value["data"].clone()).unwrap_or_default();
                if data.errors.is_empty() {
                    Ok(RemoveOutcome::Removed)
                } else {
                    Err(DtmaError::GroupMembersFailed {
                        group: group.to_owned(),
                        errors: data.errors,
                    })
                }
            }
            404 => Ok(RemoveOutcome::AlreadyGone),
            500 if answer.error_text().contains("not found") => Ok(RemoveOutcome::AlreadyGone),
            _ => Err(Self::unexpected(&answer, "remove group")),
        }
    }

    /// `GET /mcp/health/{g}`: member states, `None` when the agent does not know the group.
    pub async fn mcp_group_health(&self, group: &str) -> Result<Option<GroupHealth>, DtmaError> {
        let answer = self
            .call(
                Method::GET,
                &format!("/mcp/health/{}", segment(group)),
                None,
                CONTROL_TIMEOUT,
            )
            .await?;
        match answer.status.as_u16() {
            200..=299 => {
                let value: serde_json::Value = Self::decode(&answer, "group health")?;
                serde_json::from_value(value["data"]["health"].clone())
                    .map(Some)
                    .map_err(|e| DtmaError::Decode(format!("group health: {e}")))
            }
            404 => Ok(None),
            _ => Err(Self::unexpected(&answer, "group health")),
        }
    }
}

/// Percent-encodes a path segment (names are Docker names, but never trust that).
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Group errors keyed by member, for messages.
pub fn describe_errors(errors: &BTreeMap<String, String>) -> String {
    errors
        .iter()
        .map(|(name, error)| format!("{name}: {error}"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_escaped() {
        assert_eq!(segment("mcp-github.2"), "mcp-github.2");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }
}
