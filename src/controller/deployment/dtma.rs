//! The deployment controller's path for DTMA droplets (decision 0023).
//!
//! DTMA is driven a whole droplet at a time (it forgets what it runs when it restarts, so the
//! driver plans from its container list), so a pass for a deployment placed on a DTMA droplet
//! computes the desired set of every deployment placed there from the caches, runs the driver
//! under the droplet's lock, and reads the outcome for its own server. A deployment whose
//! server cannot be computed this pass (a missing Secret or template) is kept as it runs: an
//! incomplete set never removes anything.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use mcp_droplet_agent::api::Phase;
use secrecy::SecretString;

use super::desired::{EnvValue, server_name};
use super::plan::ServerFacts;
use super::{Context, Error, read_secret, resolve_env};
use crate::api::deployment::MCPDeployment;
use crate::api::droplet::Droplet;
use crate::api::template::{MCPTemplate, Transport};
use crate::controller::agent_access::{CREDENTIAL_KEY, credential_secret_name};
use crate::dtma::driver::GONE_REDEPLOY_NEXT_PASS;
use crate::dtma::plan::valid_server_name;
use crate::dtma::{
    Action, Blocker, ConfigHash, DEFAULT_NAME_PREFIX, DesiredServer, DtmaClient, DtmaDriver,
    PassReport, config_hash_of, owner_of,
};
use crate::probe::McpTransport;

/// The first host port a server is published on (DTMA itself listens on 30000).
pub const FIRST_HOST_PORT: u16 = 31000;
/// How many host ports servers are spread over.
pub const HOST_PORT_RANGE: u16 = 8000;

/// One async lock per DTMA droplet, so two passes for the same droplet never interleave their
/// list-plan-apply (each would remove what the other is deploying).
#[derive(Debug, Default)]
pub struct DropletLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl DropletLocks {
    /// Waits for, then holds, the lock of droplet `namespace/name`.
    pub async fn lock(&self, namespace: &str, name: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(map.entry(format!("{namespace}/{name}")).or_default())
        };
        lock.lock_owned().await
    }
}

/// Why `template` cannot run on a DTMA droplet, if it cannot: DTMA runs a container as it is,
/// so the server must speak MCP over HTTP itself on a known port, under a name DTMA can hold.
pub fn unsupported_reason(deployment: &MCPDeployment, template: &MCPTemplate) -> Option<String> {
    if template.spec.transport == Transport::Stdio {
        return Some(
            "DTMA cannot bridge a stdio server to HTTP; use an HTTP template or an mcp-droplet-agent droplet"
                .into(),
        );
    }
    if template
        .spec
        .port
        .and_then(|p| u16::try_from(p).ok())
        .is_none()
    {
        return Some("the template names no port for DTMA to publish".into());
    }
    let name = server_name(deployment);
    (!valid_server_name(&name)).then(|| {
        format!(
            "{name:?} cannot name a DTMA container (lowercase letters, digits and '-', at most 50)"
        )
    })
}

/// The server DTMA should run under `name`, published on `host_port` (env values as DTMA
/// takes them: `KEY=VALUE`; DTMA has no secret values), its container carrying `config_hash`.
pub fn desired_server(
    name: &str,
    template: &MCPTemplate,
    env: &BTreeMap<String, EnvValue>,
    host_port: u16,
    config_hash: ConfigHash,
) -> Option<DesiredServer> {
    let transport = match template.spec.transport {
        Transport::Stdio => return None,
        Transport::StreamableHttp => McpTransport::StreamableHttp,
        Transport::Sse => McpTransport::Sse,
    };
    Some(DesiredServer {
        name: name.to_owned(),
        image: template.spec.image.clone(),
        env: env
            .iter()
            .map(|(k, v)| match v {
                EnvValue::Plain(v) | EnvValue::Secret(v) => (k.clone(), v.clone()),
            })
            .collect(),
        port: template.spec.port.and_then(|p| u16::try_from(p).ok())?,
        host_port,
        transport,
        labels: BTreeMap::new(),
        config_hash,
    })
}

fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A host port per server: from a hash of its name, the next free one on a collision.
/// `servers` come oldest deployment first, so a server added later never moves an earlier one.
pub fn host_ports(servers: &[String]) -> BTreeMap<String, u16> {
    let range = u64::from(HOST_PORT_RANGE);
    let mut taken = BTreeSet::new();
    let mut out = BTreeMap::new();
    for name in servers {
        if out.contains_key(name) {
            continue;
        }
        let start = fnv1a(name) % range;
        let Some(offset) = (0..range)
            .map(|i| (start + i) % range)
            .find(|o| !taken.contains(o))
        else {
            break;
        };
        taken.insert(offset);
        let port = u16::try_from(offset).map_or(FIRST_HOST_PORT, |o| FIRST_HOST_PORT + o);
        out.insert(name.clone(), port);
    }
    out
}

/// What a driver pass means for server `name`: running (already, started or deployed now),
/// failed (its call failed, or a container DTMA forgot holds its port), or pending (deployed
/// again next pass), with the configuration hash the running container's name carries (the
/// one observed, not the desired one: a stale container is how a changed Secret shows).
pub fn server_outcome(report: &PassReport, name: &str) -> ServerFacts {
    let hash_of =
        |container: &str| config_hash_of(DEFAULT_NAME_PREFIX, container).map(str::to_owned);
    let mut running = report.plan.satisfied.get(name).map(|c| hash_of(c));
    let mut failure = None;
    for result in &report.results {
        let container = match &result.action {
            Action::Deploy { server, container } if server.name == name => container,
            Action::Start { container }
                if owner_of(DEFAULT_NAME_PREFIX, container) == Some(name) =>
            {
                container
            }
            // Old generations of it going away say nothing about the one that runs; other
            // servers' calls say nothing about it.
            Action::Deploy { .. } | Action::Start { .. } | Action::Remove { .. } => continue,
        };
        match &result.outcome {
            Ok(note) if note == GONE_REDEPLOY_NEXT_PASS => {}
            Ok(_) => running = Some(hash_of(container)),
            Err(error) => failure = Some(error.to_string()),
        }
    }
    let blocked = report
        .plan
        .blockers
        .iter()
        .find_map(|blocker| match blocker {
            Blocker::Orphan {
                container,
                running: true,
            } if owner_of(DEFAULT_NAME_PREFIX, container) == Some(name) => Some(container),
            Blocker::Orphan { .. } => None,
        });
    let (phase, reason, config_hash) = match (failure, running, blocked) {
        (Some(why), _, _) => (Phase::Failed, Some(why), None),
        (None, Some(hash), _) => (Phase::Running, None, hash),
        (None, None, Some(orphan)) => (
            Phase::Failed,
            Some(format!(
                "DTMA forgot container {orphan} (it restarted) and cannot remove it; it still runs on the server's port: remove it on the droplet"
            )),
            None,
        ),
        (None, None, None) => (
            Phase::Pending,
            Some("DTMA deploys it next pass".to_string()),
            None,
        ),
    };
    ServerFacts::Present {
        phase,
        reason,
        config_hash,
    }
}

/// The MCP endpoint DTMA publishes a server on: plain HTTP on the droplet's address.
pub fn endpoint_url(ip: &str, host_port: u16, path: &str) -> String {
    format!("http://{ip}:{host_port}{path}")
}

/// A Ready DTMA droplet as this controller drives it.
#[derive(Debug, Clone)]
pub struct DtmaTarget {
    driver: DtmaDriver,
    ip: String,
    namespace: String,
    droplet: String,
}

