//! The provisioner task: waits for the demand signal, batches it (until `timings.batch_idle`
//! passes without another signal, at most `timings.batch_max` after the first, in the clock's
//! time), plans purely ([`super::plan::plan_provisioning`]) and applies the plan: creates the
//! Droplet objects, records what blocks each pool for its status, and publishes events.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::Api;
use kube::Resource;
use kube::runtime::events::{Event, EventType};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio_util::sync::CancellationToken;

use super::plan::{
    BlockedDeployment, NewDropletPlan, ProvisioningInputs, ProvisioningPlan, droplet_object,
    plan_provisioning,
};
use crate::api::deployment::MCPDeployment;
use crate::api::droplet::Droplet;
use crate::api::pool::DropletPool;
use crate::controller::{Context, Error, object_key, status_writer};
use crate::fleet::FleetObjects;

/// The controller name of provisioning passes in metrics and logs.
pub const PROVISIONER: &str = "provisioner";

/// What the last plan left blocked, per pool (`namespace/name`): written by the provisioner
/// only, read by the DropletPool reconciler for the `Unschedulable` condition.
#[derive(Debug, Default)]
pub struct Outcomes {
    blocked: Mutex<BTreeMap<String, Vec<BlockedDeployment>>>,
}

impl Outcomes {
    /// The deployments of `pool` the last plan could not provision.
    pub fn blocked(&self, pool: &str) -> Vec<BlockedDeployment> {
        self.blocked
            .lock()
            .map(|b| b.get(pool).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Replaces the record with the plan's; returns the pools whose blocked reasons or
    /// deployments changed.
    fn record(&self, blocked: &[BlockedDeployment]) -> Vec<String> {
        let mut by_pool: BTreeMap<String, Vec<BlockedDeployment>> = BTreeMap::new();
        for b in blocked {
            by_pool.entry(b.pool.clone()).or_default().push(b.clone());
        }
        let Ok(mut current) = self.blocked.lock() else {
            return Vec::new();
        };
        let pools: BTreeSet<String> = current.keys().chain(by_pool.keys()).cloned().collect();
        let changed = pools
            .into_iter()
            .filter(|p| {
                let summary = |list: Option<&Vec<BlockedDeployment>>| {
                    list.map(|l| {
                        l.iter()
                            .map(|b| (b.deployment.clone(), b.reason))
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default()
                };
                summary(current.get(p)) != summary(by_pool.get(p))
            })
            .collect();
        *current = by_pool;
        changed
    }
}

/// The provisioner's memory between passes: droplets created but maybe not in the cache yet
/// (kept until the cache shows them, at most a resync interval), so a pass right after another
/// does not plan them again under other names.
#[derive(Default)]
struct Memory {
    created: HashMap<String, (Droplet, jiff::Timestamp)>,
}

/// Runs the provisioner until `shutdown`: one pass once the caches are synced (demand left
/// by a previous process), then one per batch of demand signals; a failed pass is retried
/// with backoff, and while deployments wait, the plan is checked again every `batch_max`.
pub async fn run(
    ctx: Arc<Context>,
    outcomes: Arc<Outcomes>,
    mut demand: UnboundedReceiver<()>,
    reconcile_pools: UnboundedSender<()>,
    shutdown: CancellationToken,
) {
    let synced = async {
        let _ = ctx.stores.templates.wait_until_ready().await;
        let _ = ctx.stores.pools.wait_until_ready().await;
        let _ = ctx.stores.droplets.wait_until_ready().await;
        let _ = ctx.stores.deployments.wait_until_ready().await;
    };
    tokio::select! {
        () = synced => {}
        () = shutdown.cancelled() => return,
    }
    let timings = ctx.config.timings.clone();
    let mut memory = Memory::default();
    let mut failures: u32 = 0;
    let mut next_pass: Option<Duration> = Some(Duration::ZERO);
    loop {
        let timer = {
            let clock = ctx.clock.clone();
            let wait = next_pass;
            async move {
                match wait {
                    Some(d) => clock.sleep(d).await,
                    None => std::future::pending::<()>().await,
                }
            }
        };
        tokio::select! {
            signal = demand.recv() => {
                if signal.is_none() {
                    return;
                }
            }
            () = timer => {}
            () = shutdown.cancelled() => return,
        }
        // A timed pass batches too: a burst under way when it fires is planned whole.
        if !batch_window(&ctx, &mut demand, &shutdown).await {
            return;
        }
        while demand.try_recv().is_ok() {}
        let started = Instant::now();
        let result = pass(&ctx, &outcomes, &mut memory).await;
        ctx.metrics
            .reconciled(PROVISIONER, started.elapsed().as_secs_f64());
        next_pass = match result {
            Ok(waiting) => {
                failures = 0;
                (waiting > 0).then_some(timings.batch_max)
            }
            Err(error) => {
                ctx.metrics
                    .reconcile_failed(PROVISIONER, error.metric_label());
                tracing::warn!(error = %error, "provisioning pass failed");
                let wait = crate::controller::error::requeue_after(
                    &error,
                    failures,
                    timings.error_backoff_base,
                    timings.error_backoff_max,
                );
                failures = failures.saturating_add(1);
                Some(wait)
            }
        };
        let _ = reconcile_pools.send(());
    }
}

/// When a batch whose first signal came at `first` and last at `last` is planned: `idle`
/// after the last signal, at most `max` after the first.
pub fn batch_ends_at(
    first: jiff::Timestamp,
    last: jiff::Timestamp,
    idle: Duration,
    max: Duration,
) -> jiff::Timestamp {
    clock::add(last, idle).min(clock::add(first, max))
}

/// Collects further signals until none came for `batch_idle`, or `batch_max` after the
/// first (see [`batch_ends_at`]); false when shutting down.
async fn batch_window(
    ctx: &Context,
    demand: &mut UnboundedReceiver<()>,
    shutdown: &CancellationToken,
) -> bool {
    let timings = &ctx.config.timings;
    let first = ctx.now();
    let mut last = first;
    loop {
        let ends = batch_ends_at(first, last, timings.batch_idle, timings.batch_max);
        let left = clock::elapsed(ctx.now(), ends);
        if left.is_zero() {
            return true;
        }
        tokio::select! {
            signal = demand.recv() => {
                if signal.is_none() {
                    return true;
                }
                last = ctx.now();
            }
            () = ctx.clock.sleep(left) => return true,
            () = shutdown.cancelled() => return false,
        }
    }
}

/// One pass: plan from the caches, create the new droplets, record what is blocked. Returns
/// how many deployments wait (planned onto something not Ready yet, or blocked).
async fn pass(ctx: &Context, outcomes: &Outcomes, memory: &mut Memory) -> Result<usize, Error> {
    let now = ctx.now();
    let templates = ctx.stores.templates.state();
    let pools = ctx.stores.pools.state();
    let mut droplets = ctx.stores.droplets.state();
    let deployments = ctx.stores.deployments.state();
    // Droplets just created and not in the cache yet count as they were applied.
    let cached: BTreeSet<String> = droplets.iter().map(|d| object_key(d.as_ref())).collect();
    memory.created.retain(|key, (_, at)| {
        !cached.contains(key)
            && now.duration_since(*at).unsigned_abs() < ctx.config.timings.resync_interval
    });
    droplets.extend(memory.created.values().map(|(d, _)| Arc::new(d.clone())));
    let (ledger_usage, ledger_booked) = ctx
        .ledger
        .with(|ledger| {
            let usage = droplets
                .iter()
                .filter_map(|d| {
                    let key = object_key(d.as_ref());
                    ledger.used(&key).map(|used| (key, used))
                })
                .collect::<HashMap<_, _>>();
            let booked = ledger
                .bookings()
                .map(|(key, _)| key.clone())
                .collect::<HashSet<_>>();
            (usage, booked)
        })
        .unwrap_or_default();
    let inputs = ProvisioningInputs {
        objects: FleetObjects {
            templates: templates.iter().map(|t| t.as_ref()).collect(),
            pools: pools.iter().map(|p| p.as_ref()).collect(),
            droplets: droplets.iter().map(|d| d.as_ref()).collect(),
            deployments: deployments.iter().map(|d| d.as_ref()).collect(),
        },
        ledger_usage,
        ledger_booked,
        default_regions: ctx.config.default_regions.clone(),
        default_sizes: ctx.config.default_sizes.clone(),
    };
    let plan = plan_provisioning(&inputs, now).map_err(|e| Error::Scheduler(e.to_string()))?;
    if !plan.waiting.is_empty() {
        tracing::debug!(
            waiting = plan.waiting.len(),
            reserved = plan.reserved.len(),
            onto_in_flight = plan.onto_in_flight.len(),
            onto_ready = plan.onto_ready.len(),
            create = plan.create.len(),
            blocked = plan.blocked.len(),
            "provisioning plan"
        );
    }
    for not_planned in &plan.not_planned {
        tracing::debug!(deployment = %not_planned.deployment, reason = %not_planned.reason,
            "waiting deployment not planned");
    }
    let pools_by_key: HashMap<String, &DropletPool> = pools
        .iter()
        .map(|p| (object_key(p.as_ref()), p.as_ref()))
        .collect();
    for new in &plan.create {
        let pool_key = format!("{}/{}", new.namespace, new.pool);
        let pool = pools_by_key.get(&pool_key).copied();
        create_droplet(ctx, new, pool, memory, now).await?;
    }
    let changed = outcomes.record(&plan.blocked);
    publish_blocked(ctx, &plan, &changed, &pools_by_key, &deployments).await;
    Ok(waiting_count(&plan))
}

/// Deployments that still wait for something this controller does.
fn waiting_count(plan: &ProvisioningPlan) -> usize {
    plan.reserved.len() + plan.onto_in_flight.len() + plan.create.len() + plan.blocked.len()
}

/// Applies one new Droplet object (owned by its DropletPool when there is one) and says so.
async fn create_droplet(
    ctx: &Context,
    new: &NewDropletPlan,
    pool: Option<&DropletPool>,
    memory: &mut Memory,
    now: jiff::Timestamp,
) -> Result<(), Error> {
    let owner = pool.and_then(|p| p.controller_owner_ref(&()));
    let object = droplet_object(new, owner);
    let api: Api<Droplet> = Api::namespaced(ctx.client.clone(), &new.namespace);
    let applied = status_writer::apply_object(&api, &object).await?;
    memory
        .created
        .insert(object_key(&applied), (applied.clone(), now));
    tracing::info!(droplet = %object_key(&applied), size = %new.size, region = %new.region,
        deployments = new.deployments.len(), "droplet created for waiting deployments");
    let note = format!(
        "Droplet {} ({} in {}, {:.2} USD/month) for {} deployment(s): {}",
        new.name,
        new.size,
        new.region,
        new.monthly_usd,
        new.deployments.len(),
        short_list(&new.deployments)
    );
    let regarding = match pool {
        Some(p) => p.object_ref(&()),
        None => applied.object_ref(&()),
    };
    publish(
        ctx,
        EventType::Normal,
        "DropletCreated",
        note,
        "Provision",
        &regarding,
    )
    .await;
    Ok(())
}

/// Warnings for pools whose blocked deployments changed: on the DropletPool, or on each
/// blocked deployment (at most ten) of a namespace's default pool.
async fn publish_blocked(
    ctx: &Context,
    plan: &ProvisioningPlan,
    changed: &[String],
    pools: &HashMap<String, &DropletPool>,
    deployments: &[Arc<MCPDeployment>],
) {
    for pool_key in changed {
        let blocked: Vec<BlockedDeployment> = plan
            .blocked
            .iter()
            .filter(|b| &b.pool == pool_key)
            .cloned()
            .collect();
        if blocked.is_empty() {
            continue;
        }
        let note = super::status::unschedulable_message(&blocked);
        let reason = blocked[0].reason;
        match pools.get(pool_key) {
            Some(pool) => {
                publish(
                    ctx,
                    EventType::Warning,
                    reason,
                    note,
                    "Provision",
                    &pool.object_ref(&()),
                )
                .await;
            }
            None => {
                for b in blocked.iter().take(10) {
                    let Some(dep) = deployments
                        .iter()
                        .find(|d| object_key(d.as_ref()) == b.deployment)
                    else {
                        continue;
                    };
                    publish(
                        ctx,
                        EventType::Warning,
                        b.reason,
                        b.message.clone(),
                        "Provision",
                        &dep.object_ref(&()),
                    )
                    .await;
                }
            }
        }
    }
}

async fn publish(
    ctx: &Context,
    type_: EventType,
    reason: &str,
    note: String,
    action: &str,
    regarding: &k8s_openapi::api::core::v1::ObjectReference,
) {
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: action.to_string(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, regarding).await {
        tracing::debug!(error = %error, "event not published");
    }
}

/// "a, b, c (and 4 more)" of `namespace/name` keys, by name.
fn short_list(keys: &[String]) -> String {
    let names: Vec<&str> = keys
        .iter()
        .take(10)
        .map(|k| k.rsplit('/').next().unwrap_or(k))
        .collect();
    let more = keys.len().saturating_sub(10);
    if more > 0 {
        format!("{} (and {more} more)", names.join(", "))
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_millisecond(1_800_000_000_000 + ms).unwrap()
    }

    #[test]
    fn a_batch_ends_when_quiet_for_the_idle_time_or_at_the_maximum() {
        let idle = Duration::from_secs(1);
        let max = Duration::from_secs(10);
        // (first signal, last signal, planned at), in ms.
        let cases = [
            (0, 0, 1_000),      // one signal: 1 s later
            (0, 700, 1_700),    // another within the idle time extends it
            (0, 9_500, 10_000), // signals keep coming: 10 s after the first at most
            (0, 12_000, 10_000),
        ];
        for (first, last, planned) in cases {
            assert_eq!(
                batch_ends_at(at(first), at(last), idle, max),
                at(planned),
                "first {first}, last {last}"
            );
        }
    }
}
