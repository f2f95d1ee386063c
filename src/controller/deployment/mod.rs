//! The MCPDeployment controller: takes a deployment from `kubectl apply` to a verified MCP
//! endpoint and keeps it there.
//!
//! Each pass observes (template, env and Secrets, the placed droplet, the agent, the MCP
//! check), asks the pure step machine ([`plan::plan`]) what to do next, does it, and asks again
//! until the plan says to wait; then the whole status is written when it changed, the step
//! transitions become Events, and the `<name>-mcp` Secret is published once Ready. Templates,
//! Droplets and (metadata only) Secrets are watched, so a fixed cause or a new droplet wakes the
//! deployments concerned. Deletion removes the server from its droplet through a finalizer.

pub mod desired;
pub mod dtma;
pub mod plan;
pub mod remembered;
pub mod wake;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use super::Watched;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret as SecretObject};
use kube::api::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use mcp_droplet_agent::api::{ServerSpec, ServerStatus};
use mcp_droplet_agent::secret::Secret;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use self::desired::{
    EnvSource, EnvValue, env_sources, referenced_secrets, server_name, server_spec,
};
use self::plan::{
    AgentAccess, DropletFacts, InputFacts, Memory, Next, Observed, PlanSettings, ProbeFacts,
    PushReason, ScheduleFacts, ServerFacts, TemplateFacts, events_between,
};
use super::agent_access::managed_labels;
use super::status_writer::{apply_object, apply_status, ensure_finalizer};
use super::{
    Context, Error, PassTarget, backoff_action, drain, instrumented, object_key, scoped_api,
};
use crate::agent_client::AgentClient;
use crate::api::conditions::find;
use crate::api::deployment::{DeploymentPhase, MCPDeployment, McpStatus, PlacementStatus};
use crate::api::droplet::{AgentKind, Droplet, DropletPhase};
use crate::api::template::{MCPTemplate, TemplatePhase};
use crate::fleet::{FleetObjects, FleetView, pending_from_api, placement_status, request_of};

/// The controller's name in metrics and logs.
pub const NAME: &str = "mcpdeployment";
/// The finalizer that removes the server from its droplet before the object goes.
pub const FINALIZER: &str = "mcp.agentopia.io/deployment";
/// Key of the endpoint token in `<name>-mcp-token` and `<name>-mcp`.
pub const TOKEN_KEY: &str = "token";
/// Key of the endpoint URL in `<name>-mcp`.
pub const URL_KEY: &str = "url";
/// Key of the agent certificate's SHA-256 (hex, of the DER) in `<name>-mcp`, to pin.
pub const CERTIFICATE_KEY: &str = "certificateSha256";
/// Key of the MCP server name in `<name>-mcp`.
pub const SERVER_KEY: &str = "serverName";

/// Name of the Secret holding a deployment's endpoint token.
pub fn token_secret_name(deployment: &str) -> String {
    format!("{deployment}-mcp-token")
}

/// Name of the Secret with what an MCP client in the cluster needs.
pub fn endpoint_secret_name(deployment: &str) -> String {
    format!("{deployment}-mcp")
}