/// The driver of a DTMA droplet (its endpoint and address from status, its token from the
/// agent-credential Secret), or why there is none yet.
pub async fn target(ctx: &Context, droplet: &Droplet) -> Result<Result<DtmaTarget, String>, Error> {
    let namespace = droplet.namespace().unwrap_or_default();
    let name = droplet.name_any();
    let status = droplet.status.as_ref();
    let (Some(endpoint), Some(ip)) = (
        status
            .and_then(|s| s.agent.as_ref())
            .and_then(|a| a.endpoint.clone()),
        status.and_then(|s| s.public_ipv4.clone()),
    ) else {
        return Ok(Err(format!("droplet {name} has no DTMA endpoint yet")));
    };
    let secret = credential_secret_name(&name);
    let data = read_secret(ctx, &namespace, &secret).await?;
    let Some(token) = data
        .as_ref()
        .and_then(|d| d.get(CREDENTIAL_KEY))
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
    else {
        return Ok(Err(format!("Secret {secret:?} has no DTMA token")));
    };
    Ok(DtmaClient::new(&endpoint, SecretString::from(token))
        .map(|client| DtmaTarget {
            driver: DtmaDriver::new(client, DEFAULT_NAME_PREFIX),
            ip,
            namespace,
            droplet: name,
        })
        .map_err(|e| e.to_string()))
}

/// The deployment of this pass: run with this template and env, or removed.
pub enum Own<'a> {
    /// Deployed with its resolved env.
    Run {
        /// The deployment.
        deployment: &'a MCPDeployment,
        /// Its template.
        template: &'a MCPTemplate,
        /// Its resolved env.
        env: &'a BTreeMap<String, EnvValue>,
        /// Its configuration hash, and whether a container with another one is replaced.
        config_hash: ConfigHash,
    },
    /// Removed from the droplet (deleted or moving away).
    Remove(&'a MCPDeployment),
}

impl Own<'_> {
    fn deployment(&self) -> &MCPDeployment {
        match self {
            Own::Run { deployment, .. } | Own::Remove(deployment) => deployment,
        }
    }
}

/// What one driver pass did, and where the own server (when run) is published.
#[derive(Debug)]
pub struct DropletPass {
    /// The driver's report.
    pub report: PassReport,
    /// The own server's MCP endpoint.
    pub endpoint: Option<String>,
}

/// Reconciles the droplet's whole set of servers, under its lock: every deployment placed on
/// it (from the caches) plus or minus the one of this pass.
pub async fn reconcile(
    ctx: &Context,
    target: &DtmaTarget,
    own: Own<'_>,
) -> Result<DropletPass, Error> {
    let _guard = ctx
        .dtma_locks
        .lock(&target.namespace, &target.droplet)
        .await;
    let me = own.deployment();
    let my_uid = me.uid();
    let mut members: Vec<Member> = Vec::new();
    let mut kept = BTreeSet::new();
    for other in ctx.stores.deployments.state() {
        if other.namespace().as_deref() != Some(target.namespace.as_str())
            || other.uid() == my_uid
            || other.metadata.deletion_timestamp.is_some()
        {
            continue;
        }
        let placed = other
            .status
            .as_ref()
            .and_then(|s| s.placement.as_ref())
            .and_then(|p| p.droplet.clone());
        match placed {
            Some(on) if on == target.droplet => {}
            Some(_) => continue,
            // Perhaps placed here a moment ago (the cache lags): leave its server alone.
            None => {
                kept.insert(server_name(&other));
                continue;
            }
        }
        let template = ctx
            .stores
            .templates
            .get(&ObjectRef::new(&other.spec.template_ref.name));
        let run = match template {
            Some(t) if unsupported_reason(&other, &t).is_none() => {
                resolve_env(ctx, &other, &t).await?.ok().map(|env| (t, env))
            }
            _ => None,
        };
        // Its own pass checks its hash (and emits its Events); here it is only recorded.
        let hash = other.status.as_ref().and_then(|s| s.config_hash.clone());
        members.push(Member {
            created: created(&other),
            name: server_name(&other),
            run: run.map(|(t, env)| (t, env, ConfigHash::Unchecked(hash))),
        });
    }
    if let Own::Run {
        deployment,
        template,
        env,
        config_hash,
    } = &own
    {
        members.push(Member {
            created: created(deployment),
            name: server_name(deployment),
            run: Some((
                Arc::new((*template).clone()),
                (*env).clone(),
                config_hash.clone(),
            )),
        });
    }
    members.sort_by(|a, b| (&a.created, &a.name).cmp(&(&b.created, &b.name)));
    let order: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
    let ports = host_ports(&order);
    let mut desired = Vec::new();
    for member in &members {
        let server = member.run.as_ref().and_then(|(template, env, hash)| {
            let port = *ports.get(&member.name)?;
            desired_server(&member.name, template, env, port, hash.clone())
        });
        match server {
            Some(server) => desired.push(server),
            // Unknown this pass: whatever runs for it stays as it is.
            None => {
                kept.insert(member.name.clone());
            }
        }
    }
    let mine = server_name(me);
    kept.remove(&mine);
    let report = target.driver.reconcile_keeping(&desired, &kept).await?;
    let endpoint = match &own {
        Own::Run { template, .. } => ports
            .get(&mine)
            .map(|port| endpoint_url(&target.ip, *port, &template.spec.path)),
        Own::Remove(_) => None,
    };
    Ok(DropletPass { report, endpoint })
}

