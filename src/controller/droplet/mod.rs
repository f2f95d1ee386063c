//! The Droplet controller: observe → plan (pure, [`plan`]) → apply → report.
//!
//! A pass starts from the status the object has, asks [`plan::plan`] for the next step, takes
//! it (store the enrolment token, the crash-safe create, a GET, enrol or poll the agent, drain,
//! delete or release the cloud droplet), feeds what it observed back into the plan, and ends by
//! applying the whole status when it changed. The periodic orphan sweep runs beside the
//! controller ([`sweep`]). See docs/controllers.md, section "Droplet".

pub mod agent;
pub mod cloud_view;
pub mod intent_store;
pub mod plan;
pub mod sweep;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::Watched;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret as SecretObject;
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use scheduler::Resources;
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

use self::cloud_view::CloudView;
use self::intent_store::AnnotationIntentStore;
use self::plan::{AgentObservation, CloudFacts, CloudObservation, Observed, PlanTiming, Step};
use super::agent_access::managed_labels;
use super::status_writer::{apply_object, apply_status};
use super::{
    Context, Error, FIELD_MANAGER, PassTarget, backoff_action, drain, instrumented, object_key,
    scoped_api,
};
use crate::api::deployment::MCPDeployment;
use crate::api::droplet::{Droplet, DropletPhase, DropletStatus};
use crate::cloud::CloudError;
use crate::cloud::bootstrap::{new_enrolment_token, render_user_data};
use crate::cloud::droplet_creation::{
    CreationRequest, CreationTiming, EnsureOutcome, ensure_droplet,
};
use crate::cloud::droplet_tags::{cluster_tag, droplet_name, owner_tag};
use crate::cloud::models::{Droplet as CloudDroplet, DropletCreateRequest};

/// The controller's name in metrics and logs.
pub const NAME: &str = "droplet";

/// The finalizer that drains a droplet and deletes (or releases) its cloud droplet.
pub const FINALIZER: &str = "mcp.agentopia.io/droplet";

/// Key of the single-use enrolment token in its Secret.
pub const ENROLMENT_TOKEN_KEY: &str = "token";

/// The image a droplet is created from when neither the Droplet nor its pool names one.
pub const DEFAULT_IMAGE: &str = "ubuntu-24-04-x64";

/// The most steps one pass takes before it writes status and requeues.
const MAX_STEPS_PER_PASS: usize = 8;

/// Name of the Secret holding a droplet's single-use enrolment token: written by the operator
/// (owned by the Droplet) before the create, or by a person adopting a droplet.
pub fn enrolment_token_secret_name(droplet: &str) -> String {
    format!("{droplet}-enrolment-token")
}

async fn reconcile(
    object: Arc<Droplet>,
    ctx: Arc<Context>,
    view: Arc<CloudView>,
) -> Result<Action, Error> {
    let target = PassTarget::of(object.as_ref());
    instrumented(NAME, &ctx, target, async {
        let deleting = object.metadata.deletion_timestamp.is_some();
        let (namespace, name) = (object.namespace(), object.name_any());
        match reconcile_droplet(object, &ctx, &view).await {
            Err(Error::Kube(kube::Error::Api(status))) if deleting && status.code == 404 => {
                // A pass from a cache that had not yet seen the previous pass remove the
                // finalizer: when the object is gone, its deletion is done, not failed.
                let api: Api<Droplet> =
                    Api::namespaced(ctx.client.clone(), namespace.as_deref().unwrap_or_default());
                match api.get_opt(&name).await? {
                    None => Ok(Action::await_change()),
                    Some(_) => Err(Error::Kube(kube::Error::Api(status))),
                }
            }
            other => other,
        }
    })
    .await
}

fn error_policy(object: Arc<Droplet>, error: &Error, ctx: Arc<Context>) -> Action {
    backoff_action(&ctx, NAME, object_key(object.as_ref()), error)
}