/// The data of Secret `namespace/name` (`None` when it does not exist), from the controller's
/// cache when the watch has not seen it change, else read (and cached).
async fn read_secret(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, ByteString>>, Error> {
    if let Some(data) = ctx.deployments.secret(namespace, name) {
        return Ok(Some(data));
    }
    let api: Api<SecretObject> = Api::namespaced(ctx.client.clone(), namespace);
    let got = api.get_opt(name).await?;
    if let Some(object) = &got {
        ctx.deployments.cache_secret(object);
    }
    Ok(got.map(|o| secret_data(&o)))
}

/// Most plan rounds one pass makes before it requeues.
const MAX_ROUNDS: usize = 12;

async fn reconcile(object: Arc<MCPDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    instrumented(NAME, &ctx, PassTarget::of(object.as_ref()), async {
        let ns = object
            .namespace()
            .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
        let api: Api<MCPDeployment> = Api::namespaced(ctx.client.clone(), &ns);
        let object = ensure_finalizer(&api, object, FINALIZER).await?;
        finalizer(&api, FINALIZER, object, |event| async {
            match event {
                FinalizerEvent::Apply(d) => apply(d, &ctx).await,
                FinalizerEvent::Cleanup(d) => cleanup(d, &ctx).await,
            }
        })
        .await
        .or_else(finalizer_already_gone)
    })
    .await
}

/// The finalizer helper's error, except that an object already gone when its finalizer is
/// removed is done: a pass woken from a cache that had not yet seen the previous pass remove
/// the finalizer (and the object go) runs the idempotent cleanup again, then finds nothing to
/// patch. That is not a failure to retry, log or count.
fn finalizer_already_gone(error: kube::runtime::finalizer::Error<Error>) -> Result<Action, Error> {
    match error {
        kube::runtime::finalizer::Error::RemoveFinalizer(kube::Error::Api(status))
            if status.code == 404 =>
        {
            Ok(Action::await_change())
        }
        other => Err(Error::from(other)),
    }
}

fn error_policy(object: Arc<MCPDeployment>, error: &Error, ctx: Arc<Context>) -> Action {
    backoff_action(&ctx, NAME, object_key(object.as_ref()), error)
}

/// Deployments referring to template `name`.
fn by_template(ctx: &Context, name: &str) -> Vec<ObjectRef<MCPDeployment>> {
    ctx.stores
        .deployments
        .state()
        .iter()
        .filter(|d| d.spec.template_ref.name == name)
        .map(|d| ObjectRef::from_obj(d.as_ref()))
        .collect()
}

/// Deployments placed on a droplet, and those of its namespace that wait for one, as far as
/// the change wakes them ([`wake`]).
fn by_droplet(
    ctx: &Context,
    seen: &wake::Seens,
    droplet: &Droplet,
) -> Vec<ObjectRef<MCPDeployment>> {
    let wake = seen.observe(droplet);
    if wake == wake::Wake::default() {
        return Vec::new();
    }
    let ns = droplet.namespace();
    let name = droplet.name_any();
    ctx.stores
        .deployments
        .state()
        .iter()
        .filter(|d| d.namespace() == ns)
        .filter(|d| {
            let placed = d.status.as_ref().and_then(|s| s.placement.as_ref());
            match placed.and_then(|p| p.droplet.as_deref()) {
                Some(on) => wake.placed && on == name,
                None => wake.waiting,
            }
        })
        .map(|d| ObjectRef::from_obj(d.as_ref()))
        .collect()
}

/// Deployments whose env refers to Secret `namespace/name`.
/// Deployments whose env refers to Secret `namespace/name`, or that own it (their token or
/// endpoint Secret, whose cached copy is dropped).
fn by_secret(
    ctx: &Context,
    namespace: &str,
    name: &str,
    version: Option<String>,
) -> Vec<ObjectRef<MCPDeployment>> {
    let owner = name
        .strip_suffix("-mcp-token")
        .or_else(|| name.strip_suffix("-mcp"));
    let affected: Vec<ObjectRef<MCPDeployment>> = ctx
        .stores
        .deployments
        .state()
        .iter()
        .filter(|d| d.namespace().as_deref() == Some(namespace))
        .filter(|d| {
            owner.is_some_and(|o| d.name_any() == o) || referenced_secrets(d).contains(name)
        })
        .map(|d| ObjectRef::from_obj(d.as_ref()))
        .collect();
    ctx.deployments.saw_secret(
        namespace,
        name,
        version,
        owner.is_some() || !affected.is_empty(),
    );
    affected
}

/// Runs the controller until `shutdown`.
pub async fn run(
    controller: Watched<MCPDeployment>,
    ctx: Arc<Context>,
    shutdown: CancellationToken,
) {
    let for_templates = Arc::clone(&ctx);
    let for_droplets = Arc::clone(&ctx);
    let seen = wake::Seens::default();
    let for_secrets = Arc::clone(&ctx);
    let stream = controller
        .watches(Api::<MCPTemplate>::all(ctx.client.clone()), move |t| {
            by_template(&for_templates, &t.name_any())
        })
        .watches(
            scoped_api::<Droplet>(&ctx.client, &ctx.config.scope),
            move |d| by_droplet(&for_droplets, &seen, &d),
        )
        // Secrets are watched by metadata only (`PartialObjectMeta` makes kube ask for
        // metadata): their values never reach this process's caches.
        .watches(
            scoped_api::<PartialObjectMeta<SecretObject>>(&ctx.client, &ctx.config.scope),
            move |meta| {
                let ns = meta.metadata.namespace.clone().unwrap_or_default();
                let name = meta.metadata.name.clone().unwrap_or_default();
                by_secret(
                    &for_secrets,
                    &ns,
                    &name,
                    meta.metadata.resource_version.clone(),
                )
            },
        )
        .run(reconcile, error_policy, ctx, shutdown);
    drain(NAME, stream).await;
}

/// What a pass learned that the plan does not need but the actions do.
#[derive(Default)]
struct PassState {
    template: Option<Arc<MCPTemplate>>,
    spec: Option<ServerSpec>,
    token: Option<Secret>,
    /// The resolved env (what a DTMA droplet is given).
    env: Option<BTreeMap<String, EnvValue>>,
    agent: Option<AgentClient>,
    /// The placed droplet's DTMA (or why it cannot be driven), when it runs DTMA.
    dtma: Option<Result<dtma::DtmaTarget, String>>,
    /// Where DTMA publishes the server (known once its droplet was reconciled this pass).
    dtma_endpoint: Option<String>,
    events: Vec<plan::PlannedEvent>,
    /// A status already written in this pass (the placement, before the first push).
    written: Option<crate::api::deployment::MCPDeploymentStatus>,
}

/// One pass of a live deployment.
async fn apply(deployment: Arc<MCPDeployment>, ctx: &Context) -> Result<Action, Error> {
    let now = ctx.now();
    let uid = deployment
        .uid()
        .ok_or(Error::MissingObjectKey("metadata.uid"))?;
    let ns = deployment
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let key = object_key(deployment.as_ref());
    let settings = PlanSettings::from_timings(&ctx.config.timings);
    let mut pass = PassState::default();

    // Validating: template, env, Secrets, token.
    let template = ctx
        .stores
        .templates
        .get(&ObjectRef::new(&deployment.spec.template_ref.name));
    let template_facts = match &template {
        None => TemplateFacts::Missing,
        Some(t) if t.status.as_ref().and_then(|s| s.phase) == Some(TemplatePhase::Rejected) => {
            TemplateFacts::Rejected(
                t.status
                    .as_ref()
                    .and_then(|s| find(&s.conditions, super::kstatus::READY))
                    .map(|c| c.message.clone())
                    .unwrap_or_default(),
            )
        }
        Some(_) => TemplateFacts::Usable,
    };
    let inputs = match (&template_facts, &template) {
        (TemplateFacts::Usable, Some(t)) => {
            Some(resolve_inputs(ctx, &deployment, t, &mut pass).await?)
        }
        _ => None,
    };
    pass.template = template;

    // The recorded placement and its droplet.
    let placement = deployment
        .status
        .as_ref()
        .and_then(|s| s.placement.clone())
        .filter(|p| p.droplet.is_some());
    let droplet = match placement.as_ref().and_then(|p| p.droplet.as_deref()) {
        Some(name) => Some(droplet_facts(ctx, &deployment, &ns, name, &mut pass).await?),
        None => None,
    };
    let mut observed = Observed {
        template: template_facts,
        inputs,
        placement,
        droplet,
        schedule: None,
        server: None,
        pushed: None,
        probe: None,
        memory: ctx.deployments.memory(&uid),
        settings,
    };

    let mut last = None;
    for _ in 0..MAX_ROUNDS {
        let step = plan::plan(&deployment, &observed, now);
        match step.next.clone() {
            Next::Wait(after) => {
                last = Some((step, after));
                break;
            }
            Next::RequestDroplet(after) => {
                // The pool controller batches demand; a closed channel means it stopped.
                let _ = ctx.demand.send(());
                last = Some((step, after));
                break;
            }
            Next::Schedule => {
                let facts = schedule(ctx, &deployment, &observed.memory, &pass, now)?;
                if let ScheduleFacts::Placed(p) = &facts {
                    observed.placement = Some(p.clone());
                    let name = p.droplet.clone().unwrap_or_default();
                    observed.droplet =
                        Some(droplet_facts(ctx, &deployment, &ns, &name, &mut pass).await?);
                    observed.schedule = None;
                    // The placement is recorded before anything reaches the agent, so an
                    // operator that stops here finds the server where it put it.
                    let interim = plan::plan(&deployment, &observed, now).status;
                    let api: Api<MCPDeployment> = Api::namespaced(ctx.client.clone(), &ns);
                    let current = pass.written.as_ref().or(deployment.status.as_ref());
                    if apply_status(&api, deployment.as_ref(), current, &interim).await? {
                        ctx.metrics.status_written(NAME);
                    }
                    pass.written = Some(interim);
                } else {
                    observed.schedule = Some(facts);
                }
            }
            Next::Release {
                droplet,
                reason,
                exclude,
            } => {
                release(ctx, &deployment, &key, &droplet, &observed, &pass).await;
                pass.events.push(plan::PlannedEvent {
                    warning: exclude,
                    reason: "Moved".into(),
                    note: format!("left droplet {droplet}: {reason}"),
                });
                let memory = &mut observed.memory;
                memory.probe_failures = 0;
                memory.step_failures = 0;
                memory.restarted = false;
                memory.last_check = None;
                let left = ctx
                    .stores
                    .droplets
                    .get(&ObjectRef::new(&droplet).within(&ns))
                    .and_then(|d| d.metadata.uid.clone());
                if let Some(uid) = left.filter(|uid| exclude && !memory.excluded.contains(uid)) {
                    memory.excluded.push(uid);
                }
                observed.placement = None;
                observed.droplet = None;
                observed.server = None;
                observed.pushed = None;
                observed.probe = None;
                observed.schedule = None;
                pass.agent = None;
                pass.dtma = None;
                pass.dtma_endpoint = None;
            }
            Next::ObserveServer if pass.dtma.is_some() => {
                observed.server = Some(
                    dtma::pass::run(ctx, &deployment, &key, &observed, &mut pass, now, false)
                        .await?,
                );
            }
            Next::ObserveServer => {
                observed.server = Some(observe_server(ctx, &deployment, &pass).await);
            }
            Next::Push(reason) => {
                observed.server = Some(if pass.dtma.is_some() {
                    dtma::pass::push(ctx, &deployment, &key, reason, &observed, &mut pass, now)
                        .await?
                } else {
                    match push(ctx, &deployment, &key, reason, &pass, now).await {
                        Ok(status) => server_facts(&status),
                        Err(Error::Agent(e)) => match e.status() {
                            Some(400 | 422) => ServerFacts::Rejected(e.to_string()),
                            _ => ServerFacts::Unreachable(e.to_string()),
                        },
                        Err(other) => return Err(other),
                    }
                });
                observed.pushed = Some(reason);
                observed.probe = None;
                if reason == PushReason::Restart {
                    observed.memory.restarted = true;
                }
                // DTMA answers a push with the outcome itself: a failed replacement replaced
                // nothing (and is pushed again next pass), so it is no Event.
                let accepted = match &observed.server {
                    Some(ServerFacts::Present { phase, .. }) => {
                        pass.dtma.is_none() || *phase != mcp_droplet_agent::api::Phase::Failed
                    }
                    _ => false,
                };
                match reason {
                    _ if !accepted => {}
                    PushReason::Initial => {}
                    PushReason::ConfigChanged => pass.events.push(plan::PlannedEvent {
                        warning: false,
                        reason: "ConfigChanged".into(),
                        note: "the configuration changed (spec, template or a Secret); the server is replaced".into(),
                    }),
                    PushReason::Missing => pass.events.push(plan::PlannedEvent {
                        warning: true,
                        reason: "Redeployed".into(),
                        note: "the agent no longer had the server; deployed it again".into(),
                    }),
                    PushReason::Restart => pass.events.push(plan::PlannedEvent {
                        warning: true,
                        reason: "Restarted".into(),
                        note: "restarted the server after repeated failed checks".into(),
                    }),
                }
            }
            Next::Probe => {
                observed.probe = Some(run_probe(ctx, &deployment, &pass).await);
            }
        }
    }
    let Some((step, after)) = last else {
        // Too many rounds: write nothing, come back soon.
        return Ok(ctx.requeue(observed.settings.retry));
    };
    ctx.deployments.remember(&uid, Some(step.memory.clone()));
    finish(ctx, &deployment, &ns, step.status, pass).await?;
    Ok(ctx.requeue(after))
}

/// Writes the status when it changed, publishes the events and the endpoint Secret, and
/// records time to Ready.
async fn finish(
    ctx: &Context,
    deployment: &MCPDeployment,
    ns: &str,
    status: crate::api::deployment::MCPDeploymentStatus,
    pass: PassState,
) -> Result<(), Error> {
    let api: Api<MCPDeployment> = Api::namespaced(ctx.client.clone(), ns);
    let previous = deployment.status.as_ref();
    let current = pass.written.as_ref().or(previous);
    if apply_status(&api, deployment, current, &status).await? {
        ctx.metrics.status_written(NAME);
    }
    if status.phase == DeploymentPhase::Ready
        && previous.is_none_or(|p| p.time_to_ready_seconds.is_none())
        && let Some(seconds) = status.time_to_ready_seconds
    {
        let provisioned = status.progress.steps.iter().any(|s| {
            s.name == "Provisioning" && s.state == crate::api::deployment::StepState::Succeeded
        });
        ctx.metrics
            .time_to_ready
            .get_or_create(&crate::telemetry::metrics::ReadyLabels {
                provisioned: provisioned.to_string(),
            })
            .observe(seconds);
    }
    let mut events = pass.events;
    events.extend(events_between(previous, &status));
    let reference = deployment.object_ref(&());
    for e in events {
        let event = Event {
            type_: if e.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: e.reason.clone(),
            note: Some(e.note),
            action: e.reason,
            secondary: None,
        };
        if let Err(error) = ctx.recorder.publish(&event, &reference).await {
            tracing::debug!(%error, "cannot publish an event");
        }
    }
    if status.phase == DeploymentPhase::Ready
        && let Some(endpoint) = status.endpoint.as_deref()
    {
        match (pass.agent.as_ref(), pass.token.as_ref()) {
            (Some(agent), Some(token)) => {
                let access = EndpointAccess::Agent {
                    fingerprint: agent.fingerprint(),
                    token,
                };
                publish_endpoint(ctx, deployment, endpoint, access, status.mcp.as_ref()).await?;
            }
            // DTMA: plain HTTP, no token (the droplet's AgentCapabilities condition says so).
            _ if pass.dtma.is_some() => {
                let access = EndpointAccess::Open;
                publish_endpoint(ctx, deployment, endpoint, access, status.mcp.as_ref()).await?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Resolves env and Secrets and the desired server; keeps the spec and token in `pass`.
async fn resolve_inputs(
    ctx: &Context,
    deployment: &MCPDeployment,
    template: &MCPTemplate,
    pass: &mut PassState,
) -> Result<InputFacts, Error> {
    let env = match resolve_env(ctx, deployment, template).await? {
        Ok(env) => env,
        Err(facts) => return Ok(facts),
    };
    let request = match request_of(deployment, Some(&template.spec.resources)) {
        Ok(r) => r,
        Err(e) => return Ok(InputFacts::Invalid(e.to_string())),
    };
    let token = endpoint_token(ctx, deployment).await?;
    let (spec, config_hash) = server_spec(deployment, template, &env, request, &token);
    pass.spec = Some(spec);
    pass.token = Some(token);
    pass.env = Some(env);
    Ok(InputFacts::Resolved { config_hash })
}

/// The deployment's env values (Secrets and ConfigMaps read), or why they cannot be known.
async fn resolve_env(
    ctx: &Context,
    deployment: &MCPDeployment,
    template: &MCPTemplate,
) -> Result<Result<BTreeMap<String, EnvValue>, InputFacts>, Error> {
    let ns = deployment.namespace().unwrap_or_default();
    let sources = match env_sources(deployment, template) {
        Ok(s) => s,
        Err(message) => return Ok(Err(InputFacts::Invalid(message))),
    };
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let mut secret_cache: HashMap<String, Option<BTreeMap<String, ByteString>>> = HashMap::new();
    let mut env = BTreeMap::new();
    for (name, source) in sources {
        match source {
            EnvSource::Literal(v) => {
                env.insert(name, EnvValue::Plain(v));
            }
            EnvSource::Secret {
                name: secret,
                key,
                optional,
            } => {
                if !secret_cache.contains_key(&secret) {
                    let data = read_secret(ctx, &ns, &secret).await?;
                    secret_cache.insert(secret.clone(), data);
                }
                let value = secret_cache
                    .get(&secret)
                    .and_then(|s| s.as_ref())
                    .and_then(|d| d.get(&key))
                    .and_then(|v| String::from_utf8(v.0.clone()).ok());
                match value {
                    Some(v) => {
                        env.insert(name, EnvValue::Secret(v));
                    }
                    None if optional => {}
                    None => {
                        return Ok(Err(InputFacts::ReferenceMissing {
                            kind: "Secret",
                            name: secret,
                            key,
                        }));
                    }
                }
            }
            EnvSource::ConfigMap {
                name: map,
                key,
                optional,
            } => {
                let found = match config_maps.get_opt(&map).await {
                    Ok(found) => found,
                    // The run contract grants no ConfigMap access by default.
                    Err(kube::Error::Api(status)) if status.code == 403 => {
                        return Ok(Err(InputFacts::Invalid(format!(
                            "env {name}: the operator may not read ConfigMap {map:?} (RBAC); \
                             grant it configmaps get, or use a literal value or a Secret"
                        ))));
                    }
                    Err(e) => return Err(e.into()),
                };
                let value = found.and_then(|m| m.data.and_then(|mut d| d.remove(&key)));
                match value {
                    Some(v) => {
                        env.insert(name, EnvValue::Plain(v));
                    }
                    None if optional => {}
                    None => {
                        return Ok(Err(InputFacts::ReferenceMissing {
                            kind: "ConfigMap",
                            name: map,
                            key,
                        }));
                    }
                }
            }
        }
    }
    Ok(Ok(env))
}

/// A Secret's data with `stringData` folded in (what the API server would store).
fn secret_data(secret: &SecretObject) -> BTreeMap<String, ByteString> {
    let mut data = secret.data.clone().unwrap_or_default();
    for (k, v) in secret.string_data.iter().flatten() {
        data.entry(k.clone())
            .or_insert_with(|| ByteString(v.as_bytes().to_vec()));
    }
    data
}

/// An owner reference making `deployment` the controller of a child.
fn owned_meta(
    deployment: &MCPDeployment,
    name: String,
    component: &str,
) -> Result<ObjectMeta, Error> {
    let owner = deployment
        .controller_owner_ref(&())
        .ok_or(Error::MissingObjectKey("metadata.uid"))?;
    Ok(ObjectMeta {
        name: Some(name),
        namespace: deployment.namespace(),
        labels: Some(managed_labels(component)),
        owner_references: Some(vec![owner]),
        ..Default::default()
    })
}

/// The deployment's endpoint token: the one in `<name>-mcp-token`, or a new random one
/// stored there first.
async fn endpoint_token(ctx: &Context, deployment: &MCPDeployment) -> Result<Secret, Error> {
    let ns = deployment.namespace().unwrap_or_default();
    let api: Api<SecretObject> = Api::namespaced(ctx.client.clone(), &ns);
    let name = token_secret_name(&deployment.name_any());
    let usable = |data: &BTreeMap<String, ByteString>| {
        data.get(TOKEN_KEY)
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
            .filter(|v| v.len() >= 16)
            .map(Secret::new)
    };
    if let Some(token) = ctx.deployments.secret(&ns, &name).as_ref().and_then(usable) {
        return Ok(token);
    }
    if let Some(existing) = api.get_opt(&name).await?
        && let Some(token) = usable(&secret_data(&existing))
    {
        ctx.deployments.cache_secret(&existing);
        return Ok(token);
    }
    let token = Secret::random();
    let object = SecretObject {
        metadata: owned_meta(deployment, name, "mcp-endpoint-token")?,
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            TOKEN_KEY.to_string(),
            ByteString(token.expose().as_bytes().to_vec()),
        )])),
        ..Default::default()
    };
    let written = apply_object(&api, &object).await?;
    ctx.deployments.cache_secret(&written);
    Ok(token)
}

/// How a client reaches a published endpoint.
enum EndpointAccess<'a> {
    /// Through our agent: HTTPS pinned to its certificate, with the deployment's token.
    Agent {
        /// SHA-256 of the agent certificate (hex, of the DER).
        fingerprint: &'a str,
        /// The endpoint token.
        token: &'a Secret,
    },
    /// Through DTMA: plain HTTP, neither token nor certificate.
    Open,
}

