//! The MCPDeployment step machine, pure: what the controller has observed so far in a pass in,
//! the next thing to do and the whole status out.
//!
//! The reconciler calls [`plan`] in a loop: each answer is either one action (schedule, release
//! a droplet, read the agent, push the server, probe) whose result the reconciler adds to
//! [`Observed`] before asking again, or [`Next::Wait`], which ends the pass with the status of
//! that last answer. Every decision and every status field is made here, from the object's
//! previous status and the facts, so it is tested with fixed timestamps and no I/O.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::conditions::{ConditionStatus, condition, find};
use crate::api::deployment::{
    DeploymentPhase, MCPDeployment, MCPDeploymentStatus, McpStatus, PlacementStatus, Progress,
    Step, StepState,
};
use crate::controller::kstatus::{Health, merged_conditions};

/// Condition type: a droplet was chosen (False while nothing fits).
pub const SCHEDULED: &str = "Scheduled";
/// Condition type: the MCP check through the public endpoint succeeded.
pub const VERIFIED: &str = crate::probe::status::VERIFIED;
/// Condition type: a Ready deployment's repeated checks fail (abnormal-true).
pub const DEGRADED: &str = "Degraded";

/// How often the agent is asked again while it pulls or starts a server (clock time).
pub const STEP_POLL: Duration = Duration::from_secs(2);

/// The deploy steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StepName {
    /// Template, env and Secrets.
    Validating,
    /// Choosing a droplet.
    Scheduling,
    /// A new droplet (only when nothing fits).
    Provisioning,
    /// The droplet and its agent become usable.
    Preparing,
    /// The agent pulls the image.
    Pulling,
    /// The agent starts the container.
    Deploying,
    /// The MCP handshake through the endpoint.
    Verifying,
    /// Serving.
    Ready,
}

impl StepName {
    /// Every step, in order.
    pub const ALL: [StepName; 8] = [
        StepName::Validating,
        StepName::Scheduling,
        StepName::Provisioning,
        StepName::Preparing,
        StepName::Pulling,
        StepName::Deploying,
        StepName::Verifying,
        StepName::Ready,
    ];

    /// The name in `status.progress.steps`.
    pub fn as_str(self) -> &'static str {
        match self {
            StepName::Validating => "Validating",
            StepName::Scheduling => "Scheduling",
            StepName::Provisioning => "Provisioning",
            StepName::Preparing => "Preparing",
            StepName::Pulling => "Pulling",
            StepName::Deploying => "Deploying",
            StepName::Verifying => "Verifying",
            StepName::Ready => "Ready",
        }
    }

    /// The phase of a deployment whose current step this is.
    pub fn phase(self) -> DeploymentPhase {
        match self {
            StepName::Validating => DeploymentPhase::Validating,
            StepName::Scheduling => DeploymentPhase::Scheduling,
            StepName::Provisioning => DeploymentPhase::Provisioning,
            StepName::Preparing => DeploymentPhase::Preparing,
            StepName::Pulling => DeploymentPhase::Pulling,
            StepName::Deploying => DeploymentPhase::Deploying,
            StepName::Verifying => DeploymentPhase::Verifying,
            StepName::Ready => DeploymentPhase::Ready,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Intervals and thresholds the plan uses (from `Timings`).
#[derive(Debug, Clone, PartialEq)]
pub struct PlanSettings {
    /// How often a Ready deployment is checked again.
    pub reprobe_interval: Duration,
    /// How long a deployment waits on a NotReady droplet before it moves.
    pub move_grace: Duration,
    /// Failed checks before `Degraded`.
    pub degraded_after: u32,
    /// Failed checks before the server is restarted.
    pub restart_after: u32,
    /// Failed checks (or failures of a step on one droplet) before it moves elsewhere.
    pub move_after: u32,
    /// Retry delay inside a step.
    pub retry: Duration,
    /// Wait of a stalled deployment (a watch wakes it earlier).
    pub stalled_recheck: Duration,
}

impl PlanSettings {
    /// The settings of the controller's timings.
    pub fn from_timings(t: &crate::controller::Timings) -> Self {
        Self {
            reprobe_interval: t.reprobe_interval,
            move_grace: t.move_grace,
            degraded_after: t.degraded_after_failures.max(1),
            restart_after: t.restart_after_failures.max(1),
            move_after: t.move_after_failures.max(1),
            retry: t.error_backoff_base.saturating_mul(4).max(STEP_POLL),
            stalled_recheck: t.resync_interval,
        }
    }
}

/// The referenced template, as far as the deployment is concerned.
#[derive(Debug, Clone, PartialEq)]
pub enum TemplateFacts {
    /// No MCPTemplate of that name.
    Missing,
    /// The template controller rejected it; its message.
    Rejected(String),
    /// Accepted, or not judged yet (decision 0016).
    Usable,
}

/// The env and Secrets of the deployment, resolved against the template.
#[derive(Debug, Clone, PartialEq)]
pub enum InputFacts {
    /// Everything resolved; the desired server's configuration hash.
    Resolved {
        /// Hash of the desired server spec (keyed, see the module `desired`).
        config_hash: String,
    },
    /// A referenced Secret or ConfigMap (or its key) does not exist.
    ReferenceMissing {
        /// `Secret` or `ConfigMap`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The key asked for.
        key: String,
    },
    /// The spec asks for something the template does not allow.
    Invalid(String),
}

/// Whether the agent of a Ready droplet can be called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentAccess {
    /// Endpoint, certificate and credential known.
    Reachable,
    /// Not enrolled yet (or its credential is missing).
    NotEnrolled,
    /// The droplet runs DTMA, driven a whole droplet at a time (decision 0023).
    Dtma,
    /// The droplet runs DTMA, which cannot run this deployment; why.
    DtmaCannotRun(String),
}

/// The droplet the deployment is placed on.
#[derive(Debug, Clone, PartialEq)]
pub enum DropletFacts {
    /// No such Droplet object.
    Gone,
    /// Being deleted.
    Deleting,
    /// Draining its deployments.
    Draining,
    /// Failed for good.
    Failed,
    /// NotReady since this time (unknown: counted from now).
    NotReady {
        /// When it became NotReady.
        since: Option<Timestamp>,
    },
    /// Being created, booting or enrolling.
    Starting,
    /// Ready.
    Ready(AgentAccess),
}

/// Outcome of a scheduling attempt in this pass.
#[derive(Debug, Clone, PartialEq)]
pub enum ScheduleFacts {
    /// The ledger booked this droplet.
    Placed(PlacementStatus),
    /// Nothing fits.
    NoFit {
        /// For people (the scheduler's filter counts).
        reason: String,
        /// The pinned droplet does not exist.
        pinned_missing: bool,
    },
}

/// What the agent's server looks like (the agent's own phases).
#[derive(Debug, Clone, PartialEq)]
pub enum ServerFacts {
    /// The agent did not answer.
    Unreachable(String),
    /// The agent does not know the server.
    Absent,
    /// The agent refused the server's spec (a 4xx answer to the PUT): only a change of the
    /// template or deployment helps.
    Rejected(String),
    /// The agent knows it.
    Present {
        /// The agent's phase.
        phase: mcp_droplet_agent::api::Phase,
        /// Why it failed or what it waits for.
        reason: Option<String>,
        /// The configuration hash the server runs with (its label).
        config_hash: Option<String>,
    },
}

/// The outcome of the MCP check in this pass.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeFacts {
    /// Handshake and tools/list succeeded.
    Passed {
        /// The public endpoint that was probed.
        endpoint: String,
        /// Server name, version, protocol and tool count (without a probe time).
        mcp: McpStatus,
    },
    /// It failed.
    Failed {
        /// CamelCase reason.
        reason: String,
        /// For people (never the token).
        message: String,
    },
}