/// Runs the controller (woken also by MCPDeployments placed on or pinned to a droplet) and
/// the orphan sweep until `shutdown`.
pub async fn run(controller: Watched<Droplet>, ctx: Arc<Context>, shutdown: CancellationToken) {
    let deployments = scoped_api::<MCPDeployment>(&ctx.client, &ctx.config.scope);
    let view = Arc::new(CloudView::default());
    let stream = controller.watches(deployments, droplets_of_deployment).run(
        move |object, ctx| reconcile(object, ctx, Arc::clone(&view)),
        error_policy,
        Arc::clone(&ctx),
        shutdown.clone(),
    );
    tokio::join!(
        drain(NAME, stream),
        sweep::run(Arc::clone(&ctx), shutdown.clone())
    );
}

/// The droplets a deployment concerns: the one its placement names and the one it is pinned to.
fn droplets_of_deployment(deployment: MCPDeployment) -> Vec<ObjectRef<Droplet>> {
    let namespace = deployment.namespace().unwrap_or_default();
    let placed = crate::fleet::deployment::recorded_droplet(&deployment);
    let pinned = crate::fleet::deployment::pinned_droplet(&deployment);
    let mut refs: Vec<ObjectRef<Droplet>> = placed
        .into_iter()
        .chain(pinned)
        .map(|name| ObjectRef::new(&name).within(&namespace))
        .collect();
    refs.dedup();
    refs
}

/// The deployments whose `status.placement.droplet` names `droplet` (sorted `namespace/name`)
/// and the sum of their requests (template resources overridden by the deployment's).
fn placements(ctx: &Context, namespace: &str, droplet: &str) -> (Vec<String>, Resources) {
    let mut keys = Vec::new();
    let mut allocated = Resources::ZERO;
    for deployment in ctx.stores.deployments.state() {
        if deployment.namespace().as_deref() != Some(namespace)
            || crate::fleet::deployment::recorded_droplet(&deployment).as_deref() != Some(droplet)
        {
            continue;
        }
        let template = ctx
            .stores
            .templates
            .get(&ObjectRef::new(&deployment.spec.template_ref.name));
        let request =
            crate::fleet::request_of(&deployment, template.as_ref().map(|t| &t.spec.resources))
                .unwrap_or(Resources::ZERO);
        allocated = allocated.plus(request);
        keys.push(format!("{namespace}/{}", deployment.name_any()));
    }
    keys.sort();
    (keys, allocated)
}

fn timing_of(ctx: &Context) -> PlanTiming {
    let t = &ctx.config.timings;
    PlanTiming::from_heartbeat(
        t.heartbeat_interval,
        t.not_ready_after_failures,
        t.resync_interval,
    )
}

