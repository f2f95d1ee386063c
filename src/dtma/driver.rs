//! One reconcile pass against a DTMA droplet: observe (`/tools/status`) → plan → apply → report.

use std::collections::{BTreeMap, BTreeSet};

use super::DtmaError;
use super::client::{ControlOutcome, DeployOutcome, DtmaClient, RemoveOutcome};
use super::plan::{Action, Blocker, DesiredServer, ObservedContainer, Plan, plan_keeping};
use super::wire::{ContainerOverrides, DeployToolBody, HostConfig, PortBinding, ToolInstance};

/// The note of a start whose container turned out to be gone (the next pass deploys it again).
pub const GONE_REDEPLOY_NEXT_PASS: &str = "gone; redeploy next pass";

/// What one action did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionResult {
    /// The action.
    pub action: Action,
    /// `Ok` with a short note, or the error.
    pub outcome: Result<String, DtmaError>,
}

/// The result of one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassReport {
    /// The plan computed from what the agent listed.
    pub plan: Plan,
    /// What each action did, in order.
    pub results: Vec<ActionResult>,
}

impl PassReport {
    /// True when the agent already matched the desired state (nothing done, nothing stuck).
    pub fn converged(&self) -> bool {
        self.plan.is_converged()
    }

    /// The errors of this pass.
    pub fn errors(&self) -> Vec<&DtmaError> {
        self.results
            .iter()
            .filter_map(|r| r.outcome.as_ref().err())
            .collect()
    }

    /// Containers the agent forgot and cannot remove or stop.
    pub fn orphans(&self) -> Vec<&str> {
        self.plan
            .blockers
            .iter()
            .map(|Blocker::Orphan { container, .. }| container.as_str())
            .collect()
    }
}

/// Drives one droplet's DTMA toward a set of desired servers.
#[derive(Debug, Clone)]
pub struct DtmaDriver {
    client: DtmaClient,
    prefix: String,
}

/// The agent's container list, reduced to what planning needs.
pub fn observe(instances: &[ToolInstance]) -> Vec<ObservedContainer> {
    instances
        .iter()
        .map(|instance| ObservedContainer {
            name: instance.instance_name_on_toolbox.clone(),
            image: instance.image.clone(),
            state: instance.status.clone(),
            managed: instance.account_tool_instance_id.is_some(),
            host_ports: instance
                .ports
                .iter()
                .filter_map(|p| p.public_port)
                .collect(),
        })
        .collect()
}

/// The `POST /tools` body for a server under a container name.
pub fn deploy_body(container: &str, server: &DesiredServer) -> DeployToolBody {
    let binding = PortBinding {
        host_ip: None,
        host_port: Some(server.host_port.to_string()),
    };
    DeployToolBody {
        docker_image_url: server.image.clone(),
        instance_name_on_toolbox: container.to_owned(),
        account_tool_instance_id: format!("mcp-droplet-operator:{}", server.name),
        base_config_override_json: ContainerOverrides {
            env: server.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            host_config: HostConfig {
                port_bindings: BTreeMap::from([(format!("{}/tcp", server.port), vec![binding])]),
                restart_policy: None,
            },
            // `/tools` ignores labels and exposed ports; they are not sent.
            labels: BTreeMap::new(),
            exposed_ports: BTreeMap::new(),
        },
    }
}

impl DtmaDriver {
    /// A driver naming its containers `<prefix><server>`.
    pub fn new(client: DtmaClient, prefix: impl Into<String>) -> Self {
        Self {
            client,
            prefix: prefix.into(),
        }
    }

    /// The client, for health and status calls.
    pub fn client(&self) -> &DtmaClient {
        &self.client
    }

    /// Lists, plans and applies once; fails only if the agent cannot be listed.
    pub async fn reconcile(&self, desired: &[DesiredServer]) -> Result<PassReport, DtmaError> {
        self.reconcile_keeping(desired, &BTreeSet::new()).await
    }

    /// Like [`DtmaDriver::reconcile`], leaving the containers of the servers in `kept` alone
    /// (see [`super::plan::plan_keeping`]).
    pub async fn reconcile_keeping(
        &self,
        desired: &[DesiredServer],
        kept: &BTreeSet<String>,
    ) -> Result<PassReport, DtmaError> {
        let observed = observe(&self.client.list_instances().await?);
        let plan = plan_keeping(&self.prefix, desired, kept, &observed);
        let mut results = Vec::with_capacity(plan.actions.len());
        for action in &plan.actions {
            let outcome = self.apply(action).await;
            if let Err(error) = &outcome {
                tracing::warn!(?action, %error, "DTMA action failed");
            }
            results.push(ActionResult {
                action: action.clone(),
                outcome,
            });
        }
        Ok(PassReport { plan, results })
    }

    async fn apply(&self, action: &Action) -> Result<String, DtmaError> {
        match action {
            Action::Remove { container } => {
                // Stop first so the server gets Docker's grace period; remove would kill it.
                let stopped = self.client.stop(container).await?;
                if stopped == ControlOutcome::Gone {
                    return Ok("already gone".to_owned());
                }
                Ok(match self.client.remove(container).await? {
                    RemoveOutcome::Removed => "removed".to_owned(),
                    RemoveOutcome::AlreadyGone => "already gone".to_owned(),
                })
            }
            Action::Start { container } => Ok(match self.client.start(container).await? {
                ControlOutcome::Done => "started".to_owned(),
                // Deleted behind our back; the next pass deploys it again.
                ControlOutcome::Gone => GONE_REDEPLOY_NEXT_PASS.to_owned(),
            }),
            Action::Deploy { container, server } => Ok(
                match self.client.deploy(&deploy_body(container, server)).await? {
                    DeployOutcome::Created { .. } => "deployed".to_owned(),
                    DeployOutcome::AlreadyDeployed => "already deployed".to_owned(),
                },
            ),
        }
    }
}
