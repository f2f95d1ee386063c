//! Talking to a droplet's agent for the Droplet controller: enrolment (the credential stored in
//! the Droplet's credential Secret before the POST), health polls with a utilization sample
//! when the heartbeat refresh is due, and the DTMA equivalent through `crate::dtma`.
//!
//! Every outcome the plan needs is an [`AgentObservation`]; only Kubernetes failures (reading a
//! Secret) are errors. Each call runs under a deadline ([`super::AGENT_PASS_DEADLINE`]).

use std::time::Instant;

use k8s_openapi::api::core::v1::Secret as SecretObject;
use kube::{Api, ResourceExt};
use mcp_droplet_agent::secret::Secret;
use secrecy::ExposeSecret;

use super::plan::{self, AgentFacts, AgentObservation, CloudFacts, PlanTiming};
use super::{
    AGENT_PASS_DEADLINE, ENROLMENT_TOKEN_KEY, enrolment_token_secret_name, read_secret_key,
};
use crate::agent_client::{AgentClient, AgentClientError, EnrolmentError, enroll};
use crate::api::droplet::{AgentKind, Droplet};
use crate::controller::agent_access::{
    AgentNotReachable, CREDENTIAL_KEY, SecretCredentialStore, credential_secret_name,
};
use crate::controller::{Context, Error};
use crate::dtma::{DtmaClient, DtmaError};

/// DTMA's port when `spec.agent.port` is not set.
pub const DTMA_DEFAULT_PORT: i32 = 30000;

/// Our agent's port when neither `spec.agent.port` nor the bootstrap's listen address says.
pub const AGENT_DEFAULT_PORT: i32 = 9443;

/// The agent's API endpoint on `ip`: `https://ip:port` for ours, `http://ip:port` for DTMA.
pub fn agent_endpoint(droplet: &Droplet, ip: &str, bootstrap_listen: &str) -> String {
    match droplet.spec.agent.kind {
        AgentKind::McpDropletAgent => {
            let port = droplet.spec.agent.port.unwrap_or_else(|| {
                bootstrap_listen
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(AGENT_DEFAULT_PORT)
            });
            format!("https://{ip}:{port}")
        }
        AgentKind::Dtma => {
            let port = droplet.spec.agent.port.unwrap_or(DTMA_DEFAULT_PORT);
            format!("http://{ip}:{port}")
        }
    }
}

fn timing(ctx: &Context) -> PlanTiming {
    super::timing_of(ctx)
}

/// Enrols with or polls the droplet's agent. `cloud` is what this pass saw at DigitalOcean (its
/// address wins over the one in status).
pub async fn contact(
    ctx: &Context,
    droplet: &Droplet,
    cloud: Option<&CloudFacts>,
) -> Result<AgentObservation, Error> {
    let status = droplet.status.as_ref();
    let ip = cloud
        .and_then(|c| c.public_ipv4.clone())
        .or_else(|| status.and_then(|s| s.public_ipv4.clone()));
    let Some(ip) = ip else {
        return Ok(AgentObservation::Unreachable {
            message: "the droplet has no public address yet".into(),
        });
    };
    let endpoint = agent_endpoint(droplet, &ip, &ctx.config.bootstrap.listen);
    let refresh = plan::heartbeat_due(status, ctx.now(), &timing(ctx));
    let started = Instant::now();
    let outcome = match droplet.spec.agent.kind {
        AgentKind::McpDropletAgent => {
            let call = async {
                if plan::is_enrolled(&droplet.spec, status)
                    && status
                        .and_then(|s| s.agent.as_ref())
                        .and_then(|a| a.endpoint.as_deref())
                        == Some(endpoint.as_str())
                {
                    poll(ctx, droplet, &endpoint, refresh).await
                } else {
                    enrol(ctx, droplet, &endpoint).await
                }
            };
            deadline(call).await
        }
        AgentKind::Dtma => deadline(poll_dtma(ctx, droplet, &endpoint)).await,
    };
    ctx.metrics
        .agent_call("droplet_contact", started.elapsed().as_secs_f64());
    outcome
}

