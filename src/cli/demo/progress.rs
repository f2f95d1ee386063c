//! What the live view shows for one deployment: a pure function of its status (current step,
//! percent, phase, conditions), used by both the bars and the plain lines.

use crate::api::conditions::{self, READY, STALLED};
use crate::api::deployment::{DeploymentPhase, MCPDeployment, StepState};

/// Where a deployment stands, for the live view and the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowState {
    /// No status yet: the operator has not acted on it.
    Waiting,
    /// On its way through the steps.
    Working,
    /// Serving and verified.
    Ready,
    /// Stopped on an error that needs a person (`Stalled=True`).
    Stalled,
    /// `Failed` phase.
    Failed,
}

impl RowState {
    /// Whether the deployment will not move without a change (Ready, Stalled or Failed).
    pub fn is_settled(self) -> bool {
        match self {
            RowState::Ready | RowState::Stalled | RowState::Failed => true,
            RowState::Waiting | RowState::Working => false,
        }
    }
}

/// One deployment's line in the live view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressRow {
    /// The current step (`status.progress.currentStep`, else the phase).
    pub step: String,
    /// 0-100.
    pub percent: u64,
    /// Where it stands.
    pub state: RowState,
    /// Details: the step's message, the blocking reason, or where it runs.
    pub message: String,
}

fn phase_name(phase: DeploymentPhase) -> String {
    format!("{phase:?}")
}

/// Whether the deployment is Ready: its `Ready` condition is True, or (when it has no `Ready`
/// condition) its phase is Ready.
pub fn is_ready(deployment: &MCPDeployment) -> bool {
    let Some(status) = &deployment.status else {
        return false;
    };
    match conditions::find(&status.conditions, READY) {
        Some(c) => c.status == "True",
        None => status.phase == DeploymentPhase::Ready,
    }
}

/// The live view's row for `deployment`.
pub fn progress_row(deployment: &MCPDeployment) -> ProgressRow {
    let Some(status) = &deployment.status else {
        return ProgressRow {
            step: "Pending".to_owned(),
            percent: 0,
            state: RowState::Waiting,
            message: "waiting for the operator".to_owned(),
        };
    };
    let step = status
        .progress
        .current_step
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| phase_name(status.phase));
    let droplet = status
        .placement
        .as_ref()
        .and_then(|p| p.droplet.as_deref())
        .filter(|d| !d.is_empty());
    let stalled = conditions::find(&status.conditions, STALLED).filter(|c| c.status == "True");
    let (state, message) = if is_ready(deployment) {
        let mut message = match droplet {
            Some(d) => format!("on {d}"),
            None => String::new(),
        };
        if let Some(mcp) = &status.mcp {
            message.push_str(&format!(", {} tools", mcp.tools));
        }
        if let Some(seconds) = status.time_to_ready_seconds {
            message.push_str(&format!(", Ready after {seconds:.0} s"));
        }
        (RowState::Ready, message.trim_start_matches(", ").to_owned())
    } else if let Some(c) = stalled {
        (RowState::Stalled, reason_text(&c.reason, &c.message))
    } else if status.phase == DeploymentPhase::Failed {
        (RowState::Failed, failure_reason(deployment))
    } else {
        let step_message = status
            .progress
            .steps
            .iter()
            .find(|s| s.name == step)
            .and_then(|s| s.message.clone())
            .filter(|m| !m.is_empty());
        let message = match (step_message, droplet) {
            (Some(m), _) => m,
            (None, Some(d)) => format!("on {d}"),
            (None, None) => String::new(),
        };
        (RowState::Working, message)
    };
    let percent = match state {
        RowState::Ready => 100,
        _ => u64::from(status.progress.percent.min(100)),
    };
    ProgressRow {
        step,
        percent,
        state,
        message,
    }
}

fn reason_text(reason: &str, message: &str) -> String {
    match (reason.is_empty(), message.is_empty()) {
        (false, false) => format!("{reason}: {message}"),
        (false, true) => reason.to_owned(),
        (true, false) => message.to_owned(),
        (true, true) => "no reason given".to_owned(),
    }
}

/// Why `deployment` is not Ready, for the final report: the Stalled condition, a failed
/// step, the Ready condition's reason, or the step it is stuck in.
pub fn failure_reason(deployment: &MCPDeployment) -> String {
    let Some(status) = &deployment.status else {
        return "no status: the operator never acted on it".to_owned();
    };
    if let Some(c) = conditions::find(&status.conditions, STALLED).filter(|c| c.status == "True") {
        return format!("Stalled: {}", reason_text(&c.reason, &c.message));
    }
    if let Some(step) = status
        .progress
        .steps
        .iter()
        .find(|s| s.state == StepState::Failed)
    {
        let message = step.message.as_deref().unwrap_or("no message");
        return format!("{} failed: {message}", step.name);
    }
    if let Some(c) = conditions::find(&status.conditions, READY).filter(|c| c.status != "True") {
        let phase = phase_name(status.phase);
        // The reason often repeats the phase (`Provisioning`); say it once.
        let reason = if c.reason == phase {
            ""
        } else {
            c.reason.as_str()
        };
        let why = reason_text(reason, &c.message);
        return if status.phase == DeploymentPhase::Ready {
            format!("was Ready, now {why}")
        } else {
            format!("not Ready in {phase}: {why}")
        };
    }
    let step = status
        .progress
        .current_step
        .clone()
        .unwrap_or_else(|| phase_name(status.phase));
    format!("still in {step}")
}