/// `<name>-mcp`: URL, and for our agent token and certificate fingerprint, written when any
/// of them changed.
async fn publish_endpoint(
    ctx: &Context,
    deployment: &MCPDeployment,
    url: &str,
    access: EndpointAccess<'_>,
    mcp: Option<&McpStatus>,
) -> Result<(), Error> {
    let ns = deployment.namespace().unwrap_or_default();
    let api: Api<SecretObject> = Api::namespaced(ctx.client.clone(), &ns);
    let name = endpoint_secret_name(&deployment.name_any());
    let mut data = BTreeMap::from([(URL_KEY.to_string(), ByteString(url.as_bytes().to_vec()))]);
    if let EndpointAccess::Agent { fingerprint, token } = access {
        data.insert(
            TOKEN_KEY.to_string(),
            ByteString(token.expose().as_bytes().to_vec()),
        );
        data.insert(
            CERTIFICATE_KEY.to_string(),
            ByteString(fingerprint.as_bytes().to_vec()),
        );
    }
    if let Some(server) = mcp.and_then(|m| m.server_name.as_ref()) {
        data.insert(
            SERVER_KEY.to_string(),
            ByteString(server.as_bytes().to_vec()),
        );
    }
    if ctx.deployments.secret(&ns, &name).as_ref() == Some(&data) {
        return Ok(());
    }
    if let Some(existing) = api.get_opt(&name).await?
        && existing.data.as_ref() == Some(&data)
    {
        ctx.deployments.cache_secret(&existing);
        return Ok(());
    }
    let object = SecretObject {
        metadata: owned_meta(deployment, name, "mcp-endpoint")?,
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Default::default()
    };
    let written = apply_object(&api, &object).await?;
    ctx.deployments.cache_secret(&written);
    Ok(())
}