/// A deployment placed on the droplet, oldest first for host ports.
struct Member {
    created: Option<k8s_openapi::jiff::Timestamp>,
    name: String,
    /// Its template, env and configuration hash; None when they cannot be known this pass.
    run: Option<(Arc<MCPTemplate>, BTreeMap<String, EnvValue>, ConfigHash)>,
}

fn created(deployment: &MCPDeployment) -> Option<k8s_openapi::jiff::Timestamp> {
    deployment.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// The controller's calls on a DTMA droplet, for one pass of one deployment.
pub(super) mod pass {
    use super::super::plan::{InputFacts, Observed, PushReason, ServerFacts};
    use super::super::{PassState, timed};
    use super::{DropletPass, DtmaTarget, Own, reconcile, server_outcome};
    use crate::api::deployment::MCPDeployment;
    use crate::controller::deployment::desired::server_name;
    use crate::controller::{Context, Error};
    use crate::dtma::{Action, ConfigHash, DEFAULT_NAME_PREFIX, owner_of};
    use mcp_droplet_agent::api::Phase;

    fn target(pass: &PassState) -> Result<DtmaTarget, String> {
        match &pass.dtma {
            Some(Ok(target)) => Ok(target.clone()),
            Some(Err(why)) => Err(why.clone()),
            None => Err("the droplet does not run DTMA".into()),
        }
    }

    /// Runs the deployment's server (with every other of its droplet) and says how it is, with
    /// the hash its container carries. Observing (`replace_stale` false) keeps a container
    /// carrying another hash, so the step machine sees the change and pushes `ConfigChanged`
    /// (its Event and step, as for our agent); a push replaces it.
    pub async fn run(
        ctx: &Context,
        deployment: &MCPDeployment,
        key: &str,
        observed: &Observed,
        pass: &mut PassState,
        now: jiff::Timestamp,
        replace_stale: bool,
    ) -> Result<ServerFacts, Error> {
        let target = match target(pass) {
            Ok(target) => target,
            Err(why) => return Ok(ServerFacts::Unreachable(why)),
        };
        let (Some(template), Some(env)) = (pass.template.clone(), pass.env.clone()) else {
            return Ok(ServerFacts::Unreachable("no desired server yet".into()));
        };
        let config_hash = match (&observed.inputs, replace_stale) {
            (Some(InputFacts::Resolved { config_hash }), true) => {
                ConfigHash::Desired(config_hash.clone())
            }
            (Some(InputFacts::Resolved { config_hash }), false) => {
                ConfigHash::Unchecked(Some(config_hash.clone()))
            }
            _ => ConfigHash::Unchecked(None),
        };
        let own = Own::Run {
            deployment,
            template: &template,
            env: &env,
            config_hash,
        };
        let done: DropletPass =
            match timed(ctx, "dtma_reconcile", reconcile(ctx, &target, own)).await {
                Ok(done) => done,
                Err(Error::Dtma(e)) => return Ok(ServerFacts::Unreachable(e.to_string())),
                Err(other) => return Err(other),
            };
        pass.dtma_endpoint = done.endpoint;
        let facts = server_outcome(&done.report, &server_name(deployment));
        if matches!(
            facts,
            ServerFacts::Present {
                phase: Phase::Running,
                ..
            }
        ) {
            // DTMA runs it: the booking no longer expires.
            let _ = ctx.ledger.confirm(key, now);
        }
        Ok(facts)
    }

    /// Pushes the deployment's server: a container carrying another configuration hash is
    /// replaced (removed, then the new one deployed, in one pass under the droplet's lock); for
    /// a restart the current one is removed first, then deployed again.
    pub async fn push(
        ctx: &Context,
        deployment: &MCPDeployment,
        key: &str,
        reason: PushReason,
        observed: &Observed,
        pass: &mut PassState,
        now: jiff::Timestamp,
    ) -> Result<ServerFacts, Error> {
        if reason == PushReason::Restart
            && let Ok(target) = target(pass)
            && let Err(error) = remove(ctx, &target, deployment).await
        {
            return Ok(ServerFacts::Unreachable(error.to_string()));
        }
        run(ctx, deployment, key, observed, pass, now, true).await
    }

    /// Removes the deployment's server from the droplet (the others stay); fails when a call
    /// to remove it failed.
    pub async fn remove(
        ctx: &Context,
        target: &DtmaTarget,
        deployment: &MCPDeployment,
    ) -> Result<(), Error> {
        let done = timed(
            ctx,
            "dtma_reconcile",
            reconcile(ctx, target, Own::Remove(deployment)),
        )
        .await?;
        let name = server_name(deployment);
        for orphan in done.report.orphans() {
            if owner_of(DEFAULT_NAME_PREFIX, orphan) == Some(name.as_str()) {
                tracing::warn!(
                    container = orphan,
                    "DTMA forgot this container and cannot remove it; remove it on the droplet"
                );
            }
        }
        let failed = done
            .report
            .results
            .into_iter()
            .find_map(|r| match r.action {
                Action::Remove { container }
                    if owner_of(DEFAULT_NAME_PREFIX, &container) == Some(name.as_str()) =>
                {
                    r.outcome.err()
                }
                _ => None,
            });
        match failed {
            Some(error) => Err(error.into()),
            None => Ok(()),
        }
    }

    /// The droplet's DTMA, when the pass found one it can call.
    pub fn reachable(pass: &PassState) -> Option<DtmaTarget> {
        target(pass).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtma::driver::ActionResult;
    use crate::dtma::{DtmaError, Plan};

    fn server(name: &str) -> DesiredServer {
        DesiredServer {
            name: name.into(),
            image: "img:1".into(),
            env: BTreeMap::new(),
            port: 8080,
            host_port: 31001,
            transport: McpTransport::StreamableHttp,
            labels: BTreeMap::new(),
            config_hash: ConfigHash::Unchecked(None),
        }
    }

    fn report(
        satisfied: &[(&str, &str)],
        results: Vec<(Action, Result<&str, DtmaError>)>,
    ) -> PassReport {
        PassReport {
            plan: Plan {
                satisfied: satisfied
                    .iter()
                    .map(|(server, container)| ((*server).to_owned(), (*container).to_owned()))
                    .collect(),
                ..Plan::default()
            },
            results: results
                .into_iter()
                .map(|(action, outcome)| ActionResult {
                    action,
                    outcome: outcome.map(str::to_owned),
                })
                .collect(),
        }
    }

    fn phase(facts: &ServerFacts) -> Option<Phase> {
        match facts {
            ServerFacts::Present { phase, .. } => Some(*phase),
            _ => None,
        }
    }

    #[test]
    fn host_ports_are_stable_distinct_and_never_dtmas_own() {
        let names: Vec<String> = (0..300).map(|i| format!("server-{i}")).collect();
        let ports = host_ports(&names);
        let distinct: BTreeSet<u16> = ports.values().copied().collect();
        assert_eq!(distinct.len(), names.len());
        assert!(
            distinct
                .iter()
                .all(|p| (FIRST_HOST_PORT..FIRST_HOST_PORT + HOST_PORT_RANGE).contains(p))
        );
        // A server added later moves none of the earlier ones.
        let mut more = names.clone();
        more.push("late".into());
        let again = host_ports(&more);
        assert!(names.iter().all(|n| ports[n] == again[n]));
    }

    #[test]
    fn a_collision_takes_the_next_free_port() {
        let ports = host_ports(&["a".to_owned(), "a".to_owned(), "b".to_owned()]);
        assert_eq!(ports.len(), 2);
        assert_ne!(ports["a"], ports["b"]);
    }

    #[test]
    fn the_outcome_of_a_pass_for_one_server() {
        let deployed = Action::Deploy {
            container: "mcpdo-a_bb02".into(),
            server: server("a"),
        };
        let other = Action::Deploy {
            container: "mcpdo-b_cc03".into(),
            server: server("b"),
        };
        let hash = |facts: &ServerFacts| match facts {
            ServerFacts::Present { config_hash, .. } => config_hash.clone(),
            _ => None,
        };
        // What runs reports the hash its name carries, not the desired one.
        let satisfied = server_outcome(&report(&[("a", "mcpdo-a_aa01")], vec![]), "a");
        assert_eq!(phase(&satisfied), Some(Phase::Running));
        assert_eq!(hash(&satisfied).as_deref(), Some("aa01"));
        let unhashed = server_outcome(&report(&[("a", "mcpdo-a")], vec![]), "a");
        assert_eq!(hash(&unhashed), None);
        let replaced = report(
            &[],
            vec![
                (
                    Action::Remove {
                        container: "mcpdo-a_aa01".into(),
                    },
                    Ok("removed"),
                ),
                (deployed.clone(), Ok("deployed")),
            ],
        );
        let now = server_outcome(&replaced, "a");
        assert_eq!(phase(&now), Some(Phase::Running));
        assert_eq!(hash(&now).as_deref(), Some("bb02"));
        let failed = report(
            &[],
            vec![
                (other, Ok("deployed")),
                (deployed, Err(DtmaError::Http("timeout".into()))),
            ],
        );
        assert_eq!(phase(&server_outcome(&failed, "a")), Some(Phase::Failed));
        let b = server_outcome(&failed, "b");
        assert_eq!(phase(&b), Some(Phase::Running));
        assert_eq!(hash(&b).as_deref(), Some("cc03"));
        let gone = report(
            &[],
            vec![(
                Action::Start {
                    container: "mcpdo-a.2".into(),
                },
                Ok(GONE_REDEPLOY_NEXT_PASS),
            )],
        );
        assert_eq!(phase(&server_outcome(&gone, "a")), Some(Phase::Pending));
        // A forgotten container on its port, which DTMA cannot remove: failed, saying why.
        let mut blocked = report(&[], vec![]);
        blocked.plan.blockers.push(Blocker::Orphan {
            container: "mcpdo-a_aa01".into(),
            running: true,
        });
        let facts = server_outcome(&blocked, "a");
        assert_eq!(phase(&facts), Some(Phase::Failed));
        assert!(matches!(
            facts,
            ServerFacts::Present { reason: Some(r), .. } if r.contains("mcpdo-a_aa01")
        ));
    }

    #[test]
    fn dtma_runs_only_http_servers_with_a_port() {
        let deployment = MCPDeployment::test("github").build();
        let stdio = MCPTemplate::test("t").build();
        assert!(unsupported_reason(&deployment, &stdio).is_some_and(|r| r.contains("stdio")));
        let http = MCPTemplate::test("t").streamable_http(8080).build();
        assert_eq!(unsupported_reason(&deployment, &http), None);
        let env = BTreeMap::from([
            ("A".to_owned(), EnvValue::Plain("1".into())),
            ("B".to_owned(), EnvValue::Secret("s".into())),
        ]);
        let hash = ConfigHash::Desired("aa01".into());
        let desired =
            desired_server("github", &http, &env, 31007, hash.clone()).expect("an HTTP server");
        assert_eq!(desired.config_hash, hash);
        assert_eq!(desired.port, 8080);
        assert_eq!(desired.host_port, 31007);
        assert_eq!(desired.env["B"], "s");
        assert_eq!(desired_server("github", &stdio, &env, 31007, hash), None);
        assert_eq!(
            endpoint_url("203.0.113.7", 31007, "/mcp"),
            "http://203.0.113.7:31007/mcp"
        );
    }
}
