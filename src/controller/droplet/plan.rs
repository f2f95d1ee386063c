//! The Droplet state machine, pure: from the spec, the last status and what this pass has
//! observed so far, the next step to take and the whole status to report.
//!
//! Pending → Provisioning (enrolment token stored, then the crash-safe create) → Booting (created,
//! not yet active with an address) → Enrolling (active; the agent is enrolled with a credential
//! stored before the POST) → Ready. A Ready droplet whose agent misses
//! `not_ready_after_failures` polls in a row is NotReady (its `Ready` condition's
//! `lastTransitionTime` says since when); a droplet gone at DigitalOcean is Failed. Deletion:
//! Draining while MCPDeployments are placed on it, then Terminating (delete or release the cloud
//! droplet), then the finalizer goes.
//!
//! The reconciler calls [`plan`] again after each step with what the step observed; the same
//! inputs always give the same plan, so a pass may plan several times without counting a failure
//! twice (the base is always the status the pass started from).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use scheduler::{DEFAULT_SYSTEM_RESERVE, Resources};

use crate::api::conditions::condition;
use crate::api::droplet::{
    AgentKind, AgentStatus, DeletionPolicy, DropletPhase, DropletSpec, DropletStatus,
    Health as DropletHealth, Price, Utilization,
};
use crate::api::quantity::{format_bytes, format_cpu_millis, parse_bytes, parse_cpu_millis};
use crate::api::shared_fields::ResourceList;
use crate::catalog;
use crate::controller::kstatus::{Health, merged_conditions};
use crate::dtma::capabilities::agent_capabilities_condition;

/// Condition type: whether the last call to the droplet's agent succeeded.
pub const AGENT_REACHABLE: &str = "AgentReachable";

/// Condition reasons of a Droplet (documented in docs/troubleshooting.md).
pub mod reasons {
    /// Nothing done yet.
    pub const PENDING: &str = "Pending";
    /// The enrolment token is stored and the droplet is being created.
    pub const PROVISIONING: &str = "Provisioning";
    /// A droplet may still appear at DigitalOcean (list lag after a create): waiting.
    pub const AWAITING_CLOUD: &str = "AwaitingDigitalOcean";
    /// Created, not yet active with an address.
    pub const BOOTING: &str = "Booting";
    /// Active; the agent is being enrolled (or is not answering yet).
    pub const ENROLLING: &str = "Enrolling";
    /// The agent answers.
    pub const AGENT_READY: &str = "AgentReady";
    /// The agent missed too many polls in a row.
    pub const AGENT_UNREACHABLE: &str = "AgentUnreachable";
    /// The agent refused the operator (token spent, credential rejected, DTMA token wrong).
    pub const AGENT_REFUSED: &str = "AgentRefused";
    /// A Secret the agent needs (DTMA token, adoption enrolment token) does not exist.
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    /// The DigitalOcean droplet is gone (deleted outside the operator).
    pub const DROPLET_GONE: &str = "DropletGone";
    /// The spec asks for something the operator cannot do.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// Being deleted: deployments are moving off.
    pub const DRAINING: &str = "Draining";
    /// Being deleted: the cloud droplet is deleted or released.
    pub const TERMINATING: &str = "Terminating";
    /// AgentReachable: the last call answered.
    pub const AGENT_ANSWERED: &str = "AgentAnswered";
    /// AgentReachable: the last call got no answer.
    pub const NO_ANSWER: &str = "NoAnswer";
}

/// Polling cadence and thresholds, in the clock's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanTiming {
    /// How often a Ready droplet's agent is polled.
    pub heartbeat_interval: Duration,
    /// Missed polls in a row before the droplet is NotReady.
    pub not_ready_after_failures: u32,
    /// `status.health.lastHeartbeat` (and the utilization sample) is rewritten only once it is
    /// older than this, so a healthy droplet's status is not rewritten at every poll.
    pub heartbeat_refresh: Duration,
    /// Longest wait between polls of an unreachable agent.
    pub max_poll_backoff: Duration,
    /// Wait of a droplet that needs a person (Failed, stalled).
    pub resync: Duration,
}

impl PlanTiming {
    /// The timing for a heartbeat interval: refresh the recorded heartbeat every 4 intervals
    /// but at least every 100 s (the scheduler counts a heartbeat older than 300 s as stale),
    /// back off to 8 intervals.
    pub fn from_heartbeat(
        heartbeat_interval: Duration,
        not_ready_after_failures: u32,
        resync: Duration,
    ) -> Self {
        Self {
            heartbeat_interval,
            not_ready_after_failures: not_ready_after_failures.max(1),
            heartbeat_refresh: heartbeat_interval
                .saturating_mul(4)
                .min(Duration::from_secs(100)),
            max_poll_backoff: heartbeat_interval.saturating_mul(8),
            resync,
        }
    }
}

/// The droplet as DigitalOcean reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudFacts {
    /// DigitalOcean id.
    pub id: i64,
    /// `active` and not locked.
    pub active: bool,
    /// Public IPv4.
    pub public_ipv4: Option<String>,
    /// Private IPv4.
    pub private_ipv4: Option<String>,
    /// Region slug.
    pub region: String,
    /// Size slug.
    pub size: String,
    /// vCPUs (for sizes the catalogue does not know).
    pub vcpus: u32,
    /// Memory in MB.
    pub memory_mb: u64,
    /// Disk in GB.
    pub disk_gb: u64,
}

/// What this pass learnt from DigitalOcean.
#[derive(Debug, Clone, PartialEq)]
pub enum CloudObservation {
    /// Not looked at in this pass.
    NotObserved,
    /// A droplet may still appear (list lag after a create): look again after this long.
    Pending {
        /// When to look again.
        retry_after: Duration,
    },
    /// The droplet.
    Found(CloudFacts),
    /// The recorded or adopted droplet answers 404.
    Gone {
        /// Its id.
        id: i64,
    },
}