async fn reconcile_droplet(
    droplet: Arc<Droplet>,
    ctx: &Context,
    view: &CloudView,
) -> Result<Action, Error> {
    let namespace = droplet
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let name = droplet.name_any();
    let uid = droplet
        .uid()
        .ok_or(Error::MissingObjectKey("metadata.uid"))?;
    let api: Api<Droplet> = Api::namespaced(ctx.client.clone(), &namespace);
    let deleting = droplet.metadata.deletion_timestamp.is_some();
    let has_finalizer = droplet.finalizers().iter().any(|f| f == FINALIZER);
    if deleting && !has_finalizer {
        return Ok(Action::await_change());
    }
    if !has_finalizer {
        add_finalizer(&api, &droplet).await?;
    }
    let (placed, allocated) = placements(ctx, &namespace, &name);
    let mut observed = Observed {
        generation: droplet.metadata.generation,
        deleting,
        enrolment_token_stored: false,
        provisioned: droplet
            .annotations()
            .contains_key(crate::controller::pool::plan::PROVISIONED_FOR_ANNOTATION),
        cloud: CloudObservation::NotObserved,
        agent: AgentObservation::NotContacted,
        cloud_cleaned_up: false,
        placed,
        allocated,
        timing: timing_of(ctx),
    };
    let base = droplet.status.clone();
    let mut written = droplet.status.clone();
    let first_pass = base
        .as_ref()
        .is_none_or(|s| s.phase == DropletPhase::Pending);
    let mut just_created = false;
    for _ in 0..MAX_STEPS_PER_PASS {
        let now = ctx.now();
        let planned = plan::plan(&droplet.spec, base.as_ref(), &observed, now);
        let finished = matches!(planned.step, Step::Done | Step::Drain);
        // Besides the end of a pass, three intermediate states are written: Provisioning
        // before the first create, the droplet id at once after the create answered, and each
        // step of a deletion. Nothing else, so a pass that ends where it started writes nothing.
        let intermediate = deleting
            || just_created
            || planned.step == Step::DeleteObject
            || (first_pass && planned.step == Step::EnsureDroplet);
        if finished || intermediate {
            write_status(ctx, &api, &droplet, &mut written, &planned.status).await?;
        }
        just_created = false;
        if finished {
            let was_ready = base
                .as_ref()
                .is_some_and(|s| s.phase == DropletPhase::Ready);
            if planned.status.phase == DropletPhase::Ready
                && !was_ready
                && droplet.spec.adopt.is_none()
            {
                forget_enrolment_token(ctx, &droplet).await?;
            }
            return Ok(ctx.requeue(planned.requeue_after));
        }
        match planned.step {
            Step::StoreEnrolmentToken => {
                store_enrolment_token(ctx, &droplet).await?;
                observed.enrolment_token_stored = true;
            }
            Step::EnsureDroplet => {
                observed.cloud = ensure(ctx, &api, &droplet, &uid).await?;
                just_created = matches!(observed.cloud, CloudObservation::Found(_));
            }
            Step::LookUpDroplet { id } => {
                // A droplet on its way up is read from the shared list; one that stopped
                // answering (or is not in the list) by its own GET.
                let booting = !plan::is_enrolled(&droplet.spec, base.as_ref());
                observed.cloud = look_up(ctx, view, id, booting).await?;
            }
            Step::ContactAgent => {
                let facts = match &observed.cloud {
                    CloudObservation::Found(facts) => Some(facts.clone()),
                    _ => None,
                };
                observed.agent = agent::contact(ctx, &droplet, facts.as_ref()).await?;
            }
            Step::DeleteCloudDroplet { id } => {
                delete_cloud_droplet(ctx, id, &uid).await?;
                observed.cloud_cleaned_up = true;
            }
            Step::ReleaseCloudDroplet { id } => {
                release_cloud_droplet(ctx, id, &uid).await?;
                observed.cloud_cleaned_up = true;
            }
            Step::DeleteObject => {
                tracing::warn!(droplet = %name, "the cloud droplet is gone: deleting the pool droplet's object");
                match api.delete(&name, &Default::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(status)) if status.code == 404 => {}
                    Err(other) => return Err(other.into()),
                }
                return Ok(Action::await_change());
            }
            Step::RemoveFinalizer => {
                remove_finalizer(&api, &droplet).await?;
                ctx.agents.forget(&namespace, &name);
                return Ok(Action::await_change());
            }
            Step::Done | Step::Drain => {}
        }
    }
    Ok(ctx.requeue(ctx.config.timings.heartbeat_interval))
}

/// Applies `desired` when it differs from what was last written, with an Event when the phase
/// changes.
async fn write_status(
    ctx: &Context,
    api: &Api<Droplet>,
    droplet: &Droplet,
    written: &mut Option<DropletStatus>,
    desired: &DropletStatus,
) -> Result<(), Error> {
    if !apply_status(api, droplet, written.as_ref(), desired).await? {
        return Ok(());
    }
    ctx.metrics.status_written(NAME);
    let before = written.as_ref().map(|s| s.phase).unwrap_or_default();
    *written = Some(desired.clone());
    if before != desired.phase {
        publish_phase_event(ctx, droplet, before, desired).await;
    }
    Ok(())
}