/// The placed droplet's state, and a client of its agent when it has one.
async fn droplet_facts(
    ctx: &Context,
    deployment: &MCPDeployment,
    ns: &str,
    name: &str,
    pass: &mut PassState,
) -> Result<DropletFacts, Error> {
    pass.agent = None;
    pass.dtma = None;
    pass.dtma_endpoint = None;
    let Some(droplet) = ctx.stores.droplets.get(&ObjectRef::new(name).within(ns)) else {
        return Ok(DropletFacts::Gone);
    };
    if droplet.spec.agent.kind == AgentKind::Dtma {
        pass.dtma = Some(dtma::target(ctx, &droplet).await?);
    }
    if droplet.metadata.deletion_timestamp.is_some() {
        return Ok(DropletFacts::Deleting);
    }
    if droplet.spec.agent.kind == AgentKind::McpDropletAgent
        && let Ok(client) = ctx
            .agents
            .for_droplet(&ctx.client, &droplet, &ctx.config.agent)
            .await?
    {
        pass.agent = Some(client);
    }
    let Some(status) = droplet.status.as_ref() else {
        return Ok(DropletFacts::Starting);
    };
    Ok(match status.phase {
        DropletPhase::Ready => match droplet.spec.agent.kind {
            AgentKind::Dtma => {
                let unsupported = pass
                    .template
                    .as_ref()
                    .and_then(|t| dtma::unsupported_reason(deployment, t));
                match unsupported {
                    Some(why) => DropletFacts::Ready(AgentAccess::DtmaCannotRun(why)),
                    None => DropletFacts::Ready(AgentAccess::Dtma),
                }
            }
            AgentKind::McpDropletAgent if pass.agent.is_some() => {
                DropletFacts::Ready(AgentAccess::Reachable)
            }
            AgentKind::McpDropletAgent => DropletFacts::Ready(AgentAccess::NotEnrolled),
        },
        DropletPhase::NotReady => DropletFacts::NotReady {
            since: find(&status.conditions, super::kstatus::READY)
                .filter(|c| c.status != "True")
                .map(|c| c.last_transition_time.0),
        },
        DropletPhase::Draining => DropletFacts::Draining,
        DropletPhase::Terminating => DropletFacts::Deleting,
        DropletPhase::Failed => DropletFacts::Failed,
        DropletPhase::Pending
        | DropletPhase::Provisioning
        | DropletPhase::Booting
        | DropletPhase::Enrolling => DropletFacts::Starting,
    })
}

