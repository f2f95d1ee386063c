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
        AgentKind::McpDropletAgent => agent.is_some_and(|a| {
            a.endpoint.is_some() && a.certificate_fingerprint.is_some()
        }),
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
        extra.push(agent_capabilities_condition(spec.agent.kind, generation, now));
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
                let step = if observed.enrolment_token_stored
                    || spec.agent.kind == AgentKind::Dtma
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
            agent_phase(spec, observed, previous_phase, enrolled_before, failures_before)
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
            agent_phase(spec, observed, previous_phase, enrolled_before, failures_before)
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
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
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