async fn publish_phase_event(
    ctx: &Context,
    droplet: &Droplet,
    before: DropletPhase,
    status: &DropletStatus,
) {
    let type_ = match status.phase {
        DropletPhase::NotReady | DropletPhase::Failed => EventType::Warning,
        _ => EventType::Normal,
    };
    let message = crate::api::conditions::find(&status.conditions, super::kstatus::READY)
        .map(|c| c.message.clone())
        .unwrap_or_default();
    let note = format!("{before:?} → {:?}: {message}", status.phase);
    let event = Event {
        type_,
        reason: format!("{:?}", status.phase),
        note: Some(note.chars().take(1000).collect()),
        action: "PhaseChange".to_string(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &droplet.object_ref(&())).await {
        tracing::debug!(%error, droplet = %droplet.name_any(), "could not publish an event");
    }
}

async fn add_finalizer(api: &Api<Droplet>, droplet: &Droplet) -> Result<(), Error> {
    let mut finalizers = droplet.finalizers().to_vec();
    finalizers.push(FINALIZER.to_string());
    let body = serde_json::json!({
        "metadata": {
            "finalizers": finalizers,
            "resourceVersion": droplet.resource_version(),
        }
    });
    api.patch(&droplet.name_any(), &merge_params(), &Patch::Merge(&body))
        .await?;
    Ok(())
}

async fn remove_finalizer(api: &Api<Droplet>, droplet: &Droplet) -> Result<(), Error> {
    // Read fresh: the cached object may predate another controller's finalizer change.
    let Some(current) = api.get_opt(&droplet.name_any()).await? else {
        return Ok(());
    };
    let finalizers: Vec<String> = current
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    let body = serde_json::json!({
        "metadata": {
            "finalizers": finalizers,
            "resourceVersion": current.resource_version(),
        }
    });
    match api
        .patch(&droplet.name_any(), &merge_params(), &Patch::Merge(&body))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(other) => Err(other.into()),
    }
}

fn merge_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    }
}

fn secrets_api(ctx: &Context, droplet: &Droplet) -> Result<Api<SecretObject>, Error> {
    let namespace = droplet
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    Ok(Api::namespaced(ctx.client.clone(), &namespace))
}

/// Reads one key of a Secret; `None` when the Secret or the key is missing or empty.
pub(crate) async fn read_secret_key(
    secrets: &Api<SecretObject>,
    name: &str,
    key: &str,
) -> Result<Option<SecretString>, Error> {
    let Some(secret) = secrets.get_opt(name).await? else {
        return Ok(None);
    };
    let from_data = secret
        .data
        .and_then(|mut d| d.remove(key))
        .and_then(|b| String::from_utf8(b.0).ok());
    let from_string = secret.string_data.and_then(|mut d| d.remove(key));
    Ok(from_data
        .or(from_string)
        .filter(|s| !s.is_empty())
        .map(SecretString::from))
}

/// Makes sure the droplet's enrolment-token Secret exists (owned by the Droplet), generating a
/// fresh single-use token when it does not. Runs before every create, so a restarted operator
/// finds the token the droplet was created with.
async fn store_enrolment_token(ctx: &Context, droplet: &Droplet) -> Result<(), Error> {
    let secrets = secrets_api(ctx, droplet)?;
    let name = enrolment_token_secret_name(&droplet.name_any());
    if read_secret_key(&secrets, &name, ENROLMENT_TOKEN_KEY)
        .await?
        .is_some()
    {
        return Ok(());
    }
    let owner = droplet
        .controller_owner_ref(&())
        .ok_or(Error::MissingObjectKey("metadata.uid"))?;
    let token = new_enrolment_token(&mut rand::rng());
    let secret = SecretObject {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: droplet.namespace(),
            labels: Some(managed_labels("enrolment-token")),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        type_: Some("Opaque".to_string()),
        data: Some(BTreeMap::from([(
            ENROLMENT_TOKEN_KEY.to_string(),
            ByteString(token.expose_secret().as_bytes().to_vec()),
        )])),
        ..Default::default()
    };
    apply_object(&secrets, &secret).await?;
    Ok(())
}