async fn deadline(
    call: impl Future<Output = Result<AgentObservation, Error>>,
) -> Result<AgentObservation, Error> {
    match tokio::time::timeout(AGENT_PASS_DEADLINE, call).await {
        Ok(outcome) => outcome,
        Err(_) => Ok(AgentObservation::Unreachable {
            message: format!("no answer within {}s", AGENT_PASS_DEADLINE.as_secs()),
        }),
    }
}

fn secrets(ctx: &Context, droplet: &Droplet) -> Api<SecretObject> {
    Api::namespaced(ctx.client.clone(), &droplet.namespace().unwrap_or_default())
}

/// Enrols: the token from the enrolment-token Secret (ours, or the adopter's); the credential
/// saved in the credential Secret before the POST by `agent_client::enroll`.
async fn enrol(
    ctx: &Context,
    droplet: &Droplet,
    endpoint: &str,
) -> Result<AgentObservation, Error> {
    let name = droplet.name_any();
    let secrets = secrets(ctx, droplet);
    let token_name = enrolment_token_secret_name(&name);
    let token = read_secret_key(&secrets, &token_name, ENROLMENT_TOKEN_KEY).await?;
    let credential_known =
        read_secret_key(&secrets, &credential_secret_name(&name), CREDENTIAL_KEY)
            .await?
            .is_some();
    let token = match token {
        Some(token) => Secret::new(token.expose_secret()),
        // An adopted agent already enrolled by someone else: the stored credential is proved
        // (the agent answers 409 to any token, then the credential must be accepted).
        None if credential_known => Secret::new("spent"),
        None => {
            return Ok(AgentObservation::SecretMissing { name: token_name });
        }
    };
    let store = SecretCredentialStore::new(ctx.client.clone(), droplet)?;
    match enroll(endpoint, &token, &store, ctx.config.agent.clone()).await {
        Ok(enrolment) => {
            tracing::info!(droplet = %name, version = %enrolment.agent_version, "enrolled with the agent");
            let utilization = match store_credential(&store).await? {
                Some(credential) => {
                    match AgentClient::new(
                        endpoint,
                        &enrolment.certificate_sha256,
                        credential,
                        ctx.config.agent.clone(),
                    ) {
                        Ok(client) => sample(&client).await,
                        Err(_) => None,
                    }
                }
                None => None,
            };
            Ok(AgentObservation::Answered(AgentFacts {
                version: Some(enrolment.agent_version),
                certificate_fingerprint: Some(enrolment.certificate_sha256),
                endpoint: endpoint.to_string(),
                utilization,
            }))
        }
        Err(EnrolmentError::AlreadyEnrolled { .. }) => Ok(AgentObservation::Refused {
            message: "the agent is already enrolled and does not accept the stored credential; \
                      replace the droplet, or put its credential in the agent-credential Secret"
                .into(),
        }),
        Err(EnrolmentError::Agent(e)) => Ok(agent_failure(&e)),
        // The Secret could not be read or written (a Kubernetes error): retried with backoff.
        Err(error @ EnrolmentError::CredentialStore(_)) => Err(error.into()),
    }
}

async fn store_credential(store: &SecretCredentialStore) -> Result<Option<Secret>, Error> {
    use crate::agent_client::CredentialStore;
    store
        .load()
        .await
        .map_err(|e| EnrolmentError::CredentialStore(e).into())
}

/// Polls an enrolled agent: `/healthz`, and when the heartbeat refresh is due `/v1/info` and
/// `/metrics` for the version and a utilization sample.
async fn poll(
    ctx: &Context,
    droplet: &Droplet,
    endpoint: &str,
    refresh: bool,
) -> Result<AgentObservation, Error> {
    let client = match ctx
        .agents
        .for_droplet(&ctx.client, droplet, &ctx.config.agent)
        .await?
    {
        Ok(client) => client,
        Err(AgentNotReachable::NoCredential) => {
            return Ok(AgentObservation::SecretMissing {
                name: credential_secret_name(&droplet.name_any()),
            });
        }
        Err(AgentNotReachable::NotEnrolled) => {
            return enrol(ctx, droplet, endpoint).await;
        }
    };
    if let Err(e) = client.healthz().await {
        return Ok(agent_failure(&e));
    }
    let status_agent = droplet.status.as_ref().and_then(|s| s.agent.as_ref());
    let mut version = status_agent.and_then(|a| a.version.clone());
    let mut utilization = None;
    if refresh || version.is_none() {
        match client.info().await {
            Ok(info) => version = Some(info.version),
            Err(e) => return Ok(agent_failure(&e)),
        }
        utilization = sample(&client).await;
    }
    Ok(AgentObservation::Answered(AgentFacts {
        version,
        certificate_fingerprint: Some(client.fingerprint().to_string()),
        endpoint: endpoint.to_string(),
        utilization,
    }))
}