/// What the agent answered.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentFacts {
    /// Agent version.
    pub version: Option<String>,
    /// Pinned certificate fingerprint (our agent; none for DTMA, which is plain HTTP).
    pub certificate_fingerprint: Option<String>,
    /// The agent's API endpoint.
    pub endpoint: String,
    /// A utilization sample, when one was taken (only when the heartbeat refresh is due).
    pub utilization: Option<UtilizationSample>,
}

/// Observed usage, as fractions (0-1) and the 1-minute load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UtilizationSample {
    /// CPU busy fraction.
    pub cpu: f64,
    /// Memory used fraction.
    pub memory: f64,
    /// Disk used fraction.
    pub disk: f64,
    /// 1-minute load average.
    pub load1: f64,
}

/// What this pass learnt from the agent.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentObservation {
    /// Not contacted in this pass.
    NotContacted,
    /// Enrolled (or already enrolled) and answering.
    Answered(AgentFacts),
    /// No answer (connection refused, timeout, 5xx after retries).
    Unreachable {
        /// Why (no secret).
        message: String,
    },
    /// The agent refuses the operator; only a person can fix it.
    Refused {
        /// Why (no secret).
        message: String,
    },
    /// A Secret the agent needs is missing.
    SecretMissing {
        /// Its name.
        name: String,
    },
}

/// Everything a pass has observed (inputs of [`plan`] besides spec, status and now).
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// The object has a deletionTimestamp.
    pub deleting: bool,
    /// The enrolment-token Secret exists (needed before a create).
    pub enrolment_token_stored: bool,
    /// The pool's provisioner made this object (it carries the provisioned-for annotation);
    /// a Droplet someone wrote is never deleted by the operator.
    pub provisioned: bool,
    /// DigitalOcean.
    pub cloud: CloudObservation,
    /// The agent.
    pub agent: AgentObservation,
    /// After deletion started: the cloud droplet was deleted (or released under `Retain`).
    pub cloud_cleaned_up: bool,
    /// MCPDeployments whose `status.placement.droplet` names this droplet (`namespace/name`).
    pub placed: Vec<String>,
    /// The sum of their requests.
    pub allocated: Resources,
    /// Cadence and thresholds.
    pub timing: PlanTiming,
}

/// The next I/O step of a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Generate and store the single-use enrolment token (before any create).
    StoreEnrolmentToken,
    /// The crash-safe create: find the owner's droplet by id or tag, or create it.
    EnsureDroplet,
    /// GET the droplet by id.
    LookUpDroplet {
        /// The id.
        id: i64,
    },
    /// Enrol when not enrolled yet, else poll health (and metrics when the refresh is due).
    ContactAgent,
    /// Deletion: wait until no MCPDeployment is placed here.
    Drain,
    /// Deletion: delete the cloud droplet (and anything carrying the owner tag).
    DeleteCloudDroplet {
        /// The recorded or adopted id, if known.
        id: Option<i64>,
    },
    /// Deletion under `Retain`: remove the operator's tags so the orphan sweep leaves it.
    ReleaseCloudDroplet {
        /// The recorded or adopted id, if known.
        id: Option<i64>,
    },
    /// Deletion done: remove the finalizer.
    RemoveFinalizer,
    /// The cloud droplet of a droplet a pool provisioned is gone: delete this object, so its
    /// deployments move (the droplet is being deleted) and the pool provisions for the demand.
    DeleteObject,
    /// Nothing more this pass: write status, requeue.
    Done,
}

/// The plan of one pass: the next step, the status to report and when to look again.
#[derive(Debug, Clone, PartialEq)]
pub struct DropletPlan {
    /// What to do next.
    pub step: Step,
    /// The whole status to report.
    pub status: DropletStatus,
    /// When to reconcile again (clock time).
    pub requeue_after: Duration,
}

/// The droplet id this object manages, when known: adopted, or recorded in status.
pub fn known_droplet_id(spec: &DropletSpec, status: Option<&DropletStatus>) -> Option<i64> {
    spec.adopt
        .as_ref()
        .map(|a| a.droplet_id)
        .or_else(|| status.and_then(|s| s.droplet_id))
}

/// Whether the agent was enrolled (ours: endpoint and pinned certificate; DTMA: an endpoint).
pub fn is_enrolled(spec: &DropletSpec, status: Option<&DropletStatus>) -> bool {
    let agent = status.and_then(|s| s.agent.as_ref());
    match spec.agent.kind {
        AgentKind::McpDropletAgent => {
            agent.is_some_and(|a| a.endpoint.is_some() && a.certificate_fingerprint.is_some())
        }
        AgentKind::Dtma => agent.is_some_and(|a| a.endpoint.is_some()),
    }
}

/// Whether a successful poll at `now` should rewrite the heartbeat and take a utilization
/// sample: none recorded, the previous poll failed, or the recorded one is older than
/// `heartbeat_refresh`.
pub fn heartbeat_due(status: Option<&DropletStatus>, now: Timestamp, timing: &PlanTiming) -> bool {
    let Some(status) = status else { return true };
    if status.health.consecutive_failures > 0 {
        return true;
    }
    match &status.health.last_heartbeat {
        None => true,
        Some(at) => clock::elapsed(at.0, now) >= timing.heartbeat_refresh,
    }
}