/// The bar's text: state, step and details.
pub fn bar_message(row: &ProgressRow) -> String {
    let label = match row.state {
        RowState::Waiting | RowState::Working => row.step.clone(),
        RowState::Ready => "Ready".to_owned(),
        RowState::Stalled => "Stalled".to_owned(),
        RowState::Failed => "Failed".to_owned(),
    };
    if row.message.is_empty() {
        label
    } else {
        format!("{label:<12} {}", row.message)
    }
}

/// The plain line for a change of step or state (`None` when neither changed), for output that
/// is not a terminal.
pub fn change_line(key: &str, previous: Option<&ProgressRow>, row: &ProgressRow) -> Option<String> {
    if previous.is_some_and(|p| p.step == row.step && p.state == row.state) {
        return None;
    }
    Some(format!(
        "{key:<28} {:>3} %  {}",
        row.percent,
        bar_message(row)
    ))
}

/// One line for many deployments: how many are in each step, Ready last, e.g.
/// `Provisioning 7 · Pulling 2 · Ready 3`.
pub fn summary_message<'a>(rows: impl IntoIterator<Item = &'a ProgressRow>) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for row in rows {
        let label = match row.state {
            RowState::Waiting | RowState::Working => row.step.clone(),
            RowState::Ready => "Ready".to_owned(),
            RowState::Stalled => "Stalled".to_owned(),
            RowState::Failed => "Failed".to_owned(),
        };
        match counts.iter_mut().find(|(l, _)| *l == label) {
            Some((_, n)) => *n += 1,
            None => counts.push((label, 1)),
        }
    }
    // The deploy flow's order, then any other step by name, then Ready.
    const FLOW: [&str; 10] = [
        "Pending",
        "Validating",
        "Scheduling",
        "Provisioning",
        "Preparing",
        "Pulling",
        "Deploying",
        "Verifying",
        "Stalled",
        "Failed",
    ];
    counts.sort_by_key(|(label, _)| match FLOW.iter().position(|s| s == label) {
        Some(i) => (0, i, String::new()),
        None if label == "Ready" => (2, 0, String::new()),
        None => (1, 0, label.clone()),
    });
    counts
        .iter()
        .map(|(label, n)| format!("{label} {n}"))
        .collect::<Vec<_>>()
        .join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::condition;
    use crate::api::deployment::{McpStatus, Progress, Step};

    fn at() -> jiff::Timestamp {
        "2026-12-02T12:00:00Z".parse().unwrap()
    }

    fn with_progress(
        mut d: MCPDeployment,
        step: &str,
        percent: u32,
        message: Option<&str>,
    ) -> MCPDeployment {
        let status = d.status.get_or_insert_with(Default::default);
        status.progress = Progress {
            current_step: Some(step.to_owned()),
            percent,
            steps: vec![Step {
                name: step.to_owned(),
                state: StepState::Running,
                message: message.map(str::to_owned),
                ..Step::default()
            }],
        };
        d
    }

    #[test]
    fn no_status_is_waiting_for_the_operator() {
        let row = progress_row(&MCPDeployment::test("github").build());
        assert_eq!(row.state, RowState::Waiting);
        assert_eq!((row.step.as_str(), row.percent), ("Pending", 0));
        assert!(!row.state.is_settled());
        assert_eq!(
            failure_reason(&MCPDeployment::test("github").build()),
            "no status: the operator never acted on it"
        );
    }

    #[test]
    fn a_running_step_shows_its_name_percent_and_message() {
        let d = MCPDeployment::test("github")
            .phase(DeploymentPhase::Pulling)
            .placed_on("d1", "nyc3")
            .build();
        let row = progress_row(&with_progress(d, "Pulling", 55, Some("40 MiB of 80 MiB")));
        assert_eq!(
            row,
            ProgressRow {
                step: "Pulling".into(),
                percent: 55,
                state: RowState::Working,
                message: "40 MiB of 80 MiB".into(),
            }
        );
        assert_eq!(bar_message(&row), "Pulling      40 MiB of 80 MiB");
    }

    #[test]
    fn without_a_step_message_the_droplet_shows_and_the_phase_stands_in_for_the_step() {
        let d = MCPDeployment::test("time")
            .phase(DeploymentPhase::Deploying)
            .placed_on("d1", "nyc3")
            .build();
        let row = progress_row(&d);
        assert_eq!(row.step, "Deploying");
        assert_eq!(row.message, "on d1");
        assert_eq!(row.percent, 0);
    }

    #[test]
    fn ready_is_full_and_says_where_how_many_tools_and_how_long() {
        let mut d = MCPDeployment::test("time")
            .phase(DeploymentPhase::Ready)
            .placed_on("d1", "nyc3")
            .condition(condition(READY, true, "Verified", "", Some(1), at()))
            .build();
        let status = d.status.as_mut().unwrap();
        status.progress.percent = 90;
        status.mcp = Some(McpStatus {
            tools: 2,
            ..McpStatus::default()
        });
        status.time_to_ready_seconds = Some(41.6);
        let row = progress_row(&d);
        assert_eq!(row.state, RowState::Ready);
        assert_eq!(row.percent, 100);
        assert_eq!(row.message, "on d1, 2 tools, Ready after 42 s");
        assert!(is_ready(&d));
    }

    #[test]
    fn a_false_ready_condition_wins_over_a_ready_phase() {
        let d = MCPDeployment::test("time")
            .phase(DeploymentPhase::Ready)
            .condition(condition(
                READY,
                false,
                "Degraded",
                "2 probes failed",
                Some(1),
                at(),
            ))
            .build();
        assert!(!is_ready(&d));
        assert_eq!(progress_row(&d).state, RowState::Working);
        assert_eq!(
            failure_reason(&d),
            "was Ready, now Degraded: 2 probes failed"
        );
    }

    #[test]
    fn a_reason_that_repeats_the_phase_is_said_once() {
        let d = MCPDeployment::test("fetch")
            .phase(DeploymentPhase::Provisioning)
            .condition(condition(
                READY,
                false,
                "Provisioning",
                "waiting for a new droplet",
                Some(1),
                at(),
            ))
            .build();
        assert_eq!(
            failure_reason(&d),
            "not Ready in Provisioning: waiting for a new droplet"
        );
    }

    #[test]
    fn stalled_shows_the_reason_and_is_settled() {
        let d = MCPDeployment::test("github")
            .phase(DeploymentPhase::Validating)
            .condition(condition(
                STALLED,
                true,
                "SecretMissing",
                "Secret team-a/github-token not found",
                Some(1),
                at(),
            ))
            .build();
        let row = progress_row(&d);
        assert_eq!(row.state, RowState::Stalled);
        assert!(row.state.is_settled());
        assert_eq!(
            row.message,
            "SecretMissing: Secret team-a/github-token not found"
        );
        assert_eq!(
            failure_reason(&d),
            "Stalled: SecretMissing: Secret team-a/github-token not found"
        );
    }

    #[test]
    fn a_failed_step_is_the_failure_reason() {
        let d = MCPDeployment::test("fetch")
            .phase(DeploymentPhase::Failed)
            .build();
        let mut d = with_progress(d, "Pulling", 40, Some("manifest unknown"));
        d.status.as_mut().unwrap().progress.steps[0].state = StepState::Failed;
        assert_eq!(failure_reason(&d), "Pulling failed: manifest unknown");
        assert_eq!(progress_row(&d).state, RowState::Failed);
    }

    #[test]
    fn the_summary_counts_deployments_per_step_in_flow_order_ready_last() {
        let row = |step: &str, state| ProgressRow {
            step: step.to_owned(),
            percent: 0,
            state,
            message: String::new(),
        };
        let rows = [
            row("Ready", RowState::Ready),
            row("Pulling", RowState::Working),
            row("Provisioning", RowState::Working),
            row("Custom", RowState::Working),
            row("Pulling", RowState::Working),
            row("Validating", RowState::Stalled),
        ];
        assert_eq!(
            summary_message(&rows),
            "Provisioning 1 · Pulling 2 · Stalled 1 · Custom 1 · Ready 1"
        );
        assert_eq!(summary_message(&[]), "");
    }

    #[test]
    fn plain_lines_only_on_a_change_of_step_or_state() {
        let d = MCPDeployment::test("github").build();
        let first = progress_row(&with_progress(d.clone(), "Pulling", 10, None));
        let later = progress_row(&with_progress(d.clone(), "Pulling", 60, Some("more")));
        let next = progress_row(&with_progress(d, "Deploying", 70, None));
        let line = change_line("team-a/github", None, &first).unwrap();
        assert!(line.starts_with("team-a/github"), "{line}");
        assert!(line.contains(" 10 %  Pulling"), "{line}");
        assert_eq!(change_line("team-a/github", Some(&first), &later), None);
        assert!(
            change_line("team-a/github", Some(&later), &next)
                .unwrap()
                .contains("Deploying")
        );
    }
}