async fn sample(client: &AgentClient) -> Option<plan::UtilizationSample> {
    let text = client.metrics().await.ok()?;
    plan::utilization_from_metrics(&text)
}

fn agent_failure(error: &AgentClientError) -> AgentObservation {
    match error {
        AgentClientError::Status { status: 401, .. }
        | AgentClientError::Status { status: 403, .. }
        | AgentClientError::FingerprintMismatch { .. } => AgentObservation::Refused {
            message: error.to_string(),
        },
        _ => AgentObservation::Unreachable {
            message: error.to_string(),
        },
    }
}

/// Polls a DTMA agent: `/health`, then `/tools/status` (authenticated: proves the token),
/// then `/status` for the version. The token is the `credential` key of the droplet's
/// agent-credential Secret, which the person adopting the droplet creates.
async fn poll_dtma(
    ctx: &Context,
    droplet: &Droplet,
    endpoint: &str,
) -> Result<AgentObservation, Error> {
    let secrets = secrets(ctx, droplet);
    let secret_name = credential_secret_name(&droplet.name_any());
    let Some(token) = read_secret_key(&secrets, &secret_name, CREDENTIAL_KEY).await? else {
        return Ok(AgentObservation::SecretMissing { name: secret_name });
    };
    let client = match DtmaClient::new(endpoint, token) {
        Ok(client) => client,
        Err(e) => {
            return Ok(AgentObservation::Refused {
                message: e.to_string(),
            });
        }
    };
    let dtma_failure = |e: DtmaError| match e {
        DtmaError::Unauthorized { .. } | DtmaError::AgentMisconfigured => {
            AgentObservation::Refused {
                message: e.to_string(),
            }
        }
        other => AgentObservation::Unreachable {
            message: other.to_string(),
        },
    };
    if let Err(e) = client.health().await {
        return Ok(dtma_failure(e));
    }
    if let Err(e) = client.list_instances().await {
        return Ok(dtma_failure(e));
    }
    let version = client.status().await.ok().and_then(|s| s.version);
    Ok(AgentObservation::Answered(AgentFacts {
        version,
        certificate_fingerprint: None,
        endpoint: endpoint.to_string(),
        utilization: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::droplet::{AgentSpec, DropletSpec};

    fn droplet(kind: AgentKind, port: Option<i32>) -> Droplet {
        Droplet::new(
            "d1",
            DropletSpec {
                agent: AgentSpec { kind, port },
                ..DropletSpec::default()
            },
        )
    }

    #[test]
    fn endpoints_follow_the_agent_kind_and_port() {
        let ours = droplet(AgentKind::McpDropletAgent, None);
        assert_eq!(
            agent_endpoint(&ours, "203.0.113.7", "0.0.0.0:9443"),
            "https://203.0.113.7:9443"
        );
        assert_eq!(
            agent_endpoint(&ours, "203.0.113.7", "0.0.0.0:8443"),
            "https://203.0.113.7:8443"
        );
        let pinned = droplet(AgentKind::McpDropletAgent, Some(7443));
        assert_eq!(
            agent_endpoint(&pinned, "203.0.113.7", "0.0.0.0:9443"),
            "https://203.0.113.7:7443"
        );
        let dtma = droplet(AgentKind::Dtma, None);
        assert_eq!(
            agent_endpoint(&dtma, "203.0.113.7", "0.0.0.0:9443"),
            "http://203.0.113.7:30000"
        );
    }
}
