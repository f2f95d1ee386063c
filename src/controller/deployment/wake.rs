//! Which MCPDeployments a change of a Droplet wakes.
//!
//! A droplet's status changes often while deployments land on it (its reported deployments,
//! allocations, utilization). Waking every deployment placed on it, and every deployment of
//! its namespace that waits for room, at each of those writes made a burst quadratic: at 1,000
//! deployments most passes were re-scheduling the same waiting deployments against a fleet that
//! had not gained room. So a change wakes the deployments placed on the droplet only when what
//! they act on changed (phase, deletion, the agent's address or certificate, the spec), and the
//! waiting ones only when the droplet gained room (it became Ready, or reports fewer
//! deployments). Everything else is left to the deployments' own requeues.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::ResourceExt;

use crate::api::droplet::{Droplet, DropletPhase};

/// What of a droplet the deployments act on.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    phase: Option<DropletPhase>,
    deleting: bool,
    generation: Option<i64>,
    agent: Option<String>,
    reported: usize,
}

impl Seen {
    /// The parts of `droplet` that matter to its deployments.
    pub fn of(droplet: &Droplet) -> Self {
        let status = droplet.status.as_ref();
        Self {
            phase: status.map(|s| s.phase),
            deleting: droplet.metadata.deletion_timestamp.is_some(),
            generation: droplet.metadata.generation,
            agent: status.and_then(|s| s.agent.as_ref()).map(|a| {
                format!(
                    "{}|{:?}|{:?}",
                    a.reachable, a.endpoint, a.certificate_fingerprint
                )
            }),
            reported: status.map_or(0, |s| s.deployments.len()),
        }
    }
}

/// Which deployments to wake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Wake {
    /// Those placed on the droplet.
    pub placed: bool,
    /// Those of its namespace that wait for a droplet.
    pub waiting: bool,
}

/// The pure decision: from what was seen of the droplet before (none: first sight) to now.
pub fn wake(before: Option<&Seen>, now: &Seen) -> Wake {
    let ready = now.phase == Some(DropletPhase::Ready) && !now.deleting;
    let Some(before) = before else {
        return Wake {
            placed: true,
            waiting: ready,
        };
    };
    let was_ready = before.phase == Some(DropletPhase::Ready) && !before.deleting;
    Wake {
        placed: before.phase != now.phase
            || before.deleting != now.deleting
            || before.generation != now.generation
            || before.agent != now.agent,
        waiting: ready && (!was_ready || now.reported < before.reported),
    }
}

/// The last seen state of every droplet, by `namespace/name`.
#[derive(Debug, Default)]
pub struct Seens(Mutex<HashMap<String, Seen>>);

impl Seens {
    /// Records `droplet` and says whom its change wakes.
    pub fn observe(&self, droplet: &Droplet) -> Wake {
        let key = format!(
            "{}/{}",
            droplet.namespace().unwrap_or_default(),
            droplet.name_any()
        );
        let now = Seen::of(droplet);
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let decision = wake(seen.get(&key), &now);
        seen.insert(key, now);
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(phase: DropletPhase, reported: usize) -> Seen {
        Seen {
            phase: Some(phase),
            deleting: false,
            generation: Some(1),
            agent: Some("a".into()),
            reported,
        }
    }

    #[test]
    fn first_sight_wakes_the_placed_and_if_ready_the_waiting() {
        let w = wake(None, &seen(DropletPhase::Ready, 0));
        assert_eq!(
            w,
            Wake {
                placed: true,
                waiting: true
            }
        );
        let w = wake(None, &seen(DropletPhase::Booting, 0));
        assert_eq!(
            w,
            Wake {
                placed: true,
                waiting: false
            }
        );
    }

    #[test]
    fn a_ready_droplet_gaining_deployments_wakes_nobody() {
        let w = wake(
            Some(&seen(DropletPhase::Ready, 3)),
            &seen(DropletPhase::Ready, 4),
        );
        assert_eq!(w, Wake::default());
    }

    #[test]
    fn room_freed_or_becoming_ready_wakes_the_waiting() {
        let w = wake(
            Some(&seen(DropletPhase::Ready, 4)),
            &seen(DropletPhase::Ready, 3),
        );
        assert!(w.waiting && !w.placed);
        let w = wake(
            Some(&seen(DropletPhase::Enrolling, 0)),
            &seen(DropletPhase::Ready, 0),
        );
        assert!(w.waiting && w.placed);
    }

    #[test]
    fn phase_deletion_spec_and_agent_changes_wake_the_placed() {
        let before = seen(DropletPhase::Ready, 2);
        let mut draining = before.clone();
        draining.phase = Some(DropletPhase::NotReady);
        assert!(wake(Some(&before), &draining).placed);
        let mut deleting = before.clone();
        deleting.deleting = true;
        let w = wake(Some(&before), &deleting);
        assert!(w.placed && !w.waiting, "a deleting droplet offers no room");
        let mut respec = before.clone();
        respec.generation = Some(2);
        assert!(wake(Some(&before), &respec).placed);
        let mut reenrolled = before.clone();
        reenrolled.agent = Some("b".into());
        assert!(wake(Some(&before), &reenrolled).placed);
    }
}