/// Deletes the enrolment-token Secret of a droplet the operator created, once the agent is
/// enrolled: the token is spent, and a Secret that is not needed is not kept. (A person's
/// Secret for an adopted droplet is left alone.)
async fn forget_enrolment_token(ctx: &Context, droplet: &Droplet) -> Result<(), Error> {
    let secrets = secrets_api(ctx, droplet)?;
    let name = enrolment_token_secret_name(&droplet.name_any());
    match secrets.delete(&name, &Default::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(other) => Err(other.into()),
    }
}

/// The cloud facts the plan needs from a DigitalOcean droplet.
pub fn facts_of(droplet: &CloudDroplet) -> CloudFacts {
    CloudFacts {
        id: i64::try_from(droplet.id).unwrap_or(i64::MAX),
        active: droplet.is_ready(),
        public_ipv4: droplet.public_ipv4().map(|ip| ip.to_string()),
        private_ipv4: droplet.private_ipv4().map(|ip| ip.to_string()),
        region: droplet.region_slug().to_string(),
        size: droplet.size_slug.clone(),
        vcpus: droplet.vcpus,
        memory_mb: droplet.memory,
        disk_gb: droplet.disk,
    }
}

fn cloud_id(id: i64) -> Result<u64, Error> {
    u64::try_from(id).map_err(|_| Error::InvalidSpec(format!("droplet id {id} is not positive")))
}

/// The crash-safe create (`cloud::droplet_creation::ensure_droplet`) with the intent kept in the
/// Droplet's annotations and the cloud-init carrying the stored enrolment token.
async fn ensure(
    ctx: &Context,
    api: &Api<Droplet>,
    droplet: &Droplet,
    uid: &str,
) -> Result<CloudObservation, Error> {
    let namespace = droplet.namespace().unwrap_or_default();
    let name = droplet.name_any();
    let secrets = secrets_api(ctx, droplet)?;
    let token_name = enrolment_token_secret_name(&name);
    let token = read_secret_key(&secrets, &token_name, ENROLMENT_TOKEN_KEY)
        .await?
        .ok_or_else(|| Error::SecretMissing {
            namespace: namespace.clone(),
            name: token_name,
            key: ENROLMENT_TOKEN_KEY.to_string(),
        })?;
    let (Some(region), Some(size)) = (droplet.spec.region.clone(), droplet.spec.size.clone())
    else {
        return Err(Error::InvalidSpec(
            "spec.region and spec.size are required to create a droplet".into(),
        ));
    };
    let pool = droplet.spec.pool.as_ref().and_then(|pool| {
        ctx.stores
            .pools
            .get(&ObjectRef::new(pool).within(&namespace))
    });
    let cloud_name = droplet_name(&namespace, &name, uid);
    let user_data = render_user_data(&cloud_name, &token, &ctx.config.bootstrap)
        .map_err(|e| Error::InvalidSpec(format!("cloud-init: {e}")))?;
    let create = DropletCreateRequest {
        name: cloud_name,
        region,
        size,
        image: droplet
            .spec
            .image
            .clone()
            .or_else(|| pool.as_ref().and_then(|p| p.spec.image.clone()))
            .unwrap_or_else(|| DEFAULT_IMAGE.to_string()),
        ssh_keys: pool
            .as_ref()
            .map(|p| p.spec.ssh_keys.clone())
            .unwrap_or_default(),
        ipv6: false,
        monitoring: true,
        tags: pool
            .as_ref()
            .map(|p| p.spec.tags.clone())
            .unwrap_or_default(),
        user_data: Some(user_data),
        vpc_uuid: pool
            .as_ref()
            .and_then(|p| p.spec.vpc_uuid.clone())
            .filter(|v| !v.is_empty()),
    };
    let request = CreationRequest {
        owner_uid: uid.to_string(),
        cluster_id: ctx.config.cluster_id.clone(),
        create,
        timing: CreationTiming::default(),
    };
    let store = AnnotationIntentStore::new(api.clone(), &name, uid);
    let outcome = ensure_droplet(&ctx.cloud, &store, &request)
        .await
        .map_err(rate_limit_first)?;
    Ok(match outcome {
        EnsureOutcome::Created(d) => {
            tracing::info!(droplet = %name, id = d.id, "created a DigitalOcean droplet");
            CloudObservation::Found(facts_of(&d))
        }
        EnsureOutcome::Existing {
            droplet: d,
            deleted_duplicates,
        }
        | EnsureOutcome::Adopted {
            droplet: d,
            deleted_duplicates,
        } => {
            if !deleted_duplicates.is_empty() {
                tracing::warn!(droplet = %name, ?deleted_duplicates, "deleted duplicate droplets");
            }
            CloudObservation::Found(facts_of(&d))
        }
        EnsureOutcome::Pending { retry_after } => CloudObservation::Pending { retry_after },
    })
}

