//! The DropletPool controller and the provisioner.
//!
//! - [`provisioner`]: a task that batches the demand signal of the deployment controller
//!   (deployments in phase Provisioning: nothing fits them), plans purely ([`plan`]) and
//!   creates Droplet objects within the pools' limits;
//! - the reconciler: each DropletPool's status ([`status`]): droplets, capacity, allocation,
//!   utilization and monthly cost from its Droplets, kstatus conditions, and `Unschedulable`
//!   naming the limit that blocks. Reconciled when the pool or one of its droplets changes,
//!   after every provisioning pass, and every `resync_interval`.
//!
//! See docs/controllers.md, "DropletPool and provisioning".

pub mod plan;
pub mod provisioner;
pub mod status;

use std::collections::HashSet;
use std::sync::Arc;

use super::Watched;
use futures::StreamExt;
use kube::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

use super::{
    Context, Error, PassTarget, backoff_action, drain, instrumented, object_key, scoped_api,
    status_writer,
};
use crate::api::droplet::Droplet;
use crate::api::pool::DropletPool;
use crate::fleet::{namespace_of, pool_from_api};
use plan::{pool_of_droplet, waits_for_droplet};
use provisioner::Outcomes;

/// The controller's name in metrics and logs.
pub const NAME: &str = "dropletpool";

/// What the reconciler works with: the shared context and the provisioner's outcomes.
struct PoolContext {
    ctx: Arc<Context>,
    outcomes: Arc<Outcomes>,
}

async fn reconcile(pool: Arc<DropletPool>, pctx: Arc<PoolContext>) -> Result<Action, Error> {
    let ctx = &pctx.ctx;
    let key = object_key(pool.as_ref());
    instrumented(NAME, ctx, PassTarget::of(pool.as_ref()), async {
        if pool.metadata.deletion_timestamp.is_some() {
            return Ok(Action::await_change());
        }
        let namespace = namespace_of(&pool.metadata);
        let droplets: Vec<Arc<Droplet>> = ctx
            .stores
            .droplets
            .state()
            .into_iter()
            .filter(|d| pool_of_droplet(d).as_deref() == Some(key.as_str()))
            .collect();
        let droplet_refs: Vec<&Droplet> = droplets.iter().map(|d| d.as_ref()).collect();
        // Only deployments still waiting count: the record is from the last plan.
        let waiting: HashSet<String> = ctx
            .stores
            .deployments
            .state()
            .iter()
            .filter(|d| namespace_of(&d.metadata) == namespace && waits_for_droplet(d))
            .map(|d| object_key(d.as_ref()))
            .collect();
        let blocked: Vec<_> = pctx
            .outcomes
            .blocked(&key)
            .into_iter()
            .filter(|b| waiting.contains(&b.deployment))
            .collect();
        let spec_error = pool_from_api(&pool).err().map(|e| e.to_string());
        let desired = status::pool_status(
            &pool,
            &droplet_refs,
            &blocked,
            spec_error.as_deref(),
            ctx.now(),
        );
        // A new or changed spec (a raised limit, another size) may unblock waiting
        // deployments of its namespace: plan again.
        let observed = pool.status.as_ref().and_then(|s| s.observed_generation);
        if observed != pool.metadata.generation && !waiting.is_empty() {
            let _ = ctx.demand.send(());
        }
        let api: Api<DropletPool> = Api::namespaced(ctx.client.clone(), &namespace);
        if status_writer::apply_status(&api, pool.as_ref(), pool.status.as_ref(), &desired).await? {
            ctx.metrics.status_written(NAME);
        }
        Ok(ctx.requeue(ctx.config.timings.resync_interval))
    })
    .await
}

fn error_policy(pool: Arc<DropletPool>, error: &Error, pctx: Arc<PoolContext>) -> Action {
    backoff_action(&pctx.ctx, NAME, object_key(pool.as_ref()), error)
}

/// The DropletPool a droplet belongs to (`spec.pool` or its pool label), for the watch.
fn pool_of(droplet: Droplet) -> Option<ObjectRef<DropletPool>> {
    let key = pool_of_droplet(&droplet)?;
    let (namespace, name) = key.split_once('/')?;
    Some(ObjectRef::new(name).within(namespace))
}

/// Runs the controller and the provisioner until `shutdown`; `demand` is the deployment
/// controller's signal that deployments wait for a droplet.
pub async fn run(
    controller: Watched<DropletPool>,
    demand: UnboundedReceiver<()>,
    ctx: Arc<Context>,
    shutdown: CancellationToken,
) {
    let outcomes = Arc::new(Outcomes::default());
    let (after_pass_tx, after_pass_rx) = tokio::sync::mpsc::unbounded_channel();
    let provisioner = provisioner::run(
        Arc::clone(&ctx),
        Arc::clone(&outcomes),
        demand,
        after_pass_tx,
        shutdown.clone(),
    );
    let after_pass = tokio_stream::wrappers::UnboundedReceiverStream::new(after_pass_rx);
    let droplets = scoped_api::<Droplet>(&ctx.client, &ctx.config.scope);
    let stream = controller
        .watches(droplets, pool_of)
        .reconcile_all_on(after_pass.map(|()| ()))
        .run(
            reconcile,
            error_policy,
            Arc::new(PoolContext {
                ctx: Arc::clone(&ctx),
                outcomes,
            }),
            shutdown,
        );
    tokio::join!(provisioner, drain(NAME, stream));
}