/// Per-deployment counters kept in memory between passes (lost on restart, which only delays
/// a restart or a move).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Memory {
    /// Consecutive failed checks of a Ready deployment.
    pub probe_failures: u32,
    /// Consecutive failures of the current step on the current droplet.
    pub step_failures: u32,
    /// Whether the server was restarted in the current run of failures.
    pub restarted: bool,
    /// UIDs of the droplets left after repeated failures there (not chosen again). By UID, not
    /// name: a pool's replacement of a lost droplet is made for the same deployments and so
    /// gets the same name, and must be chosen.
    pub excluded: Vec<String>,
    /// When the server last passed its check (a Ready deployment woken earlier, e.g. by a
    /// droplet heartbeat, is not checked again before `reprobe_interval`).
    pub last_check: Option<Timestamp>,
}

/// Why the server is pushed to the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushReason {
    /// First deployment on this droplet.
    Initial,
    /// The desired configuration changed (spec, template or a Secret).
    ConfigChanged,
    /// The agent lost the server (drift).
    Missing,
    /// Repeated failed checks: delete and create again.
    Restart,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Ask the ledger for a droplet.
    Schedule,
    /// Nothing fits: wake the pool controller, then wait.
    RequestDroplet(Duration),
    /// Leave the current droplet (forget the booking, remove the server if reachable).
    Release {
        /// The droplet left.
        droplet: String,
        /// Why, for the event.
        reason: String,
        /// Exclude it from the next scheduling (repeated failures there).
        exclude: bool,
    },
    /// Read the server from the agent.
    ObserveServer,
    /// Send the desired server to the agent.
    Push(PushReason),
    /// Run the MCP check against the endpoint.
    Probe,
    /// Done for this pass; come back after this long.
    Wait(Duration),
}

/// Everything observed so far in this pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// The template.
    pub template: TemplateFacts,
    /// Env and Secrets (None until the template is usable).
    pub inputs: Option<InputFacts>,
    /// Where the deployment is placed (recorded in status, or booked this pass).
    pub placement: Option<PlacementStatus>,
    /// The placed droplet's state.
    pub droplet: Option<DropletFacts>,
    /// A scheduling attempt of this pass that found nothing.
    pub schedule: Option<ScheduleFacts>,
    /// The agent's view of the server (None: not asked yet).
    pub server: Option<ServerFacts>,
    /// A push made in this pass.
    pub pushed: Option<PushReason>,
    /// The MCP check of this pass.
    pub probe: Option<ProbeFacts>,
    /// Counters from earlier passes.
    pub memory: Memory,
    /// Intervals and thresholds.
    pub settings: PlanSettings,
}

/// An event to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedEvent {
    /// Warning rather than Normal.
    pub warning: bool,
    /// CamelCase reason.
    pub reason: String,
    /// For people.
    pub note: String,
}

/// The plan of one step of a pass.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentPlan {
    /// What to do next.
    pub next: Next,
    /// The whole status as of what is known now.
    pub status: MCPDeploymentStatus,
    /// Counters to keep for the next pass.
    pub memory: Memory,
}

/// The fresh step list.
fn fresh_steps() -> Vec<Step> {
    StepName::ALL
        .iter()
        .map(|s| Step {
            name: s.as_str().to_string(),
            ..Step::default()
        })
        .collect()
}

/// Builds `status.progress` keeping start and finish times of steps that did not change.
struct Steps {
    steps: Vec<Step>,
    now: Timestamp,
}

impl Steps {
    fn from_previous(previous: Option<&Progress>, reset: bool, now: Timestamp) -> Self {
        let mut steps = fresh_steps();
        if let Some(previous) = previous
            && !reset
        {
            for step in &mut steps {
                if let Some(old) = previous.steps.iter().find(|s| s.name == step.name) {
                    *step = old.clone();
                }
            }
        }
        Steps { steps, now }
    }

    /// Forgets `first` and every later step (they run again).
    fn restart_from(&mut self, first: StepName) {
        for name in StepName::ALL.into_iter().filter(|n| *n >= first) {
            *self.get(name) = Step {
                name: name.as_str().to_string(),
                ..Step::default()
            };
        }
    }

    fn get(&mut self, name: StepName) -> &mut Step {
        &mut self.steps[name.index()]
    }

    fn state(&self, name: StepName) -> StepState {
        self.steps[name.index()].state
    }

    fn finish(&mut self, name: StepName, state: StepState) {
        let now = self.now;
        let step = self.get(name);
        if step.state == state {
            return;
        }
        step.state = state;
        step.message = None;
        if state == StepState::Skipped {
            step.started_at = None;
            step.finished_at = None;
        } else {
            step.started_at.get_or_insert(Time(now));
            step.finished_at = Some(Time(now));
        }
    }

    /// Makes `current` the running step: earlier steps done (Provisioning skipped unless it
    /// ran), later ones pending.
    fn advance_to(&mut self, current: StepName, message: Option<String>) {
        let now = self.now;
        for name in StepName::ALL {
            if name < current {
                match self.state(name) {
                    StepState::Succeeded | StepState::Skipped => {}
                    StepState::Pending if name == StepName::Provisioning => {
                        self.finish(name, StepState::Skipped)
                    }
                    _ => self.finish(name, StepState::Succeeded),
                }
            } else if name == current {
                let step = self.get(name);
                if step.state != StepState::Running {
                    step.state = StepState::Running;
                    step.started_at = Some(Time(now));
                    step.finished_at = None;
                }
                step.message = message.clone();
            } else {
                let step = self.get(name);
                if step.state != StepState::Pending || step.started_at.is_some() {
                    *step = Step {
                        name: name.as_str().to_string(),
                        ..Step::default()
                    };
                }
            }
        }
    }

    /// Marks `current` failed (a permanent error) with `message`.
    fn fail(&mut self, current: StepName, message: String) {
        self.advance_to(current, None);
        let now = self.now;
        let step = self.get(current);
        step.state = StepState::Failed;
        step.finished_at = Some(Time(now));
        step.message = Some(message);
    }

    /// Every step done.
    fn complete(&mut self) {
        if self.state(StepName::Ready) != StepState::Succeeded {
            self.advance_to(StepName::Ready, None);
        }
        self.finish(StepName::Ready, StepState::Succeeded);
    }

    fn progress(self, current: StepName) -> Progress {
        let done = self
            .steps
            .iter()
            .filter(|s| matches!(s.state, StepState::Succeeded | StepState::Skipped))
            .count();
        Progress {
            current_step: Some(current.as_str().to_string()),
            percent: u32::try_from(done * 100 / self.steps.len()).unwrap_or(100),
            steps: self.steps,
        }
    }
}

/// How the pass ends, before it is turned into a status.
struct Outcome {
    current: StepName,
    health: Health,
    next: Next,
}