fn truncated(now: Timestamp) -> Timestamp {
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

/// The plan for this pass (pure). See the module documentation.
pub fn plan(
    spec: &DropletSpec,
    status: Option<&DropletStatus>,
    observed: &Observed,
    now: Timestamp,
) -> DropletPlan {
    let timing = &observed.timing;
    let previous_phase = status.map(|s| s.phase).unwrap_or_default();
    let enrolled_before = is_enrolled(spec, status);
    let failures_before = status.map_or(0, |s| s.health.consecutive_failures);
    let mut desired = base_status(spec, status, observed, now);

    let (step, phase, health, requeue_after) = if observed.deleting {
        deletion_step(spec, &desired, observed)
    } else if spec.agent.kind == AgentKind::Dtma && spec.adopt.is_none() {
        (
            Step::Done,
            DropletPhase::Failed,
            Health::stalled(
                reasons::INVALID_SPEC,
                "a DTMA droplet can only be adopted: set spec.adopt.dropletID",
            ),
            timing.resync,
        )
    } else {
        lifecycle_step(
            spec,
            status,
            observed,
            previous_phase,
            enrolled_before,
            failures_before,
        )
    };
    desired.phase = phase;

    // Agent health and the AgentReachable condition.
    let mut extra: Vec<Condition> = Vec::new();
    let generation = observed.generation;
    match &observed.agent {
        AgentObservation::Answered(facts) => {
            let refresh = heartbeat_due(status, now, timing);
            desired.health = DropletHealth {
                score: 100,
                last_heartbeat: if refresh {
                    Some(Time(truncated(now)))
                } else {
                    status.and_then(|s| s.health.last_heartbeat.clone())
                },
                consecutive_failures: 0,
            };
            if let Some(sample) = facts.utilization.filter(|_| refresh) {
                desired.utilization = Utilization {
                    cpu: round2(sample.cpu),
                    memory: round2(sample.memory),
                    disk: round2(sample.disk),
                    load1: round2(sample.load1),
                    sampled_at: Some(Time(truncated(now))),
                };
            }
            desired.agent = Some(AgentStatus {
                reachable: true,
                version: facts
                    .version
                    .clone()
                    .or_else(|| desired.agent.as_ref().and_then(|a| a.version.clone())),
                certificate_fingerprint: facts.certificate_fingerprint.clone(),
                endpoint: Some(facts.endpoint.clone()),
            });
        }
        AgentObservation::Unreachable { .. } | AgentObservation::Refused { .. }
            if enrolled_before =>
        {
            let failures = failures_before.saturating_add(1);
            desired.health.consecutive_failures = failures;
            desired.health.score = 100u32.saturating_sub(20 * failures.min(5));
            if let Some(agent) = desired.agent.as_mut() {
                agent.reachable = false;
            }
        }
        _ => {}
    }
    if let Some(agent) = &desired.agent {
        let (ok, reason, message) = match &observed.agent {
            AgentObservation::Unreachable { message } | AgentObservation::Refused { message } => {
                (false, reasons::NO_ANSWER, message.clone())
            }
            _ if agent.reachable => (
                true,
                reasons::AGENT_ANSWERED,
                "the agent answers".to_string(),
            ),
            _ => (
                false,
                reasons::NO_ANSWER,
                "the agent did not answer the last call".to_string(),
            ),
        };
        extra.push(condition(
            AGENT_REACHABLE,
            ok,
            reason,
            message,
            generation,
            now,
        ));
        extra.push(agent_capabilities_condition(
            spec.agent.kind,
            generation,
            now,
        ));
    }
    desired.utilization_summary = desired.utilization.sampled_at.as_ref().map(|_| {
        format!(
            "cpu {:.0}%, memory {:.0}%",
            desired.utilization.cpu * 100.0,
            desired.utilization.memory * 100.0
        )
    });
    let existing = status.map(|s| s.conditions.as_slice()).unwrap_or(&[]);
    desired.conditions = merged_conditions(existing, &health, extra, generation, now);
    DropletPlan {
        step,
        status: desired,
        requeue_after,
    }
}

/// Everything in status that does not depend on the step: ids, addresses, size, capacity,
/// allocations, price, carried-over health, agent and utilization.
fn base_status(
    spec: &DropletSpec,
    status: Option<&DropletStatus>,
    observed: &Observed,
    _now: Timestamp,
) -> DropletStatus {
    let previous = status.cloned().unwrap_or_default();
    let mut desired = DropletStatus {
        phase: previous.phase,
        droplet_id: previous
            .droplet_id
            .or_else(|| spec.adopt.as_ref().map(|a| a.droplet_id)),
        public_ipv4: previous.public_ipv4.clone(),
        private_ipv4: previous.private_ipv4.clone(),
        region: previous.region.clone().or_else(|| spec.region.clone()),
        size: previous.size.clone().or_else(|| spec.size.clone()),
        health: previous.health.clone(),
        utilization: previous.utilization.clone(),
        agent: previous.agent.clone(),
        observed_generation: observed.generation,
        ..DropletStatus::default()
    };
    let mut cloud_capacity = None;
    match &observed.cloud {
        CloudObservation::Found(facts) => {
            desired.droplet_id = Some(facts.id);
            if facts.public_ipv4.is_some() {
                desired.public_ipv4 = facts.public_ipv4.clone();
            }
            if facts.private_ipv4.is_some() {
                desired.private_ipv4 = facts.private_ipv4.clone();
            }
            if !facts.region.is_empty() {
                desired.region = Some(facts.region.clone());
            }
            if !facts.size.is_empty() {
                desired.size = Some(facts.size.clone());
            }
            cloud_capacity = Some(Resources::new(
                facts.memory_mb * 1024 * 1024,
                u64::from(facts.vcpus) * 1000,
                facts.disk_gb * 1024 * 1024 * 1024,
            ));
        }
        CloudObservation::Gone { id } => desired.droplet_id = Some(*id),
        CloudObservation::NotObserved | CloudObservation::Pending { .. } => {}
    }
    let size = desired.size.as_deref().and_then(catalog::size);
    let capacity = size
        .map(|s| s.capacity())
        .or(cloud_capacity)
        .or_else(|| parse_list(&previous.capacity));
    if let Some(capacity) = capacity {
        let allocatable = capacity.minus(reserve_of(spec));
        desired.capacity = resource_list(capacity);
        desired.allocatable = resource_list(allocatable);
        desired.allocation_summary = Some(format!(
            "cpu {}/{}, memory {}/{}",
            format_cpu_millis(observed.allocated.cpu_millis),
            format_cpu_millis(allocatable.cpu_millis),
            format_bytes(observed.allocated.memory),
            format_bytes(allocatable.memory),
        ));
    }
    desired.allocated = resource_list(observed.allocated);
    let mut placed = observed.placed.clone();
    placed.sort();
    placed.dedup();
    desired.deployments = placed;
    desired.price = match size {
        Some(s) => Price {
            hourly_usd: round4(s.price_hourly()),
            monthly_usd: s.price_monthly,
        },
        None => previous.price.clone(),
    };
    desired
}

fn deletion_step(
    spec: &DropletSpec,
    desired: &DropletStatus,
    observed: &Observed,
) -> (Step, DropletPhase, Health, Duration) {
    let timing = &observed.timing;
    if !observed.placed.is_empty() {
        let names = observed.placed.join(", ");
        return (
            Step::Drain,
            DropletPhase::Draining,
            Health::progressing(
                reasons::DRAINING,
                format!(
                    "waiting for {} deployment(s) to move elsewhere: {names}",
                    observed.placed.len()
                ),
            ),
            timing.heartbeat_interval,
        );
    }
    let id = desired.droplet_id;
    let terminating = |message: &str| Health::progressing(reasons::TERMINATING, message);
    if observed.cloud_cleaned_up {
        return (
            Step::RemoveFinalizer,
            DropletPhase::Terminating,
            terminating("the cloud droplet is released"),
            timing.heartbeat_interval,
        );
    }
    match spec.deletion_policy {
        DeletionPolicy::Delete => (
            Step::DeleteCloudDroplet { id },
            DropletPhase::Terminating,
            terminating("deleting the DigitalOcean droplet"),
            timing.heartbeat_interval,
        ),
        DeletionPolicy::Retain => (
            Step::ReleaseCloudDroplet { id },
            DropletPhase::Terminating,
            terminating("keeping the DigitalOcean droplet (deletionPolicy Retain)"),
            timing.heartbeat_interval,
        ),
    }
}

fn lifecycle_step(
    spec: &DropletSpec,
    status: Option<&DropletStatus>,
    observed: &Observed,
    previous_phase: DropletPhase,
    enrolled_before: bool,
    failures_before: u32,
) -> (Step, DropletPhase, Health, Duration) {
    let timing = &observed.timing;
    let fast = timing.heartbeat_interval.min(Duration::from_secs(10));
    let known_id = known_droplet_id(spec, status);
    let creating = spec.adopt.is_none()
        && (known_id.is_none()
            || matches!(
                previous_phase,
                DropletPhase::Pending | DropletPhase::Provisioning
            ));
    match &observed.cloud {
        CloudObservation::NotObserved => {
            if creating {
                let step = if observed.enrolment_token_stored || spec.agent.kind == AgentKind::Dtma
                {
                    Step::EnsureDroplet
                } else {
                    Step::StoreEnrolmentToken
                };
                return (
                    step,
                    DropletPhase::Provisioning,
                    Health::progressing(reasons::PROVISIONING, "creating the droplet"),
                    fast,
                );
            }
            let Some(id) = known_id else {
                // Unreachable: `creating` covers a missing id without adoption.
                return (
                    Step::EnsureDroplet,
                    DropletPhase::Provisioning,
                    Health::progressing(reasons::PROVISIONING, "creating the droplet"),
                    fast,
                );
            };
            let needs_cloud = !enrolled_before
                || matches!(
                    observed.agent,
                    AgentObservation::Unreachable { .. } | AgentObservation::Refused { .. }
                )
                || previous_phase == DropletPhase::Failed;
            if needs_cloud {
                return (
                    Step::LookUpDroplet { id },
                    previous_phase.max_pre_ready(),
                    Health::progressing(reasons::BOOTING, "looking up the droplet"),
                    fast,
                );
            }
            agent_phase(
                spec,
                observed,
                previous_phase,
                enrolled_before,
                failures_before,
            )
        }
        CloudObservation::Pending { retry_after } => (
            Step::Done,
            DropletPhase::Provisioning,
            Health::progressing(
                reasons::AWAITING_CLOUD,
                "a droplet created earlier may still appear at DigitalOcean; looking again before creating",
            ),
            *retry_after,
        ),
        CloudObservation::Gone { id } if observed.provisioned && spec.adopt.is_none() => (
            Step::DeleteObject,
            DropletPhase::Failed,
            Health::stalled(
                reasons::DROPLET_GONE,
                format!(
                    "DigitalOcean droplet {id} no longer exists; this pool droplet is deleted so its deployments move elsewhere"
                ),
            ),
            timing.resync,
        ),
        CloudObservation::Gone { id } => (
            Step::Done,
            DropletPhase::Failed,
            Health::stalled(
                reasons::DROPLET_GONE,
                format!(
                    "DigitalOcean droplet {id} no longer exists; delete this Droplet (its deployments move elsewhere)"
                ),
            ),
            timing.resync,
        ),
        CloudObservation::Found(facts) => {
            if !facts.active || facts.public_ipv4.is_none() {
                return (
                    Step::Done,
                    DropletPhase::Booting,
                    Health::progressing(
                        reasons::BOOTING,
                        format!("droplet {} is booting", facts.id),
                    ),
                    fast,
                );
            }
            agent_phase(
                spec,
                observed,
                previous_phase,
                enrolled_before,
                failures_before,
            )
        }
    }
}

fn agent_phase(
    _spec: &DropletSpec,
    observed: &Observed,
    previous_phase: DropletPhase,
    enrolled_before: bool,
    failures_before: u32,
) -> (Step, DropletPhase, Health, Duration) {
    let timing = &observed.timing;
    let fast = timing.heartbeat_interval.min(Duration::from_secs(10));
    match &observed.agent {
        AgentObservation::NotContacted => (
            Step::ContactAgent,
            if enrolled_before {
                previous_phase
            } else {
                DropletPhase::Enrolling
            },
            Health::progressing(reasons::ENROLLING, "contacting the agent"),
            fast,
        ),
        AgentObservation::Answered(_) => (
            Step::Done,
            DropletPhase::Ready,
            Health::ready(reasons::AGENT_READY, "the agent answers"),
            timing.heartbeat_interval,
        ),
        AgentObservation::Unreachable { message } if enrolled_before => {
            let failures = failures_before.saturating_add(1);
            if failures >= timing.not_ready_after_failures {
                let extra = failures - timing.not_ready_after_failures;
                let backoff = timing
                    .heartbeat_interval
                    .saturating_mul(1u32 << extra.min(8))
                    .min(timing.max_poll_backoff);
                (
                    Step::Done,
                    DropletPhase::NotReady,
                    Health::progressing(
                        reasons::AGENT_UNREACHABLE,
                        format!("the agent missed {failures} polls in a row: {message}"),
                    ),
                    backoff,
                )
            } else {
                let phase = if previous_phase == DropletPhase::NotReady {
                    DropletPhase::NotReady
                } else {
                    DropletPhase::Ready
                };
                let health = if phase == DropletPhase::Ready {
                    Health::ready(
                        reasons::AGENT_READY,
                        format!("the agent missed {failures} poll(s): {message}"),
                    )
                } else {
                    Health::progressing(reasons::AGENT_UNREACHABLE, message.clone())
                };
                (Step::Done, phase, health, timing.heartbeat_interval)
            }
        }
        AgentObservation::Unreachable { message } => (
            Step::Done,
            DropletPhase::Enrolling,
            Health::progressing(
                reasons::ENROLLING,
                format!("waiting for the agent to answer: {message}"),
            ),
            fast,
        ),
        AgentObservation::Refused { message } => (
            Step::Done,
            if enrolled_before {
                DropletPhase::NotReady
            } else {
                DropletPhase::Failed
            },
            Health::stalled(reasons::AGENT_REFUSED, message.clone()),
            timing.resync,
        ),
        AgentObservation::SecretMissing { name } => (
            Step::Done,
            if enrolled_before {
                DropletPhase::NotReady
            } else {
                DropletPhase::Enrolling
            },
            Health::stalled(
                reasons::SECRET_NOT_FOUND,
                format!("Secret {name:?} is missing: create it (see docs/controllers.md, Droplet)"),
            ),
            timing.resync,
        ),
    }
}

trait PrePhase {
    fn max_pre_ready(self) -> Self;
}

impl PrePhase for DropletPhase {
    /// While the cloud is looked up, the phase stays where it was; a droplet that never got
    /// past Provisioning is Booting once it has an id.
    fn max_pre_ready(self) -> Self {
        match self {
            DropletPhase::Pending | DropletPhase::Provisioning => DropletPhase::Booting,
            other => other,
        }
    }
}

fn reserve_of(spec: &DropletSpec) -> Resources {
    let Some(r) = &spec.reserved else {
        return DEFAULT_SYSTEM_RESERVE;
    };
    Resources::new(
        r.memory
            .as_deref()
            .and_then(|m| parse_bytes(m).ok())
            .unwrap_or(DEFAULT_SYSTEM_RESERVE.memory),
        r.cpu
            .as_deref()
            .and_then(|c| parse_cpu_millis(c).ok())
            .unwrap_or(DEFAULT_SYSTEM_RESERVE.cpu_millis),
        r.disk
            .as_deref()
            .and_then(|d| parse_bytes(d).ok())
            .unwrap_or(DEFAULT_SYSTEM_RESERVE.disk),
    )
}

/// A status resource list for `resources`.
pub fn resource_list(resources: Resources) -> ResourceList {
    ResourceList {
        cpu: Some(format_cpu_millis(resources.cpu_millis)),
        memory: Some(format_bytes(resources.memory)),
        disk: Some(format_bytes(resources.disk)),
    }
}

fn parse_list(list: &ResourceList) -> Option<Resources> {
    Some(Resources::new(
        parse_bytes(list.memory.as_deref()?).ok()?,
        parse_cpu_millis(list.cpu.as_deref()?).ok()?,
        list.disk
            .as_deref()
            .and_then(|d| parse_bytes(d).ok())
            .unwrap_or(0),
    ))
}

fn round2(x: f64) -> f64 {
    if x.is_finite() {
        (x * 100.0).round() / 100.0
    } else {
        0.0
    }
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// A utilization sample from the agent's `/metrics` text (`mcp_agent_host_*` gauges); CPU is
/// the 1-minute load per CPU, capped at 1. `None` when the gauges are missing.
pub fn utilization_from_metrics(text: &str) -> Option<UtilizationSample> {
    let value = |name: &str| -> Option<f64> {
        text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
            let mut parts = l.split_whitespace();
            let key = parts.next()?;
            let key = key.split('{').next()?;
            (key == name).then(|| parts.next()?.parse::<f64>().ok())?
        })
    };
    let cpus = value("mcp_agent_host_cpus")?.max(1.0);
    let load1 = value("mcp_agent_host_load1")?;
    let fraction = |total: Option<f64>, available: Option<f64>| match (total, available) {
        (Some(t), Some(a)) if t > 0.0 => (1.0 - a / t).clamp(0.0, 1.0),
        _ => 0.0,
    };
    Some(UtilizationSample {
        cpu: (load1 / cpus).clamp(0.0, 1.0),
        memory: fraction(
            value("mcp_agent_host_memory_total_bytes"),
            value("mcp_agent_host_memory_available_bytes"),
        ),
        disk: fraction(
            value("mcp_agent_host_disk_total_bytes"),
            value("mcp_agent_host_disk_available_bytes"),
        ),
        load1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::find;
    use crate::api::droplet::{Adopt, AgentSpec};
    use crate::controller::kstatus::READY;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("valid timestamp")
    }

    fn timing() -> PlanTiming {
        PlanTiming::from_heartbeat(Duration::from_secs(30), 3, Duration::from_secs(600))
    }

    fn spec() -> DropletSpec {
        DropletSpec {
            region: Some("nyc3".into()),
            size: Some("s-2vcpu-4gb".into()),
            ..DropletSpec::default()
        }
    }

    fn adopted(kind: AgentKind) -> DropletSpec {
        DropletSpec {
            adopt: Some(Adopt { droplet_id: 7 }),
            agent: AgentSpec { kind, port: None },
            ..DropletSpec::default()
        }
    }

    fn observed() -> Observed {
        Observed {
            generation: Some(1),
            deleting: false,
            enrolment_token_stored: false,
            provisioned: false,
            cloud: CloudObservation::NotObserved,
            agent: AgentObservation::NotContacted,
            cloud_cleaned_up: false,
            placed: Vec::new(),
            allocated: Resources::ZERO,
            timing: timing(),
        }
    }

    fn facts(active: bool) -> CloudFacts {
        CloudFacts {
            id: 7,
            active,
            public_ipv4: active.then(|| "127.1.0.7".to_string()),
            private_ipv4: None,
            region: "nyc3".into(),
            size: "s-2vcpu-4gb".into(),
            vcpus: 2,
            memory_mb: 4096,
            disk_gb: 80,
        }
    }

    fn answered() -> AgentObservation {
        AgentObservation::Answered(AgentFacts {
            version: Some("1.0.0".into()),
            certificate_fingerprint: Some("ab".repeat(32)),
            endpoint: "https://127.1.0.7:9443".into(),
            utilization: Some(UtilizationSample {
                cpu: 0.123,
                memory: 0.5,
                disk: 0.25,
                load1: 0.246,
            }),
        })
    }

    fn status_in(phase: DropletPhase, failures: u32, heartbeat: Option<i64>) -> DropletStatus {
        DropletStatus {
            phase,
            droplet_id: Some(7),
            public_ipv4: Some("127.1.0.7".into()),
            health: DropletHealth {
                score: 100,
                last_heartbeat: heartbeat.map(|s| Time(at(s))),
                consecutive_failures: failures,
            },
            agent: Some(AgentStatus {
                reachable: true,
                version: Some("1.0.0".into()),
                certificate_fingerprint: Some("ab".repeat(32)),
                endpoint: Some("https://127.1.0.7:9443".into()),
            }),
            ..DropletStatus::default()
        }
    }

    /// One row: a situation and the step, phase and Ready reason it must plan.
    struct Case {
        name: &'static str,
        spec: DropletSpec,
        status: Option<DropletStatus>,
        observed: Observed,
        step: Step,
        phase: DropletPhase,
        reason: &'static str,
    }

    #[test]
    fn the_lifecycle_table() {
        let with = |f: &dyn Fn(&mut Observed)| {
            let mut o = observed();
            f(&mut o);
            o
        };
        let cases = vec![
            Case {
                name: "a new droplet stores its enrolment token first",
                spec: spec(),
                status: None,
                observed: observed(),
                step: Step::StoreEnrolmentToken,
                phase: DropletPhase::Provisioning,
                reason: reasons::PROVISIONING,
            },
            Case {
                name: "then it is created (crash-safe)",
                spec: spec(),
                status: None,
                observed: with(&|o| o.enrolment_token_stored = true),
                step: Step::EnsureDroplet,
                phase: DropletPhase::Provisioning,
                reason: reasons::PROVISIONING,
            },
            Case {
                name: "a create that may still appear waits",
                spec: spec(),
                status: Some(DropletStatus {
                    phase: DropletPhase::Provisioning,
                    ..DropletStatus::default()
                }),
                observed: with(&|o| {
                    o.enrolment_token_stored = true;
                    o.cloud = CloudObservation::Pending {
                        retry_after: Duration::from_secs(42),
                    };
                }),
                step: Step::Done,
                phase: DropletPhase::Provisioning,
                reason: reasons::AWAITING_CLOUD,
            },
            Case {
                name: "created but not active: booting",
                spec: spec(),
                status: None,
                observed: with(&|o| o.cloud = CloudObservation::Found(facts(false))),
                step: Step::Done,
                phase: DropletPhase::Booting,
                reason: reasons::BOOTING,
            },
            Case {
                name: "a booting droplet is looked up by id",
                spec: spec(),
                status: Some(DropletStatus {
                    phase: DropletPhase::Booting,
                    droplet_id: Some(7),
                    ..DropletStatus::default()
                }),
                observed: observed(),
                step: Step::LookUpDroplet { id: 7 },
                phase: DropletPhase::Booting,
                reason: reasons::BOOTING,
            },
            Case {
                name: "active with an address: enrol",
                spec: spec(),
                status: None,
                observed: with(&|o| o.cloud = CloudObservation::Found(facts(true))),
                step: Step::ContactAgent,
                phase: DropletPhase::Enrolling,
                reason: reasons::ENROLLING,
            },
            Case {
                name: "an agent that does not answer yet keeps it enrolling",
                spec: spec(),
                status: None,
                observed: with(&|o| {
                    o.cloud = CloudObservation::Found(facts(true));
                    o.agent = AgentObservation::Unreachable {
                        message: "connection refused".into(),
                    };
                }),
                step: Step::Done,
                phase: DropletPhase::Enrolling,
                reason: reasons::ENROLLING,
            },
            Case {
                name: "enrolled and answering: ready",
                spec: spec(),
                status: None,
                observed: with(&|o| {
                    o.cloud = CloudObservation::Found(facts(true));
                    o.agent = answered();
                }),
                step: Step::Done,
                phase: DropletPhase::Ready,
                reason: reasons::AGENT_READY,
            },
            Case {
                name: "a ready droplet is polled without asking DigitalOcean",
                spec: spec(),
                status: Some(status_in(DropletPhase::Ready, 0, Some(0))),
                observed: observed(),
                step: Step::ContactAgent,
                phase: DropletPhase::Ready,
                reason: reasons::ENROLLING,
            },
            Case {
                name: "one missed poll: still ready, DigitalOcean asked",
                spec: spec(),
                status: Some(status_in(DropletPhase::Ready, 0, Some(0))),
                observed: with(&|o| {
                    o.agent = AgentObservation::Unreachable {
                        message: "refused".into(),
                    }
                }),
                step: Step::LookUpDroplet { id: 7 },
                phase: DropletPhase::Ready,
                reason: reasons::BOOTING,
            },
            Case {
                name: "one missed poll, droplet exists: ready with a failure counted",
                spec: spec(),
                status: Some(status_in(DropletPhase::Ready, 0, Some(0))),
                observed: with(&|o| {
                    o.cloud = CloudObservation::Found(facts(true));
                    o.agent = AgentObservation::Unreachable {
                        message: "refused".into(),
                    };
                }),
                step: Step::Done,
                phase: DropletPhase::Ready,
                reason: reasons::AGENT_READY,
            },
            Case {
                name: "the third missed poll: not ready",
                spec: spec(),
                status: Some(status_in(DropletPhase::Ready, 2, Some(0))),
                observed: with(&|o| {
                    o.cloud = CloudObservation::Found(facts(true));
                    o.agent = AgentObservation::Unreachable {
                        message: "refused".into(),
                    };
                }),
                step: Step::Done,
                phase: DropletPhase::NotReady,
                reason: reasons::AGENT_UNREACHABLE,
            },
            Case {
                name: "gone at DigitalOcean: failed",
                spec: spec(),
                status: Some(status_in(DropletPhase::Ready, 1, Some(0))),
                observed: with(&|o| o.cloud = CloudObservation::Gone { id: 7 }),
                step: Step::Done,
                phase: DropletPhase::Failed,
                reason: reasons::DROPLET_GONE,
            },
            Case {
                name: "a pool droplet gone at DigitalOcean deletes its object",
                spec: DropletSpec {
                    pool: Some("default".into()),
                    ..spec()
                },
                status: Some(status_in(DropletPhase::Ready, 1, Some(0))),
                observed: with(&|o| {
                    o.cloud = CloudObservation::Gone { id: 7 };
                    o.provisioned = true;
                }),
                step: Step::DeleteObject,
                phase: DropletPhase::Failed,
                reason: reasons::DROPLET_GONE,
            },
            Case {
                name: "a pool member someone wrote is not deleted when its droplet is gone",
                spec: DropletSpec {
                    pool: Some("default".into()),
                    ..spec()
                },
                status: Some(status_in(DropletPhase::Ready, 1, Some(0))),
                observed: with(&|o| o.cloud = CloudObservation::Gone { id: 7 }),
                step: Step::Done,
                phase: DropletPhase::Failed,
                reason: reasons::DROPLET_GONE,
            },
            Case {
                name: "adoption looks the droplet up instead of creating",
                spec: adopted(AgentKind::McpDropletAgent),
                status: None,
                observed: observed(),
                step: Step::LookUpDroplet { id: 7 },
                phase: DropletPhase::Booting,
                reason: reasons::BOOTING,
            },
            Case {
                name: "an adopted agent without token or credential stalls",
                spec: adopted(AgentKind::McpDropletAgent),
                status: None,
                observed: with(&|o| {
                    o.cloud = CloudObservation::Found(facts(true));
                    o.agent = AgentObservation::SecretMissing {
                        name: "d1-enrolment-token".into(),
                    };
                }),
                step: Step::Done,
                phase: DropletPhase::Enrolling,
                reason: reasons::SECRET_NOT_FOUND,
            },
            Case {
                name: "DTMA cannot be created, only adopted",
                spec: DropletSpec {
                    agent: AgentSpec {
                        kind: AgentKind::Dtma,
                        port: None,
                    },
                    ..spec()
                },
                status: None,
                observed: observed(),
                step: Step::Done,
                phase: DropletPhase::Failed,
                reason: reasons::INVALID_SPEC,
            },
            Case {
                name: "deletion drains placed deployments first",
                spec: spec(),
                status: Some(status_in(DropletPhase::Ready, 0, Some(0))),
                observed: with(&|o| {
                    o.deleting = true;
                    o.placed = vec!["team-a/github".into()];
                }),
                step: Step::Drain,
                phase: DropletPhase::Draining,
                reason: reasons::DRAINING,
            },
            Case {
                name: "then deletes the cloud droplet",
                spec: spec(),
                status: Some(status_in(DropletPhase::Draining, 0, Some(0))),
                observed: with(&|o| o.deleting = true),
                step: Step::DeleteCloudDroplet { id: Some(7) },
                phase: DropletPhase::Terminating,
                reason: reasons::TERMINATING,
            },
            Case {
                name: "or releases it under Retain",
                spec: DropletSpec {
                    deletion_policy: DeletionPolicy::Retain,
                    ..spec()
                },
                status: Some(status_in(DropletPhase::Ready, 0, Some(0))),
                observed: with(&|o| o.deleting = true),
                step: Step::ReleaseCloudDroplet { id: Some(7) },
                phase: DropletPhase::Terminating,
                reason: reasons::TERMINATING,
            },
            Case {
                name: "and lets go once the cloud is done",
                spec: spec(),
                status: Some(status_in(DropletPhase::Terminating, 0, Some(0))),
                observed: with(&|o| {
                    o.deleting = true;
                    o.cloud_cleaned_up = true;
                }),
                step: Step::RemoveFinalizer,
                phase: DropletPhase::Terminating,
                reason: reasons::TERMINATING,
            },
        ];
        for case in cases {
            let planned = plan(&case.spec, case.status.as_ref(), &case.observed, at(60));
            assert_eq!(planned.step, case.step, "{}: step", case.name);
            assert_eq!(planned.status.phase, case.phase, "{}: phase", case.name);
            let ready = find(&planned.status.conditions, READY).expect("a Ready condition");
            assert_eq!(ready.reason, case.reason, "{}: reason", case.name);
        }
    }

    #[test]
    fn ready_status_has_ips_capacity_allocations_and_price() {
        let mut o = observed();
        o.cloud = CloudObservation::Found(facts(true));
        o.agent = answered();
        o.placed = vec!["team-a/b".into(), "team-a/a".into()];
        o.allocated = Resources::new(1 << 30, 500, 0);
        let s = plan(&spec(), None, &o, at(60)).status;
        assert_eq!(s.droplet_id, Some(7));
        assert_eq!(s.public_ipv4.as_deref(), Some("127.1.0.7"));
        assert_eq!(s.capacity.memory.as_deref(), Some("4Gi"));
        assert_eq!(s.capacity.cpu.as_deref(), Some("2"));
        assert_eq!(s.allocatable.memory.as_deref(), Some("3584Mi"));
        assert_eq!(s.allocated.cpu.as_deref(), Some("500m"));
        assert_eq!(s.deployments, vec!["team-a/a", "team-a/b"]);
        assert_eq!(
            s.allocation_summary.as_deref(),
            Some("cpu 500m/1750m, memory 1Gi/3584Mi")
        );
        assert!(s.price.monthly_usd > 0.0 && s.price.hourly_usd > 0.0);
        assert_eq!(s.utilization.cpu, 0.12);
        assert_eq!(
            s.utilization_summary.as_deref(),
            Some("cpu 12%, memory 50%")
        );
        let agent = s.agent.expect("agent status");
        assert!(agent.reachable && agent.certificate_fingerprint.is_some());
        assert_eq!(
            find(&s.conditions, AGENT_REACHABLE).map(|c| c.status.as_str()),
            Some("True")
        );
        assert_eq!(
            find(&s.conditions, "AgentCapabilities").map(|c| c.reason.as_str()),
            Some("FullAgent")
        );
    }

    #[test]
    fn a_healthy_poll_rewrites_the_heartbeat_only_when_it_is_due() {
        let t = timing();
        assert_eq!(t.heartbeat_refresh, Duration::from_secs(100));
        let mut o = observed();
        o.agent = answered();
        let first = plan(&spec(), None, &o, at(0)).status;
        // Polled again 30 s later: the same status, so nothing is written.
        let again = plan(&spec(), Some(&first), &o, at(30)).status;
        assert_eq!(again, first);
        // Once the recorded heartbeat is older than the refresh, it moves.
        let later = plan(&spec(), Some(&first), &o, at(100)).status;
        assert_eq!(
            later.health.last_heartbeat.as_ref().map(|t| t.0),
            Some(at(100))
        );
        assert_eq!(
            later.utilization.sampled_at.as_ref().map(|t| t.0),
            Some(at(100))
        );
    }

    #[test]
    fn missed_polls_count_lower_the_score_and_mark_not_ready_since_the_flip() {
        let mut o = observed();
        o.cloud = CloudObservation::Found(facts(true));
        o.agent = answered();
        let mut status = plan(&spec(), None, &o, at(0)).status;
        o.agent = AgentObservation::Unreachable {
            message: "refused".into(),
        };
        for (i, expected) in [
            (1, DropletPhase::Ready),
            (2, DropletPhase::Ready),
            (3, DropletPhase::NotReady),
            (4, DropletPhase::NotReady),
        ] {
            let planned = plan(&spec(), Some(&status), &o, at(i * 30));
            status = planned.status;
            assert_eq!(status.phase, expected, "after {i} misses");
            assert_eq!(status.health.consecutive_failures, i as u32);
        }
        assert_eq!(status.health.score, 20);
        let ready = find(&status.conditions, READY).expect("ready");
        assert_eq!(ready.status, "False");
        // The Ready flip happened at the third miss and keeps that time.
        assert_eq!(ready.last_transition_time.0, at(90));
        assert_eq!(
            find(&status.conditions, AGENT_REACHABLE).map(|c| c.status.as_str()),
            Some("False")
        );
        // Polls back off once NotReady.
        let planned = plan(&spec(), Some(&status), &o, at(150));
        assert_eq!(planned.requeue_after, Duration::from_secs(120));
    }

    #[test]
    fn dtma_shows_what_it_cannot_do() {
        let mut o = observed();
        o.cloud = CloudObservation::Found(facts(true));
        o.agent = AgentObservation::Answered(AgentFacts {
            version: Some("0.1.0".into()),
            certificate_fingerprint: None,
            endpoint: "http://127.1.0.7:30000".into(),
            utilization: None,
        });
        let s = plan(&adopted(AgentKind::Dtma), None, &o, at(0)).status;
        assert_eq!(s.phase, DropletPhase::Ready);
        let caps = find(&s.conditions, "AgentCapabilities").expect("capabilities");
        assert_eq!(
            (caps.status.as_str(), caps.reason.as_str()),
            ("False", "LegacyAgent")
        );
    }

    #[test]
    fn utilization_is_read_from_the_agents_gauges() {
        let text = "# TYPE mcp_agent_host_cpus gauge\nmcp_agent_host_cpus 4\n\
                    mcp_agent_host_load1 1.0\nmcp_agent_host_memory_total_bytes 1000\n\
                    mcp_agent_host_memory_available_bytes 250\n\
                    mcp_agent_host_disk_total_bytes 100\nmcp_agent_host_disk_available_bytes 90\n# EOF\n";
        let u = utilization_from_metrics(text).expect("sample");
        assert_eq!((u.cpu, u.memory, u.load1), (0.25, 0.75, 1.0));
        assert!((u.disk - 0.1).abs() < 1e-9);
        assert_eq!(utilization_from_metrics("nothing here"), None);
    }
}