/// Decides and books a droplet through the ledger.
fn schedule(
    ctx: &Context,
    deployment: &MCPDeployment,
    memory: &Memory,
    pass: &PassState,
    now: jiff::Timestamp,
) -> Result<ScheduleFacts, Error> {
    let started = Instant::now();
    let key = object_key(deployment);
    let ns = deployment.namespace().unwrap_or_default();
    let templates = ctx.stores.templates.state();
    let pools = ctx.stores.pools.state();
    let droplets = ctx.stores.droplets.state();
    let deployments = ctx.stores.deployments.state();
    let objects = FleetObjects {
        templates: templates.iter().map(|t| t.as_ref()).collect(),
        pools: pools.iter().map(|p| p.as_ref()).collect(),
        droplets: droplets.iter().map(|d| d.as_ref()).collect(),
        // Only deployments placed somewhere weigh on the fleet; the waiting ones (most of a
        // burst) are not converted at every decision. One a droplet reports without a recorded
        // placement still counts there, through the droplet's reported allocation.
        deployments: deployments
            .iter()
            .filter(|d| crate::fleet::deployment::recorded_droplet(d).is_some())
            .filter(|d| object_key(d.as_ref()) != key)
            .map(|d| d.as_ref())
            .collect(),
    };
    let mut view = FleetView::build(&objects, now).map_err(|e| Error::Scheduler(e.to_string()))?;
    let pin = crate::fleet::deployment::pinned_droplet(deployment);
    // DTMA droplets take only deployments DTMA can run (decision 0023); droplets left after
    // repeated failures are not chosen again.
    let dtma_can_run = pass
        .template
        .as_ref()
        .is_some_and(|t| dtma::unsupported_reason(deployment, t).is_none());
    let dtma: Vec<String> = droplets
        .iter()
        .filter(|d| d.namespace().as_deref() == Some(ns.as_str()))
        .filter(|d| d.spec.agent.kind == AgentKind::Dtma && !dtma_can_run)
        .map(|d| d.name_any())
        .collect();
    let excluded = excluded_names(&droplets, &ns, &memory.excluded);
    view.droplets.retain(|d| {
        d.namespace != ns
            || pin.as_deref() == Some(d.name.as_str())
            || !(excluded.contains(&d.name) || dtma.contains(&d.name))
    });
    for d in &mut view.droplets {
        d.deployments.retain(|p| p.key != key);
    }
    let snapshot = view
        .snapshot()
        .map_err(|e| Error::Scheduler(e.to_string()))?;
    let template = pass.template.as_ref().map(|t| &t.spec.resources);
    let request =
        request_of(deployment, template).map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let pending =
        pending_from_api(deployment, request).map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let decision = ctx
        .ledger
        .with(|l| {
            l.forget(&key);
            l.place(&snapshot, &pending, now)
        })
        .and_then(|r| r)
        .map_err(|e| Error::Scheduler(e.to_string()))?;
    ctx.metrics
        .scheduling_duration
        .observe(started.elapsed().as_secs_f64());
    Ok(match decision {
        scheduler::Decision::Place(p) => {
            let region = snapshot
                .droplets()
                .get(p.droplet_index)
                .map(|d| d.region.clone())
                .unwrap_or_default();
            ScheduleFacts::Placed(placement_status(&p, &region))
        }
        scheduler::Decision::NoFit(n) => ScheduleFacts::NoFit {
            pinned_missing: pin.as_ref().is_some_and(|name| {
                ctx.stores
                    .droplets
                    .get(&ObjectRef::new(name).within(&ns))
                    .is_none()
            }),
            reason: n.reason,
        },
    })
}