/// The next step of the deploy flow for `deployment` given what was `observed`, at `now`.
pub fn plan(deployment: &MCPDeployment, observed: &Observed, now: Timestamp) -> DeploymentPlan {
    let previous = deployment.status.as_ref();
    let generation = deployment.metadata.generation;
    let spec_changed = previous.is_some_and(|p| p.observed_generation != generation);
    let mut steps = Steps::from_previous(previous.map(|p| &p.progress), spec_changed, now);
    // Placed elsewhere than the status says (moved in this pass): everything from Scheduling
    // on happens again, and nothing of the old droplet's endpoint is kept.
    let recorded = previous
        .and_then(|p| p.placement.as_ref())
        .and_then(|p| p.droplet.as_deref());
    let placed = observed
        .placement
        .as_ref()
        .and_then(|p| p.droplet.as_deref());
    let moved = recorded.is_some() && placed.is_some() && recorded != placed;
    if moved {
        steps.restart_from(StepName::Scheduling);
    }
    let mut memory = observed.memory.clone();
    let mut status = previous.cloned().unwrap_or_default();
    status.placement = observed.placement.clone();
    let mut scheduled = scheduled_condition(observed);
    let mut degraded = (ConditionStatus::False, "Healthy", String::new());

    let outcome = decide(
        deployment,
        observed,
        now,
        &mut steps,
        &mut memory,
        &mut degraded,
    );
    let Outcome {
        current,
        health,
        next,
    } = outcome;

    // Endpoint and handshake: kept while the server stays on its droplet, cleared when it
    // leaves; `lastProbeTime` only moves when the result changes (decision 0017).
    if moved || observed.placement.is_none() || matches!(next, Next::Release { .. }) {
        status.endpoint = None;
        status.mcp = None;
    }
    if let Some(ProbeFacts::Passed { endpoint, mcp }) = &observed.probe {
        let unchanged = status.endpoint.as_deref() == Some(endpoint.as_str())
            && status.mcp.as_ref().is_some_and(|old| {
                McpStatus {
                    last_probe_time: None,
                    ..old.clone()
                } == *mcp
            });
        if !unchanged {
            status.endpoint = Some(endpoint.clone());
            status.mcp = Some(McpStatus {
                last_probe_time: Some(Time(now)),
                ..mcp.clone()
            });
        }
    }
    if let Some(InputFacts::Resolved { config_hash }) = &observed.inputs {
        status.config_hash = Some(config_hash.clone());
    }
    let progress = steps.progress(current);
    if spec_changed || moved || matches!(next, Next::Release { .. }) {
        status.time_to_ready_seconds = None;
    }
    if current == StepName::Ready && status.time_to_ready_seconds.is_none() {
        status.time_to_ready_seconds = time_to_ready(deployment, &progress, now);
    }
    status.phase = if matches!(health, Health::Stalled { .. })
        && progress.steps.iter().any(|s| s.state == StepState::Failed)
    {
        DeploymentPhase::Failed
    } else {
        current.phase()
    };
    status.progress = progress;
    status.observed_generation = generation;
    if let Some(ScheduleFacts::NoFit { .. }) = &observed.schedule {
        scheduled = (
            ConditionStatus::False,
            "NoFit",
            observed
                .schedule
                .as_ref()
                .map(schedule_message)
                .unwrap_or_default(),
        );
    }
    let extra = vec![
        condition(
            SCHEDULED,
            scheduled.0,
            scheduled.1,
            scheduled.2,
            generation,
            now,
        ),
        verified_condition(
            observed,
            status.mcp.as_ref(),
            previous.filter(|_| !moved),
            generation,
            now,
        ),
        condition(
            DEGRADED, degraded.0, degraded.1, degraded.2, generation, now,
        ),
    ];
    let existing = previous.map(|p| p.conditions.as_slice()).unwrap_or(&[]);
    status.conditions = merged_conditions(existing, &health, extra, generation, now);
    DeploymentPlan {
        next,
        status,
        memory,
    }
}

fn schedule_message(s: &ScheduleFacts) -> String {
    match s {
        ScheduleFacts::Placed(p) => placed_message(p),
        ScheduleFacts::NoFit { reason, .. } => reason.clone(),
    }
}

fn placed_message(p: &PlacementStatus) -> String {
    format!(
        "on {} (score {})",
        p.droplet.as_deref().unwrap_or("?"),
        p.score.unwrap_or(0.0)
    )
}

fn scheduled_condition(observed: &Observed) -> (ConditionStatus, &'static str, String) {
    match &observed.placement {
        Some(p) => (ConditionStatus::True, "Scheduled", placed_message(p)),
        None => (
            ConditionStatus::False,
            "Pending",
            "not scheduled yet".to_string(),
        ),
    }
}

/// The Verified condition: True with the last good handshake, False with a failure; a pass
/// that did not probe keeps what the status had (no churn).
fn verified_condition(
    observed: &Observed,
    mcp: Option<&McpStatus>,
    previous: Option<&MCPDeploymentStatus>,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    match &observed.probe {
        Some(ProbeFacts::Passed { .. }) => {
            let m = mcp.cloned().unwrap_or_default();
            condition(
                VERIFIED,
                true,
                crate::probe::status::REASON_HANDSHAKE_SUCCEEDED,
                format!(
                    "{} {} answered with {} tools (protocol {})",
                    m.server_name.unwrap_or_default(),
                    m.server_version.unwrap_or_default(),
                    m.tools,
                    m.protocol_version.unwrap_or_default()
                ),
                generation,
                now,
            )
        }
        Some(ProbeFacts::Failed { reason, message }) => {
            condition(VERIFIED, false, reason, message.clone(), generation, now)
        }
        None => match previous.and_then(|p| find(&p.conditions, VERIFIED)) {
            Some(old) if observed.placement.is_some() => Condition {
                observed_generation: generation,
                ..old.clone()
            },
            _ => condition(
                VERIFIED,
                ConditionStatus::Unknown,
                "NotProbed",
                "the endpoint has not been checked yet",
                generation,
                now,
            ),
        },
    }
}

fn time_to_ready(deployment: &MCPDeployment, progress: &Progress, now: Timestamp) -> Option<f64> {
    let start = progress
        .steps
        .first()
        .and_then(|s| s.started_at.as_ref())
        .map(|t| t.0)
        .or_else(|| deployment.metadata.creation_timestamp.as_ref().map(|t| t.0))?;
    let seconds = now.duration_since(start).as_secs_f64().max(0.0);
    Some((seconds * 100.0).round() / 100.0)
}

fn stalled(
    steps: &mut Steps,
    step: StepName,
    reason: &str,
    message: String,
    s: &PlanSettings,
) -> Outcome {
    steps.fail(step, message.clone());
    Outcome {
        current: step,
        health: Health::stalled(reason, message),
        next: Next::Wait(s.stalled_recheck),
    }
}

fn progressing(
    steps: &mut Steps,
    step: StepName,
    reason: &str,
    message: String,
    next: Next,
) -> Outcome {
    steps.advance_to(step, Some(message.clone()));
    Outcome {
        current: step,
        health: Health::progressing(reason, message),
        next,
    }
}

/// Why the deployment must leave the droplet it is placed on, if it must: the droplet is gone,
/// being deleted, draining, failed or NotReady past the grace period, or the deployment is now
/// pinned elsewhere. With whether the droplet is excluded from the next scheduling.
fn must_leave(
    deployment: &MCPDeployment,
    observed: &Observed,
    now: Timestamp,
) -> Option<(String, bool)> {
    let droplet = observed
        .placement
        .as_ref()?
        .droplet
        .clone()
        .unwrap_or_default();
    if let Some(pin) = crate::fleet::deployment::pinned_droplet(deployment)
        && pin != droplet
    {
        return Some((format!("the deployment is now pinned to {pin}"), false));
    }
    match observed.droplet.as_ref().unwrap_or(&DropletFacts::Gone) {
        DropletFacts::Gone => Some((format!("droplet {droplet} is gone"), false)),
        DropletFacts::Deleting => Some((format!("droplet {droplet} is being deleted"), false)),
        DropletFacts::Draining => Some((format!("droplet {droplet} is draining"), false)),
        DropletFacts::Failed => Some((format!("droplet {droplet} failed"), true)),
        DropletFacts::NotReady { since } => {
            let waited = now.duration_since(since.unwrap_or(now)).as_secs().max(0) as u64;
            (waited >= observed.settings.move_grace.as_secs()).then(|| {
                (
                    format!("droplet {droplet} has been NotReady for {waited}s"),
                    true,
                )
            })
        }
        DropletFacts::Starting | DropletFacts::Ready(_) => None,
    }
}