/// A creation error whose cause is a rate limit becomes `RateLimited`, so the pass requeues
/// after DigitalOcean's hint.
fn rate_limit_first(error: crate::cloud::droplet_creation::CreationError) -> Error {
    let error = Error::Creation(error);
    match error.retry_after() {
        Some(retry_after) => Error::RateLimited { retry_after },
        None => error,
    }
}

/// The droplet by id: from the shared list when `from_list` and it shows it, else by GET
/// (found, or gone on 404).
async fn look_up(
    ctx: &Context,
    view: &CloudView,
    id: i64,
    from_list: bool,
) -> Result<CloudObservation, Error> {
    let cloud_id = cloud_id(id)?;
    if from_list
        && let Some(listed) = view
            .find(&ctx.cloud, &cluster_tag(&ctx.config.cluster_id), cloud_id)
            .await?
    {
        return Ok(CloudObservation::Found(facts_of(&listed)));
    }
    match ctx.cloud.get_droplet(cloud_id).await {
        Ok(d) => Ok(CloudObservation::Found(facts_of(&d))),
        Err(CloudError::NotFound(_)) => Ok(CloudObservation::Gone { id }),
        Err(other) => Err(other.into()),
    }
}

/// Deletes the cloud droplet (a 404 is done) and any droplet carrying the owner tag (one a
/// crash may have left behind).
async fn delete_cloud_droplet(ctx: &Context, id: Option<i64>, uid: &str) -> Result<(), Error> {
    if let Some(id) = id {
        let outcome = ctx.cloud.delete_droplet(cloud_id(id)?).await?;
        tracing::info!(id, ?outcome, "deleted the DigitalOcean droplet");
    }
    match ctx.cloud.delete_droplets_by_tag(&owner_tag(uid)).await {
        Ok(()) | Err(CloudError::NotFound(_)) => Ok(()),
        Err(other) => Err(other.into()),
    }
}

/// Under `Retain`: removes the operator's owner and cluster tags so the orphan sweep never
/// deletes the droplet that is kept.
async fn release_cloud_droplet(ctx: &Context, id: Option<i64>, uid: &str) -> Result<(), Error> {
    let Some(id) = id else {
        return Ok(());
    };
    let id = cloud_id(id)?;
    for tag in [owner_tag(uid), cluster_tag(&ctx.config.cluster_id)] {
        match ctx.cloud.untag_droplet(id, &tag).await {
            Ok(()) | Err(CloudError::NotFound(_)) => {}
            Err(other) => return Err(other.into()),
        }
    }
    Ok(())
}

/// How long a call to an agent may take in all, retries included (real time).
pub(crate) const AGENT_PASS_DEADLINE: Duration = Duration::from_secs(60);