/// The names of the droplets of namespace `ns` whose UID is in `excluded` (a droplet made
/// again under a left one's name is another droplet).
fn excluded_names(droplets: &[Arc<Droplet>], ns: &str, excluded: &[String]) -> Vec<String> {
    droplets
        .iter()
        .filter(|d| d.namespace().as_deref() == Some(ns))
        .filter(|d| {
            d.metadata
                .uid
                .as_ref()
                .is_some_and(|uid| excluded.contains(uid))
        })
        .map(|d| d.name_any())
        .collect()
}

/// Times one agent call into the `agent_call` metric.
async fn timed<T>(ctx: &Context, op: &str, call: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let out = call.await;
    ctx.metrics.agent_call(op, started.elapsed().as_secs_f64());
    out
}

async fn observe_server(
    ctx: &Context,
    deployment: &MCPDeployment,
    pass: &PassState,
) -> ServerFacts {
    let Some(agent) = pass.agent.as_ref() else {
        return ServerFacts::Unreachable("no agent client".into());
    };
    match timed(
        ctx,
        "get_server",
        agent.get_server(&server_name(deployment)),
    )
    .await
    {
        Ok(Some(status)) => server_facts(&status),
        Ok(None) => ServerFacts::Absent,
        Err(e) => ServerFacts::Unreachable(e.to_string()),
    }
}