/// The decision itself: the first step that is not done yet, and what it needs.
fn decide(
    deployment: &MCPDeployment,
    observed: &Observed,
    now: Timestamp,
    steps: &mut Steps,
    memory: &mut Memory,
    degraded: &mut (ConditionStatus, &'static str, String),
) -> Outcome {
    let s = &observed.settings;
    let template = &deployment.spec.template_ref.name;
    // A droplet that cannot keep the deployment is left first, whatever else is wrong: a
    // stalled deployment must not hold a draining droplet.
    if let (Some(placement), Some((reason, exclude))) =
        (&observed.placement, must_leave(deployment, observed, now))
    {
        steps.advance_to(StepName::Scheduling, Some(reason.clone()));
        return Outcome {
            current: StepName::Scheduling,
            health: Health::progressing("Moving", reason.clone()),
            next: Next::Release {
                droplet: placement.droplet.clone().unwrap_or_default(),
                reason,
                exclude,
            },
        };
    }
    // 1. Validating.
    match &observed.template {
        TemplateFacts::Missing => {
            return stalled(
                steps,
                StepName::Validating,
                "TemplateNotFound",
                format!("MCPTemplate {template:?} not found"),
                s,
            );
        }
        TemplateFacts::Rejected(why) => {
            return stalled(
                steps,
                StepName::Validating,
                "TemplateRejected",
                format!("MCPTemplate {template:?} is rejected: {why}"),
                s,
            );
        }
        TemplateFacts::Usable => {}
    }
    match &observed.inputs {
        None => {
            return progressing(
                steps,
                StepName::Validating,
                "Validating",
                "resolving env".into(),
                Next::Wait(s.retry),
            );
        }
        Some(InputFacts::ReferenceMissing { kind, name, key }) => {
            let reason = if *kind == "Secret" {
                "SecretNotFound"
            } else {
                "ConfigMapNotFound"
            };
            return stalled(
                steps,
                StepName::Validating,
                reason,
                format!("{kind} {name:?} (key {key:?}) not found"),
                s,
            );
        }
        Some(InputFacts::Invalid(message)) => {
            return stalled(
                steps,
                StepName::Validating,
                "InvalidSpec",
                message.clone(),
                s,
            );
        }
        Some(InputFacts::Resolved { .. }) => {}
    }
    let config_hash = match &observed.inputs {
        Some(InputFacts::Resolved { config_hash }) => config_hash.as_str(),
        _ => "",
    };

    // 2. Scheduling (and 3. Provisioning when nothing fits).
    let Some(placement) = &observed.placement else {
        return match &observed.schedule {
            None | Some(ScheduleFacts::Placed(_)) => progressing(
                steps,
                StepName::Scheduling,
                "Scheduling",
                "choosing a droplet".into(),
                Next::Schedule,
            ),
            Some(ScheduleFacts::NoFit {
                reason,
                pinned_missing: true,
            }) => stalled(
                steps,
                StepName::Scheduling,
                "ReferenceNotFound",
                reason.clone(),
                s,
            ),
            Some(ScheduleFacts::NoFit { reason, .. })
                if deployment.spec.placement.auto_provision
                    && crate::fleet::deployment::pinned_droplet(deployment).is_none() =>
            {
                progressing(
                    steps,
                    StepName::Provisioning,
                    "Provisioning",
                    format!("no droplet fits ({reason}); waiting for a new droplet"),
                    Next::RequestDroplet(s.stalled_recheck),
                )
            }
            Some(ScheduleFacts::NoFit { reason, .. }) => stalled(
                steps,
                StepName::Scheduling,
                "Unschedulable",
                format!("no droplet fits and autoProvision is off: {reason}"),
                s,
            ),
        };
    };
    let droplet = placement.droplet.clone().unwrap_or_default();
    let leave = |reason: String, exclude: bool, steps: &mut Steps| Outcome {
        current: StepName::Scheduling,
        health: Health::progressing("Moving", reason.clone()),
        next: {
            steps.advance_to(StepName::Scheduling, Some(reason.clone()));
            Next::Release {
                droplet: droplet.clone(),
                reason,
                exclude,
            }
        },
    };
    match observed.droplet.as_ref().unwrap_or(&DropletFacts::Gone) {
        // Left above (`must_leave`).
        DropletFacts::Gone
        | DropletFacts::Deleting
        | DropletFacts::Draining
        | DropletFacts::Failed => {}
        DropletFacts::NotReady { since } => {
            let waited = now.duration_since(since.unwrap_or(now)).as_secs().max(0) as u64;
            let left = s.move_grace.as_secs().saturating_sub(waited);
            let message =
                format!("droplet {droplet} is NotReady; moving elsewhere after {left}s more");
            let wait = Next::Wait(Duration::from_secs(left).min(s.reprobe_interval));
            let current = current_step_of(steps);
            if current == StepName::Ready {
                *degraded = (ConditionStatus::True, "DropletNotReady", message.clone());
                return Outcome {
                    current,
                    health: Health::progressing("DropletNotReady", message),
                    next: wait,
                };
            }
            return progressing(steps, StepName::Preparing, "DropletNotReady", message, wait);
        }
        DropletFacts::Starting => {
            return progressing(
                steps,
                StepName::Provisioning,
                "Provisioning",
                format!("waiting for droplet {droplet} to become Ready"),
                Next::Wait(s.retry),
            );
        }
        DropletFacts::Ready(AgentAccess::NotEnrolled) => {
            return progressing(
                steps,
                StepName::Preparing,
                "Preparing",
                format!("waiting for the agent of droplet {droplet} to be enrolled"),
                Next::Wait(s.retry),
            );
        }
        DropletFacts::Ready(AgentAccess::DtmaCannotRun(why)) => {
            return stalled(
                steps,
                StepName::Preparing,
                "Unsupported",
                format!("droplet {droplet} runs DTMA, which cannot run this deployment: {why}"),
                s,
            );
        }
        DropletFacts::Ready(AgentAccess::Reachable | AgentAccess::Dtma) => {}
    }
    if memory.step_failures >= s.move_after {
        return leave(
            format!(
                "{} consecutive failures on droplet {droplet}",
                memory.step_failures
            ),
            true,
            steps,
        );
    }

    // A converged deployment woken before its next check waits for it (nothing changed).
    let converged = current_step_of(steps) == StepName::Ready
        && deployment
            .status
            .as_ref()
            .and_then(|st| st.config_hash.as_deref())
            == Some(config_hash)
        && memory.probe_failures == 0
        && observed.server.is_none();
    if converged && let Some(last) = memory.last_check {
        let since = Duration::try_from(now.duration_since(last)).unwrap_or(Duration::ZERO);
        if since < s.reprobe_interval {
            return Outcome {
                current: StepName::Ready,
                health: Health::ready("Verified", ready_message(deployment)),
                next: Next::Wait(s.reprobe_interval - since),
            };
        }
    }

    // 4-6. Preparing, Pulling, Deploying: the agent's view of the server.
    let Some(server) = &observed.server else {
        // Keep the step shown so far until the agent answered.
        let current = current_step_of(steps).max(StepName::Preparing);
        if current == StepName::Preparing {
            steps.advance_to(StepName::Preparing, None);
        }
        return Outcome {
            current,
            health: Health::progressing(current.as_str(), "asking the agent"),
            next: Next::ObserveServer,
        };
    };
    let was_ready = current_step_of(steps) == StepName::Ready;
    let push_reason = match server {
        ServerFacts::Unreachable(message) => {
            return check_failed(
                deployment,
                observed,
                steps,
                memory,
                degraded,
                was_ready,
                current_step_of(steps).clamp(StepName::Preparing, StepName::Verifying),
                "AgentUnreachable",
                format!("the agent of droplet {droplet} does not answer: {message}"),
            );
        }
        ServerFacts::Rejected(message) => {
            return stalled(
                steps,
                StepName::Pulling,
                "AgentRejected",
                format!("the agent of droplet {droplet} refused the server: {message}"),
                s,
            );
        }
        ServerFacts::Absent if was_ready => Some(PushReason::Missing),
        ServerFacts::Absent => Some(PushReason::Initial),
        ServerFacts::Present {
            config_hash: running,
            ..
        } if running.as_deref() != Some(config_hash) => Some(PushReason::ConfigChanged),
        ServerFacts::Present { .. } => None,
    };
    if let Some(reason) = push_reason {
        if observed.pushed.is_none() {
            steps.advance_to(StepName::Pulling, Some(push_message(reason)));
            return Outcome {
                current: StepName::Pulling,
                health: Health::progressing("Pulling", push_message(reason)),
                next: Next::Push(reason),
            };
        }
        return progressing(
            steps,
            StepName::Pulling,
            "Pulling",
            "waiting for the agent to take the server".into(),
            Next::Wait(STEP_POLL),
        );
    }
    let ServerFacts::Present { phase, reason, .. } = server else {
        return progressing(
            steps,
            StepName::Pulling,
            "Pulling",
            "waiting for the agent".into(),
            Next::Wait(STEP_POLL),
        );
    };
    use mcp_droplet_agent::api::Phase;
    match phase {
        Phase::Pending | Phase::Pulling => {
            return progressing(
                steps,
                StepName::Pulling,
                "Pulling",
                "the agent is pulling the image".into(),
                Next::Wait(STEP_POLL),
            );
        }
        Phase::Starting => {
            return progressing(
                steps,
                StepName::Deploying,
                "Deploying",
                "the agent is starting the container".into(),
                Next::Wait(STEP_POLL),
            );
        }
        Phase::Failed => {
            let why = reason.clone().unwrap_or_else(|| "no reason given".into());
            memory.step_failures = memory.step_failures.saturating_add(1);
            let message = format!(
                "the agent reports the server failed: {why} (failure {} of {} on {droplet}; the agent retries)",
                memory.step_failures, s.move_after
            );
            if was_ready {
                *degraded = (ConditionStatus::True, "ServerFailed", message.clone());
            }
            // Back off within the step: the agent retries on its own meanwhile.
            let wait = s
                .retry
                .saturating_mul(memory.step_failures)
                .min(s.reprobe_interval);
            return progressing(
                steps,
                StepName::Deploying,
                "ServerFailed",
                message,
                Next::Wait(wait),
            );
        }
        Phase::Running => {}
    }

    // 7. Verifying, then 8. Ready.
    match &observed.probe {
        None => {
            let current = if was_ready {
                StepName::Ready
            } else {
                steps.advance_to(StepName::Verifying, Some("MCP handshake".into()));
                StepName::Verifying
            };
            Outcome {
                current,
                health: Health::progressing("Verifying", "checking the endpoint"),
                next: Next::Probe,
            }
        }
        Some(ProbeFacts::Failed { reason, message }) => check_failed(
            deployment,
            observed,
            steps,
            memory,
            degraded,
            was_ready,
            StepName::Verifying,
            reason,
            format!("MCP check failed: {message}"),
        ),
        Some(ProbeFacts::Passed { mcp, .. }) => {
            memory.probe_failures = 0;
            memory.step_failures = 0;
            memory.restarted = false;
            memory.last_check = Some(now);
            // Serving again: droplets left earlier may be chosen next time.
            memory.excluded.clear();
            steps.complete();
            Outcome {
                current: StepName::Ready,
                health: Health::ready(
                    "Verified",
                    format!(
                        "{} answered on droplet {droplet} with {} tools",
                        mcp.server_name.as_deref().unwrap_or("the server"),
                        mcp.tools
                    ),
                ),
                next: Next::Wait(s.reprobe_interval),
            }
        }
    }
}

fn push_message(reason: PushReason) -> String {
    match reason {
        PushReason::Initial => "sent the server to the agent".into(),
        PushReason::ConfigChanged => "configuration changed; replacing the server".into(),
        PushReason::Missing => "the agent lost the server; deploying it again".into(),
        PushReason::Restart => "restarting the server after failed checks".into(),
    }
}

/// A failed check (probe or agent unreachable): before Ready a retry within Verifying (moving
/// after repeated failures); after Ready Degraded, then a restart, then a move.
#[allow(clippy::too_many_arguments)]
fn check_failed(
    deployment: &MCPDeployment,
    observed: &Observed,
    steps: &mut Steps,
    memory: &mut Memory,
    degraded: &mut (ConditionStatus, &'static str, String),
    was_ready: bool,
    step: StepName,
    reason: &str,
    message: String,
) -> Outcome {
    let s = &observed.settings;
    let droplet = observed
        .placement
        .as_ref()
        .and_then(|p| p.droplet.clone())
        .unwrap_or_default();
    if !was_ready {
        memory.step_failures = memory.step_failures.saturating_add(1);
        let text = format!(
            "{message} (failure {} of {} on {droplet})",
            memory.step_failures, s.move_after
        );
        return progressing(steps, step, reason, text, Next::Wait(s.retry));
    }
    memory.probe_failures = memory.probe_failures.saturating_add(1);
    let n = memory.probe_failures;
    if n >= s.move_after {
        steps.advance_to(StepName::Scheduling, Some(message.clone()));
        return Outcome {
            current: StepName::Scheduling,
            health: Health::progressing("Moving", message.clone()),
            next: Next::Release {
                droplet,
                reason: format!("{n} failed checks: {message}"),
                exclude: true,
            },
        };
    }
    let text = format!("{n} consecutive failed checks: {message}");
    if n >= s.degraded_after {
        *degraded = (ConditionStatus::True, "ChecksFailing", text.clone());
    }
    if n >= s.restart_after && !memory.restarted && observed.pushed.is_none() {
        memory.restarted = true;
        steps.advance_to(StepName::Pulling, Some(push_message(PushReason::Restart)));
        return Outcome {
            current: StepName::Pulling,
            health: Health::progressing("Restarting", text),
            next: Next::Push(PushReason::Restart),
        };
    }
    if n >= s.degraded_after {
        return Outcome {
            current: StepName::Ready,
            health: Health::progressing("Degraded", text),
            next: Next::Wait(s.retry.min(s.reprobe_interval)),
        };
    }
    // Below the Degraded threshold the deployment stays Ready (Verified shows the failure)
    // and is checked again soon.
    Outcome {
        current: StepName::Ready,
        health: Health::ready("Verified", ready_message(deployment)),
        next: Next::Wait(s.retry.min(s.reprobe_interval)),
    }
}

fn ready_message(deployment: &MCPDeployment) -> String {
    deployment
        .status
        .as_ref()
        .and_then(|s| find(&s.conditions, crate::controller::kstatus::READY))
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// The step the deployment was at, by its previous status (Ready when every step is done).
fn current_step_of(steps: &Steps) -> StepName {
    if steps.state(StepName::Ready) == StepState::Succeeded {
        return StepName::Ready;
    }
    StepName::ALL
        .iter()
        .copied()
        .find(|s| !matches!(steps.state(*s), StepState::Succeeded | StepState::Skipped))
        .unwrap_or(StepName::Validating)
}

/// Events for what changed between the status before a pass and after it: step transitions,
/// and the Stalled and Degraded conditions flipping (recoveries included).
pub fn events_between(
    old: Option<&MCPDeploymentStatus>,
    new: &MCPDeploymentStatus,
) -> Vec<PlannedEvent> {
    let mut events = Vec::new();
    for step in &new.progress.steps {
        let before = old
            .and_then(|o| o.progress.steps.iter().find(|s| s.name == step.name))
            .map(|s| (s.state, s.started_at.clone()));
        let same_run = before
            .as_ref()
            .is_some_and(|(state, started)| *state == step.state && *started == step.started_at);
        if same_run {
            continue;
        }
        let (warning, note) = match step.state {
            StepState::Pending | StepState::Skipped => continue,
            StepState::Running => (
                false,
                step.message
                    .clone()
                    .unwrap_or_else(|| format!("{} started", step.name)),
            ),
            StepState::Succeeded => (false, format!("{} succeeded", step.name)),
            StepState::Failed => (
                true,
                step.message
                    .clone()
                    .unwrap_or_else(|| format!("{} failed", step.name)),
            ),
        };
        events.push(PlannedEvent {
            warning,
            reason: step.name.clone(),
            note,
        });
    }
    let flag = |status: Option<&MCPDeploymentStatus>, type_: &str| {
        status
            .and_then(|s| find(&s.conditions, type_))
            .filter(|c| c.status == "True")
            .map(|c| (c.reason.clone(), c.message.clone()))
    };
    for type_ in [crate::controller::kstatus::STALLED, DEGRADED] {
        match (flag(old, type_), flag(Some(new), type_)) {
            (None, Some((reason, message))) => events.push(PlannedEvent {
                warning: true,
                reason: if type_ == DEGRADED {
                    DEGRADED.to_string()
                } else {
                    reason
                },
                note: message,
            }),
            (Some((reason, _)), None) => events.push(PlannedEvent {
                warning: false,
                reason: "Recovered".to_string(),
                note: format!("{type_} ({reason}) cleared"),
            }),
            _ => {}
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_droplet_agent::api::Phase;

    const HASH: &str = "00112233aabbccdd";

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("valid timestamp")
    }

    fn settings() -> PlanSettings {
        PlanSettings {
            reprobe_interval: Duration::from_secs(60),
            move_grace: Duration::from_secs(300),
            degraded_after: 2,
            restart_after: 3,
            move_after: 6,
            retry: Duration::from_secs(2),
            stalled_recheck: Duration::from_secs(600),
        }
    }

    fn placed() -> PlacementStatus {
        PlacementStatus {
            droplet: Some("d1".into()),
            region: Some("nyc3".into()),
            score: Some(87.5),
            ..PlacementStatus::default()
        }
    }

    fn observed() -> Observed {
        Observed {
            template: TemplateFacts::Usable,
            inputs: Some(InputFacts::Resolved {
                config_hash: HASH.into(),
            }),
            placement: None,
            droplet: None,
            schedule: None,
            server: None,
            pushed: None,
            probe: None,
            memory: Memory::default(),
            settings: settings(),
        }
    }

    fn on_droplet() -> Observed {
        Observed {
            placement: Some(placed()),
            droplet: Some(DropletFacts::Ready(AgentAccess::Reachable)),
            ..observed()
        }
    }

    fn running(hash: &str) -> ServerFacts {
        ServerFacts::Present {
            phase: Phase::Running,
            reason: None,
            config_hash: Some(hash.into()),
        }
    }

    fn passed() -> ProbeFacts {
        ProbeFacts::Passed {
            endpoint: "https://127.0.0.2:9443/servers/x/mcp".into(),
            mcp: McpStatus {
                server_name: Some("time".into()),
                server_version: Some("1.0".into()),
                protocol_version: Some("2025-06-18".into()),
                tools: 2,
                last_probe_time: None,
            },
        }
    }

    fn deployment() -> MCPDeployment {
        let mut d = MCPDeployment::test("x").template("t").build();
        d.metadata.generation = Some(1);
        d
    }

    fn with_status(status: MCPDeploymentStatus) -> MCPDeployment {
        let mut d = deployment();
        d.status = Some(status);
        d
    }

    /// A deployment that went all the way to Ready at `at(100)`.
    fn ready() -> MCPDeployment {
        let o = Observed {
            server: Some(running(HASH)),
            probe: Some(passed()),
            ..on_droplet()
        };
        with_status(plan(&deployment(), &o, at(100)).status)
    }

    fn cond<'a>(s: &'a MCPDeploymentStatus, t: &str) -> (&'a str, &'a str) {
        let c = find(&s.conditions, t).expect("condition present");
        (c.status.as_str(), c.reason.as_str())
    }

    fn step(s: &MCPDeploymentStatus, name: StepName) -> StepState {
        s.progress.steps[name.index()].state
    }

    #[test]
    fn permanent_errors_stall_with_a_reason_naming_the_cause() {
        let cases: Vec<(&str, Observed, &str, StepName, &str)> = vec![
            (
                "template missing",
                Observed {
                    template: TemplateFacts::Missing,
                    inputs: None,
                    ..observed()
                },
                "TemplateNotFound",
                StepName::Validating,
                "\"t\"",
            ),
            (
                "template rejected",
                Observed {
                    template: TemplateFacts::Rejected("bad image".into()),
                    inputs: None,
                    ..observed()
                },
                "TemplateRejected",
                StepName::Validating,
                "bad image",
            ),
            (
                "secret missing",
                Observed {
                    inputs: Some(InputFacts::ReferenceMissing {
                        kind: "Secret",
                        name: "gh-token".into(),
                        key: "token".into(),
                    }),
                    ..observed()
                },
                "SecretNotFound",
                StepName::Validating,
                "gh-token",
            ),
            (
                "invalid env",
                Observed {
                    inputs: Some(InputFacts::Invalid("env TOKEN is required".into())),
                    ..observed()
                },
                "InvalidSpec",
                StepName::Validating,
                "TOKEN",
            ),
            (
                "pinned droplet missing",
                Observed {
                    schedule: Some(ScheduleFacts::NoFit {
                        reason: "pinned droplet d9 does not exist".into(),
                        pinned_missing: true,
                    }),
                    ..observed()
                },
                "ReferenceNotFound",
                StepName::Scheduling,
                "d9",
            ),
        ];
        for (name, o, reason, failed_step, mentions) in cases {
            let p = plan(&deployment(), &o, at(0));
            assert_eq!(p.next, Next::Wait(Duration::from_secs(600)), "{name}");
            assert_eq!(cond(&p.status, "Stalled"), ("True", reason), "{name}");
            assert_eq!(cond(&p.status, "Ready"), ("False", reason), "{name}");
            assert_eq!(step(&p.status, failed_step), StepState::Failed, "{name}");
            assert_eq!(p.status.phase, DeploymentPhase::Failed, "{name}");
            let message = &find(&p.status.conditions, "Stalled")
                .expect("stalled")
                .message;
            assert!(message.contains(mentions), "{name}: {message}");
        }
    }

    #[test]
    fn the_flow_asks_for_one_thing_at_a_time() {
        let fetching = ServerFacts::Present {
            phase: Phase::Pulling,
            reason: None,
            config_hash: Some(HASH.into()),
        };
        let starting = ServerFacts::Present {
            phase: Phase::Starting,
            reason: None,
            config_hash: Some(HASH.into()),
        };
        let cases: Vec<(&str, Observed, Next, DeploymentPhase)> = vec![
            (
                "unplaced",
                observed(),
                Next::Schedule,
                DeploymentPhase::Scheduling,
            ),
            (
                "placed, agent not asked",
                on_droplet(),
                Next::ObserveServer,
                DeploymentPhase::Preparing,
            ),
            (
                "agent does not know it",
                Observed {
                    server: Some(ServerFacts::Absent),
                    ..on_droplet()
                },
                Next::Push(PushReason::Initial),
                DeploymentPhase::Pulling,
            ),
            (
                "pulling",
                Observed {
                    server: Some(fetching),
                    pushed: Some(PushReason::Initial),
                    ..on_droplet()
                },
                Next::Wait(STEP_POLL),
                DeploymentPhase::Pulling,
            ),
            (
                "starting",
                Observed {
                    server: Some(starting),
                    ..on_droplet()
                },
                Next::Wait(STEP_POLL),
                DeploymentPhase::Deploying,
            ),
            (
                "running, not verified",
                Observed {
                    server: Some(running(HASH)),
                    ..on_droplet()
                },
                Next::Probe,
                DeploymentPhase::Verifying,
            ),
            (
                "verified",
                Observed {
                    server: Some(running(HASH)),
                    probe: Some(passed()),
                    ..on_droplet()
                },
                Next::Wait(Duration::from_secs(60)),
                DeploymentPhase::Ready,
            ),
            (
                "droplet not enrolled yet",
                Observed {
                    droplet: Some(DropletFacts::Ready(AgentAccess::NotEnrolled)),
                    ..on_droplet()
                },
                Next::Wait(Duration::from_secs(2)),
                DeploymentPhase::Preparing,
            ),
            (
                "droplet still booting",
                Observed {
                    droplet: Some(DropletFacts::Starting),
                    ..on_droplet()
                },
                Next::Wait(Duration::from_secs(2)),
                DeploymentPhase::Provisioning,
            ),
            (
                "a DTMA droplet is driven like ours (decision 0023)",
                Observed {
                    droplet: Some(DropletFacts::Ready(AgentAccess::Dtma)),
                    ..on_droplet()
                },
                Next::ObserveServer,
                DeploymentPhase::Preparing,
            ),
            (
                "a DTMA droplet that cannot run the template",
                Observed {
                    droplet: Some(DropletFacts::Ready(AgentAccess::DtmaCannotRun(
                        "stdio".into(),
                    ))),
                    ..on_droplet()
                },
                Next::Wait(Duration::from_secs(600)),
                DeploymentPhase::Failed,
            ),
        ];
        for (name, o, next, phase) in cases {
            let p = plan(&deployment(), &o, at(0));
            assert_eq!(p.next, next, "{name}");
            assert_eq!(p.status.phase, phase, "{name}");
        }
    }

    #[test]
    fn a_refused_server_stalls_and_an_unreachable_agent_is_retried() {
        let refused = Observed {
            server: Some(ServerFacts::Rejected("invalid image".into())),
            pushed: Some(PushReason::Initial),
            ..on_droplet()
        };
        let p = plan(&deployment(), &refused, at(0));
        assert_eq!(cond(&p.status, "Stalled"), ("True", "AgentRejected"));
        assert_eq!(step(&p.status, StepName::Pulling), StepState::Failed);
        let unreachable = Observed {
            server: Some(ServerFacts::Unreachable("connection refused".into())),
            ..on_droplet()
        };
        let p = plan(&deployment(), &unreachable, at(0));
        assert_eq!(p.next, Next::Wait(Duration::from_secs(2)));
        assert_eq!(cond(&p.status, "Reconciling"), ("True", "AgentUnreachable"));
        assert_eq!(p.memory.step_failures, 1);
    }

    #[test]
    fn nothing_fits_provisions_or_stalls() {
        let no_fit = Observed {
            schedule: Some(ScheduleFacts::NoFit {
                reason: "0/2 droplets available: 2 insufficient memory".into(),
                pinned_missing: false,
            }),
            ..observed()
        };
        let p = plan(&deployment(), &no_fit, at(0));
        assert_eq!(p.next, Next::RequestDroplet(Duration::from_secs(600)));
        assert_eq!(p.status.phase, DeploymentPhase::Provisioning);
        assert_eq!(step(&p.status, StepName::Provisioning), StepState::Running);
        assert_eq!(step(&p.status, StepName::Scheduling), StepState::Succeeded);
        assert!(p.status.placement.is_none());
        assert_eq!(cond(&p.status, "Scheduled"), ("False", "NoFit"));
        assert_eq!(cond(&p.status, "Reconciling"), ("True", "Provisioning"));

        let mut manual = deployment();
        manual.spec.placement.auto_provision = false;
        let p = plan(&manual, &no_fit, at(0));
        assert_eq!(cond(&p.status, "Stalled"), ("True", "Unschedulable"));

        // The droplet arrives: the provisioning step that ran is Succeeded, not Skipped.
        let waiting = with_status(plan(&deployment(), &no_fit, at(0)).status);
        let done = Observed {
            server: Some(running(HASH)),
            probe: Some(passed()),
            ..on_droplet()
        };
        let p = plan(&waiting, &done, at(90));
        assert_eq!(
            step(&p.status, StepName::Provisioning),
            StepState::Succeeded
        );
        assert_eq!(p.status.time_to_ready_seconds, Some(90.0));
    }

    #[test]
    fn ready_records_every_step_endpoint_and_handshake() {
        let status = ready().status.expect("status");
        assert_eq!(status.phase, DeploymentPhase::Ready);
        assert_eq!(status.progress.percent, 100);
        assert_eq!(status.progress.current_step.as_deref(), Some("Ready"));
        assert_eq!(step(&status, StepName::Provisioning), StepState::Skipped);
        for name in [StepName::Validating, StepName::Pulling, StepName::Ready] {
            let s = &status.progress.steps[name.index()];
            assert_eq!(s.state, StepState::Succeeded);
            assert_eq!(s.finished_at, Some(Time(at(100))));
        }
        assert_eq!(
            status.endpoint.as_deref(),
            Some("https://127.0.0.2:9443/servers/x/mcp")
        );
        let mcp = status.mcp.as_ref().expect("mcp");
        assert_eq!(mcp.tools, 2);
        assert_eq!(mcp.last_probe_time, Some(Time(at(100))));
        assert_eq!(status.config_hash.as_deref(), Some(HASH));
        assert_eq!(cond(&status, "Ready"), ("True", "Verified"));
        assert_eq!(cond(&status, "Verified"), ("True", "HandshakeSucceeded"));
        assert_eq!(cond(&status, "Degraded"), ("False", "Healthy"));
        assert_eq!(cond(&status, "Scheduled"), ("True", "Scheduled"));
        assert_eq!(status.placement, Some(placed()));
    }

    #[test]
    fn a_converged_deployment_plans_the_same_status_later() {
        let r = ready();
        let before = r.status.clone().expect("status");
        // Woken before the next check: no agent call at all.
        let recent = Observed {
            memory: Memory {
                last_check: Some(at(100)),
                ..Memory::default()
            },
            ..on_droplet()
        };
        let p = plan(&r, &recent, at(130));
        assert_eq!(p.next, Next::Wait(Duration::from_secs(30)));
        assert_eq!(p.status, before);
        // Checked again at the interval with the same result: same status, lastProbeTime kept.
        let checked = Observed {
            server: Some(running(HASH)),
            probe: Some(passed()),
            ..on_droplet()
        };
        let p = plan(&r, &checked, at(400));
        assert_eq!(p.status, before);
        assert_eq!(p.memory.last_check, Some(at(400)));
    }

    #[test]
    fn drift_and_changed_config_are_pushed_again() {
        let r = ready();
        let cases = [
            (ServerFacts::Absent, PushReason::Missing),
            (running("ffffffffffffffff"), PushReason::ConfigChanged),
        ];
        for (server, reason) in cases {
            let o = Observed {
                server: Some(server),
                ..on_droplet()
            };
            let p = plan(&r, &o, at(200));
            assert_eq!(p.next, Next::Push(reason));
            assert_eq!(p.status.phase, DeploymentPhase::Pulling);
            assert_eq!(step(&p.status, StepName::Ready), StepState::Pending);
            assert_eq!(step(&p.status, StepName::Preparing), StepState::Succeeded);
            // Earlier steps keep their times.
            assert_eq!(p.status.progress.steps[0].finished_at, Some(Time(at(100))));
        }
    }

    #[test]
    fn failing_checks_degrade_then_restart_then_move() {
        let r = ready();
        let failed = ProbeFacts::Failed {
            reason: "Timeout".into(),
            message: "no answer".into(),
        };
        // (failures before this check, expected next, Degraded, phase)
        let cases = [
            (
                0,
                Next::Wait(Duration::from_secs(2)),
                "False",
                DeploymentPhase::Ready,
            ),
            (
                1,
                Next::Wait(Duration::from_secs(2)),
                "True",
                DeploymentPhase::Ready,
            ),
            (
                2,
                Next::Push(PushReason::Restart),
                "True",
                DeploymentPhase::Pulling,
            ),
            (
                5,
                Next::Release {
                    droplet: "d1".into(),
                    reason: "6 failed checks: MCP check failed: no answer".into(),
                    exclude: true,
                },
                "False",
                DeploymentPhase::Scheduling,
            ),
        ];
        for (before, next, degraded, phase) in cases {
            let o = Observed {
                server: Some(running(HASH)),
                probe: Some(failed.clone()),
                memory: Memory {
                    probe_failures: before,
                    restarted: before > 2,
                    ..Memory::default()
                },
                ..on_droplet()
            };
            let p = plan(&r, &o, at(200));
            assert_eq!(p.next, next, "after {before}");
            assert_eq!(cond(&p.status, "Degraded").0, degraded, "after {before}");
            assert_eq!(p.status.phase, phase, "after {before}");
            assert_eq!(p.memory.probe_failures, before + 1);
            assert_eq!(cond(&p.status, "Verified"), ("False", "Timeout"));
        }
    }

    #[test]
    fn a_deployment_leaves_droplets_that_cannot_keep_it() {
        let r = ready();
        let leave = |facts: DropletFacts, now: i64| {
            let o = Observed {
                droplet: Some(facts),
                ..on_droplet()
            };
            plan(&r, &o, at(now))
        };
        for (facts, exclude) in [
            (DropletFacts::Gone, false),
            (DropletFacts::Deleting, false),
            (DropletFacts::Draining, false),
            (DropletFacts::Failed, true),
            (DropletFacts::NotReady { since: Some(at(0)) }, true),
        ] {
            let p = leave(facts.clone(), 400);
            let Next::Release {
                droplet,
                exclude: excluded,
                ..
            } = p.next
            else {
                panic!("{facts:?} did not release: {:?}", p.next);
            };
            assert_eq!((droplet.as_str(), excluded), ("d1", exclude), "{facts:?}");
            assert!(p.status.endpoint.is_none() && p.status.mcp.is_none());
            assert!(p.status.time_to_ready_seconds.is_none());
        }
        // NotReady within the grace period: wait, Degraded, still Ready.
        let p = leave(
            DropletFacts::NotReady {
                since: Some(at(300)),
            },
            400,
        );
        assert_eq!(p.next, Next::Wait(Duration::from_secs(60)));
        assert_eq!(cond(&p.status, "Degraded"), ("True", "DropletNotReady"));
        assert_eq!(p.status.phase, DeploymentPhase::Ready);
        // Placed on another droplet in the same pass: nothing claims Ready before it is.
        let elsewhere = Observed {
            placement: Some(PlacementStatus {
                droplet: Some("d2".into()),
                ..placed()
            }),
            ..on_droplet()
        };
        let p = plan(&r, &elsewhere, at(400));
        assert_eq!(p.next, Next::ObserveServer);
        assert_eq!(p.status.phase, DeploymentPhase::Preparing);
        assert!(p.status.endpoint.is_none() && p.status.mcp.is_none());
        assert_eq!(cond(&p.status, "Verified"), ("Unknown", "NotProbed"));
        assert_eq!(
            p.status.progress.steps[StepName::Scheduling.index()].finished_at,
            Some(Time(at(400)))
        );
        // A stalled deployment does not hold a droplet that goes away.
        let stalled_on_draining = Observed {
            template: TemplateFacts::Missing,
            inputs: None,
            droplet: Some(DropletFacts::Draining),
            ..on_droplet()
        };
        assert!(matches!(
            plan(&r, &stalled_on_draining, at(400)).next,
            Next::Release { exclude: false, .. }
        ));
        // A new pin moves it to the pinned droplet.
        let mut repinned = r.clone();
        repinned.spec.placement.droplet_name = Some("d2".into());
        assert!(matches!(
            plan(&repinned, &on_droplet(), at(400)).next,
            Next::Release { exclude: false, .. }
        ));
        // Repeated failures of a step on one droplet move it too.
        let o = Observed {
            memory: Memory {
                step_failures: 6,
                ..Memory::default()
            },
            ..on_droplet()
        };
        assert!(matches!(
            plan(&deployment(), &o, at(0)).next,
            Next::Release { exclude: true, .. }
        ));
    }

    #[test]
    fn a_spec_change_starts_the_steps_again() {
        let mut r = ready();
        r.metadata.generation = Some(2);
        let p = plan(&r, &on_droplet(), at(500));
        assert_eq!(p.status.observed_generation, Some(2));
        assert_eq!(p.status.progress.steps[0].started_at, Some(Time(at(500))));
        assert!(p.status.time_to_ready_seconds.is_none());
    }

    #[test]
    fn events_follow_transitions_and_recoveries() {
        let stalled = plan(
            &deployment(),
            &Observed {
                template: TemplateFacts::Missing,
                inputs: None,
                ..observed()
            },
            at(0),
        )
        .status;
        let events = events_between(None, &stalled);
        assert!(
            events
                .iter()
                .any(|e| e.warning && e.reason == "TemplateNotFound")
        );
        assert!(events.iter().any(|e| e.warning && e.reason == "Validating"));
        // The same status again: nothing to say.
        assert!(events_between(Some(&stalled), &stalled).is_empty());
        let ready = plan(
            &with_status(stalled.clone()),
            &Observed {
                server: Some(running(HASH)),
                probe: Some(passed()),
                ..on_droplet()
            },
            at(50),
        )
        .status;
        let events = events_between(Some(&stalled), &ready);
        let reasons: Vec<&str> = events.iter().map(|e| e.reason.as_str()).collect();
        assert!(reasons.contains(&"Recovered"), "{reasons:?}");
        assert!(reasons.contains(&"Ready"), "{reasons:?}");
        assert!(reasons.contains(&"Verifying"), "{reasons:?}");
        assert!(!reasons.contains(&"Provisioning"), "{reasons:?}");
    }
}