fn server_facts(status: &ServerStatus) -> ServerFacts {
    ServerFacts::Present {
        phase: status.phase,
        reason: status.reason.clone(),
        config_hash: status.spec.labels.get(desired::CONFIG_HASH_LABEL).cloned(),
    }
}

async fn push(
    ctx: &Context,
    deployment: &MCPDeployment,
    key: &str,
    reason: PushReason,
    pass: &PassState,
    now: jiff::Timestamp,
) -> Result<ServerStatus, Error> {
    let (Some(agent), Some(spec)) = (pass.agent.as_ref(), pass.spec.as_ref()) else {
        return Err(Error::Scheduler(
            "no agent or desired server to push".into(),
        ));
    };
    let name = server_name(deployment);
    if reason == PushReason::Restart {
        timed(ctx, "delete_server", agent.delete_server(&name)).await?;
    }
    let answer = timed(ctx, "put_server", agent.put_server(&name, spec)).await?;
    // The agent accepted it: the booking no longer expires (none after an operator restart).
    let _ = ctx.ledger.confirm(key, now);
    Ok(answer.status)
}

async fn run_probe(ctx: &Context, deployment: &MCPDeployment, pass: &PassState) -> ProbeFacts {
    if pass.dtma.is_some() {
        return run_dtma_probe(ctx, pass).await;
    }
    let (Some(agent), Some(token)) = (pass.agent.as_ref(), pass.token.as_ref()) else {
        return ProbeFacts::Failed {
            reason: "AgentUnreachable".into(),
            message: "no agent client".into(),
        };
    };
    let url = agent.mcp_endpoint_url(&server_name(deployment));
    let request = crate::probe::ProbeRequest::new(url.clone())
        .token(SecretString::from(token.expose().to_string()))
        .http_client(agent.http_client().clone());
    checked(ctx, url, &request).await
}

/// Runs the MCP check `request` of endpoint `url` and turns its report into facts.
async fn checked(ctx: &Context, url: String, request: &crate::probe::ProbeRequest) -> ProbeFacts {
    match timed(ctx, "probe", crate::probe::probe(request)).await {
        Ok(report) => ProbeFacts::Passed {
            endpoint: url,
            mcp: McpStatus {
                server_name: Some(report.server_name),
                server_version: Some(report.server_version),
                protocol_version: Some(report.protocol_version),
                tools: u32::try_from(report.tools).unwrap_or(u32::MAX),
                last_probe_time: None,
            },
        },
        Err(failure) => ProbeFacts::Failed {
            reason: failure.reason.condition_reason().to_string(),
            message: failure.error,
        },
    }
}

/// The MCP check of a server on DTMA: plain HTTP on its published port, without a token.
async fn run_dtma_probe(ctx: &Context, pass: &PassState) -> ProbeFacts {
    let Some(url) = pass.dtma_endpoint.clone() else {
        return ProbeFacts::Failed {
            reason: "AgentUnreachable".into(),
            message: "DTMA was not reached in this pass".into(),
        };
    };
    let transport = match pass.template.as_ref().map(|t| t.spec.transport) {
        Some(crate::api::template::Transport::Sse) => crate::probe::McpTransport::Sse,
        _ => crate::probe::McpTransport::StreamableHttp,
    };
    let request = crate::probe::ProbeRequest::new(url.clone()).transport(transport);
    checked(ctx, url, &request).await
}

/// Leaves a droplet: the booking is forgotten and the server removed when the agent can be
/// reached (a droplet that is gone or NotReady keeps nothing the operator could remove).
async fn release(
    ctx: &Context,
    deployment: &MCPDeployment,
    key: &str,
    droplet: &str,
    observed: &Observed,
    pass: &PassState,
) {
    let _ = ctx.ledger.forget(key);
    if let Some(target) = dtma::pass::reachable(pass) {
        let callable = matches!(
            observed.droplet,
            Some(DropletFacts::Ready(_) | DropletFacts::Draining | DropletFacts::Deleting)
        );
        if callable && let Err(error) = dtma::pass::remove(ctx, &target, deployment).await {
            tracing::info!(deployment = key, droplet, %error, "could not remove the server from the DTMA droplet it leaves");
        }
        return;
    }
    let reachable = matches!(
        observed.droplet,
        Some(DropletFacts::Ready(AgentAccess::Reachable))
            | Some(DropletFacts::Draining)
            | Some(DropletFacts::Deleting)
    );
    if let (true, Some(agent)) = (reachable, pass.agent.as_ref())
        && let Err(error) = timed(
            ctx,
            "delete_server",
            agent.delete_server(&server_name(deployment)),
        )
        .await
    {
        tracing::info!(deployment = key, droplet, %error, "could not remove the server from the droplet it leaves");
    }
}

/// The finalizer: removes the server from its droplet, then lets the object go.
async fn cleanup(deployment: Arc<MCPDeployment>, ctx: &Context) -> Result<Action, Error> {
    let key = object_key(deployment.as_ref());
    let ns = deployment.namespace().unwrap_or_default();
    let placed: Option<PlacementStatus> =
        deployment.status.as_ref().and_then(|s| s.placement.clone());
    if let Some(name) = placed.and_then(|p| p.droplet) {
        let mut pass = PassState::default();
        let facts = droplet_facts(ctx, &deployment, &ns, &name, &mut pass).await?;
        let on_dtma = dtma::pass::reachable(&pass)
            .filter(|_| matches!(facts, DropletFacts::Ready(_) | DropletFacts::Draining));
        let must_remove = matches!(
            facts,
            DropletFacts::Ready(AgentAccess::Reachable) | DropletFacts::Draining
        );
        let removed = if let Some(target) = on_dtma {
            dtma::pass::remove(ctx, &target, &deployment).await?;
            true
        } else if let (true, Some(agent)) = (must_remove, pass.agent.as_ref()) {
            timed(
                ctx,
                "delete_server",
                agent.delete_server(&server_name(&deployment)),
            )
            .await?;
            true
        } else {
            false
        };
        if removed {
            let _ = ctx
                .recorder
                .publish(
                    &Event {
                        type_: EventType::Normal,
                        reason: "Removed".into(),
                        note: Some(format!("removed the server from droplet {name}")),
                        action: "Remove".into(),
                        secondary: None,
                    },
                    &deployment.object_ref(&()),
                )
                .await;
        }
    }
    let _ = ctx.ledger.forget(&key);
    if let Some(uid) = deployment.uid() {
        ctx.deployments.remember(&uid, None);
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn droplet(name: &str, uid: &str) -> Arc<Droplet> {
        let mut d = Droplet::test(name).namespace("a").build();
        d.metadata.uid = Some(uid.to_owned());
        Arc::new(d)
    }

    #[test]
    fn a_droplet_made_again_under_a_left_ones_name_is_not_excluded() {
        let left = droplet("default-1", "uid-old");
        let exclusions = vec!["uid-old".to_owned()];
        assert_eq!(
            excluded_names(&[Arc::clone(&left)], "a", &exclusions),
            ["default-1"]
        );
        assert!(excluded_names(&[left], "b", &exclusions).is_empty());
        // The pool's replacement of a lost droplet: same name, another object.
        let replacement = droplet("default-1", "uid-new");
        assert!(excluded_names(&[replacement], "a", &exclusions).is_empty());
    }

    fn api_error(code: u16) -> kube::Error {
        let mut status = kube::core::Status::failure("gone", "NotFound");
        status.code = code;
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn an_object_gone_before_its_finalizer_is_removed_is_done_other_errors_stay() {
        use kube::runtime::finalizer::Error as FinalizerError;
        let gone = finalizer_already_gone(FinalizerError::RemoveFinalizer(api_error(404)));
        assert_eq!(gone.expect("done"), Action::await_change());
        let conflict = finalizer_already_gone(FinalizerError::RemoveFinalizer(api_error(409)));
        assert_eq!(
            conflict.expect_err("a conflict is retried").metric_label(),
            "finalizer"
        );
        let own = finalizer_already_gone(FinalizerError::CleanupFailed(Error::MissingObjectKey(
            "metadata.uid",
        )));
        assert!(matches!(own, Err(Error::MissingObjectKey(_))));
    }
}
