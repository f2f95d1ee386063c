//! Pure planning for a DTMA droplet: desired servers + the agent's container list → actions.
//!
//! No I/O here. The agent forgets what it manages when it restarts, so the plan is rebuilt from
//! the container list on every pass, and a container the agent no longer knows is handled by
//! deploying a fresh generation beside it instead of by calls the agent would answer with 404.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::probe::McpTransport;

/// Containers this driver creates are named `<prefix><server>[_<hash>][.<n>]`: the server, the
/// configuration hash it was deployed with (the one thing about its configuration DTMA lists
/// back, even after a restart: it lists no env and keeps no labels), and a generation when
/// that name is taken.
pub const DEFAULT_NAME_PREFIX: &str = "mcpdo-";

/// The configuration hash a server's container should carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigHash {
    /// Checked: a container of the server carrying another hash (or none) is stale, and is
    /// replaced (removed, then the new one deployed under its hash).
    Desired(String),
    /// Not checked this pass (a neighbour's, whose own pass checks it; or a pass that only
    /// observes): any running container is kept; a deploy records this hash when known.
    Unchecked(Option<String>),
}

impl ConfigHash {
    /// The hash a new container records.
    fn recorded(&self) -> Option<&str> {
        match self {
            ConfigHash::Desired(hash) => Some(hash),
            ConfigHash::Unchecked(hash) => hash.as_deref(),
        }
    }
}

/// One MCP server that should run on the droplet (the controller maps the spec onto this).
#[derive(Clone, PartialEq, Eq)]
pub struct DesiredServer {
    /// Server name: lowercase letters, digits and `-` (it becomes part of the container name).
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Environment; values may be secrets, so Debug prints only the keys.
    pub env: BTreeMap<String, String>,
    /// The port the server listens on inside the container.
    pub port: u16,
    /// The host port to publish it on (the operator picks it; never 30000, DTMA's own).
    pub host_port: u16,
    /// The MCP transport it speaks.
    pub transport: McpTransport,
    /// Labels; DTMA's `/tools` route drops them (reported as a capability gap).
    pub labels: BTreeMap<String, String>,
    /// The configuration hash its container carries in its name.
    pub config_hash: ConfigHash,
}

impl fmt::Debug for DesiredServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DesiredServer")
            .field("name", &self.name)
            .field("image", &self.image)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("port", &self.port)
            .field("host_port", &self.host_port)
            .field("transport", &self.transport)
            .field("labels", &self.labels)
            .field("config_hash", &self.config_hash)
            .finish()
    }
}

/// Whether a server name can be used in a container name without ambiguity.
pub fn valid_server_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 50
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.as_bytes()[0].is_ascii_alphanumeric()
}

/// A container as the agent lists it, reduced to what planning needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedContainer {
    /// Container name.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Docker state string.
    pub state: String,
    /// Whether the agent's in-memory map knows it (false after an agent restart).
    pub managed: bool,
    /// Published host ports.
    pub host_ports: Vec<u16>,
}

impl ObservedContainer {
    /// Running or about to be (Docker `restarting` comes back by itself under unless-stopped).
    pub fn is_up(&self) -> bool {
        matches!(self.state.as_str(), "running" | "restarting")
    }
}

/// One call the driver makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Stop gracefully (tolerating "already stopped"), then force-remove.
    Remove {
        /// Container name.
        container: String,
    },
    /// Start a known, stopped container.
    Start {
        /// Container name.
        container: String,
    },
    /// Deploy the server under this container name.
    Deploy {
        /// Container name.
        container: String,
        /// What to run.
        server: DesiredServer,
    },
}

/// Something the plan cannot fix through DTMA, reported instead of retried blindly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocker {
    /// A container of ours the restarted agent forgot; DTMA can neither stop nor remove it.
    Orphan {
        /// Container name.
        container: String,
        /// Whether it still runs (and so may hold its host port).
        running: bool,
    },
}

/// The plan for one pass.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Calls in order: removals (they free ports) before starts before deploys.
    pub actions: Vec<Action>,
    /// What cannot be fixed through DTMA.
    pub blockers: Vec<Blocker>,
    /// Desired servers already running as wanted: server → the container kept.
    pub satisfied: BTreeMap<String, String>,
}

impl Plan {
    /// Nothing to do and nothing stuck.
    pub fn is_converged(&self) -> bool {
        self.actions.is_empty() && self.blockers.is_empty()
    }
}

/// Whether `hash` can be part of a container name (the controller's hashes are lowercase hex).
fn valid_hash(hash: &str) -> bool {
    !hash.is_empty()
        && hash.len() <= 64
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A container name of ours, parsed: the server and the configuration hash it carries.
fn parse_name<'a>(prefix: &str, container: &'a str) -> Option<(&'a str, Option<&'a str>)> {
    let rest = container.strip_prefix(prefix)?;
    let rest = match rest.split_once('.') {
        Some((rest, generation)) => {
            if generation.is_empty() || !generation.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            rest
        }
        None => rest,
    };
    let (server, hash) = match rest.split_once('_') {
        Some((server, hash)) if valid_hash(hash) => (server, Some(hash)),
        Some(_) => return None,
        None => (rest, None),
    };
    valid_server_name(server).then_some((server, hash))
}

/// Which server a container belongs to, if it is one of ours.
pub fn owner_of<'a>(prefix: &str, container: &'a str) -> Option<&'a str> {
    parse_name(prefix, container).map(|(server, _)| server)
}

/// The configuration hash a container of ours was deployed with (None: not ours, or named
/// before hashes were recorded).
pub fn config_hash_of<'a>(prefix: &str, container: &'a str) -> Option<&'a str> {
    parse_name(prefix, container).and_then(|(_, hash)| hash)
}

/// The first container name for `server` (carrying `hash`) that is not in use on the host.
fn fresh_name(prefix: &str, server: &str, hash: Option<&str>, taken: &BTreeSet<&str>) -> String {
    let base = match hash.filter(|h| valid_hash(h)) {
        Some(hash) => format!("{prefix}{server}_{hash}"),
        None => format!("{prefix}{server}"),
    };
    if !taken.contains(base.as_str()) {
        return base;
    }
    (2u32..)
        .map(|n| format!("{base}.{n}"))
        .find(|name| !taken.contains(name.as_str()))
        .unwrap_or(base)
}

fn retire(container: &ObservedContainer, removals: &mut Vec<Action>, blockers: &mut Vec<Blocker>) {
    if container.managed {
        removals.push(Action::Remove {
            container: container.name.clone(),
        });
    } else {
        blockers.push(Blocker::Orphan {
            container: container.name.clone(),
            running: container.is_up(),
        });
    }
}

/// Computes the actions that move the observed containers toward the desired servers.
pub fn plan(prefix: &str, desired: &[DesiredServer], observed: &[ObservedContainer]) -> Plan {
    plan_keeping(prefix, desired, &BTreeSet::new(), observed)
}

/// Like [`plan`], but the containers of the servers named in `kept` are left as they are
/// (neither removed nor deployed): servers that should stay but whose desired spec is not
/// known this pass (a missing Secret, say), so an incomplete desired set removes nothing.
pub fn plan_keeping(
    prefix: &str,
    desired: &[DesiredServer],
    kept: &BTreeSet<String>,
    observed: &[ObservedContainer],
) -> Plan {
    let mut result = Plan::default();
    let taken: BTreeSet<&str> = observed.iter().map(|c| c.name.as_str()).collect();
    let mut by_server: BTreeMap<&str, Vec<&ObservedContainer>> = BTreeMap::new();
    for container in observed {
        if let Some(server) = owner_of(prefix, &container.name) {
            by_server.entry(server).or_default().push(container);
        }
    }
    let mut removals = Vec::new();
    let mut starts = Vec::new();
    let mut deploys = Vec::new();

    let wanted: BTreeSet<&str> = desired.iter().map(|s| s.name.as_str()).collect();
    for server in desired {
        let mine = by_server.remove(server.name.as_str()).unwrap_or_default();
        let fresh = |c: &ObservedContainer| match &server.config_hash {
            ConfigHash::Desired(hash) => config_hash_of(prefix, &c.name) == Some(hash.as_str()),
            ConfigHash::Unchecked(_) => true,
        };
        let matches = |c: &&&ObservedContainer| {
            c.image == server.image
                && (c.host_ports.is_empty() || c.host_ports.contains(&server.host_port))
                && fresh(c)
        };
        let keep: Option<&ObservedContainer> = mine
            .iter()
            .filter(matches)
            .find(|c| c.is_up())
            .or_else(|| mine.iter().filter(matches).find(|c| c.managed))
            .copied();
        for other in mine.iter().filter(|c| Some(**c) != keep) {
            retire(other, &mut removals, &mut result.blockers);
        }
        // A forgotten container still running on the server's host port cannot be removed,
        // and a new one beside it would fail to bind (leaving a created container behind).
        let port_held = keep.is_none()
            && mine.iter().any(|c| {
                !c.managed
                    && c.is_up()
                    && (c.host_ports.is_empty() || c.host_ports.contains(&server.host_port))
            });
        match keep {
            Some(container) if container.is_up() => {
                result
                    .satisfied
                    .insert(server.name.clone(), container.name.clone());
            }
            Some(container) => starts.push(Action::Start {
                container: container.name.clone(),
            }),
            None if port_held => {}
            None => deploys.push(Action::Deploy {
                container: fresh_name(prefix, &server.name, server.config_hash.recorded(), &taken),
                server: server.clone(),
            }),
        }
    }
    // Ours, but no longer desired (unless kept as they are).
    for (server, containers) in by_server {
        debug_assert!(!wanted.contains(server));
        if kept.contains(server) {
            continue;
        }
        for container in containers {
            retire(container, &mut removals, &mut result.blockers);
        }
    }
    result.actions.extend(removals);
    result.actions.extend(starts);
    result.actions.extend(deploys);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, image: &str, host_port: u16) -> DesiredServer {
        DesiredServer {
            name: name.into(),
            image: image.into(),
            env: BTreeMap::from([("TOKEN".into(), "secret-value".into())]),
            port: 8080,
            host_port,
            transport: McpTransport::StreamableHttp,
            labels: BTreeMap::new(),
            config_hash: ConfigHash::Unchecked(None),
        }
    }

    fn hashed(name: &str, hash: ConfigHash) -> DesiredServer {
        DesiredServer {
            config_hash: hash,
            ..server(name, "img:1", 31001)
        }
    }

    fn running(name: &str) -> ObservedContainer {
        container(name, "img:1", "running", true)
    }

    fn container(name: &str, image: &str, state: &str, managed: bool) -> ObservedContainer {
        ObservedContainer {
            name: name.into(),
            image: image.into(),
            state: state.into(),
            managed,
            host_ports: Vec::new(),
        }
    }

    const P: &str = DEFAULT_NAME_PREFIX;

    #[test]
    fn debug_hides_env_values() {
        let text = format!("{:?}", server("gh", "img:1", 31001));
        assert!(text.contains("TOKEN"));
        assert!(!text.contains("secret-value"));
    }

    #[test]
    fn ownership_follows_the_naming_rule() {
        assert_eq!(owner_of(P, "mcpdo-github"), Some("github"));
        assert_eq!(owner_of(P, "mcpdo-github.3"), Some("github"));
        assert_eq!(owner_of(P, "mcpdo-github.x"), None);
        assert_eq!(owner_of(P, "dtma_manager"), None);
        assert_eq!(owner_of(P, "mcpdo-Bad_Name"), None);
        assert_eq!(owner_of(P, "mcpdo-github_0a1b"), Some("github"));
        assert_eq!(owner_of(P, "mcpdo-github_0a1b.2"), Some("github"));
        assert_eq!(owner_of(P, "mcpdo-github_"), None);
        assert_eq!(owner_of(P, "mcpdo-github_XYZ"), None);
        assert_eq!(config_hash_of(P, "mcpdo-github_0a1b.2"), Some("0a1b"));
        assert_eq!(config_hash_of(P, "mcpdo-github.2"), None);
        assert_eq!(config_hash_of(P, "other_0a1b"), None);
    }

    #[test]
    fn a_new_container_carries_the_hash_in_its_name() {
        for hash in [
            ConfigHash::Desired("aa01".into()),
            ConfigHash::Unchecked(Some("aa01".into())),
        ] {
            let plan = plan(P, &[hashed("a", hash.clone())], &[]);
            assert_eq!(
                plan.actions,
                vec![Action::Deploy {
                    container: "mcpdo-a_aa01".into(),
                    server: hashed("a", hash)
                }]
            );
        }
    }

    #[test]
    fn a_changed_hash_replaces_the_container_removal_first() {
        let want = hashed("a", ConfigHash::Desired("bb02".into()));
        let plan = plan(P, std::slice::from_ref(&want), &[running("mcpdo-a_aa01")]);
        // The old one goes first: both publish the server's one host port, and DTMA refuses a
        // port its map still holds.
        assert_eq!(
            plan.actions,
            vec![
                Action::Remove {
                    container: "mcpdo-a_aa01".into()
                },
                Action::Deploy {
                    container: "mcpdo-a_bb02".into(),
                    server: want
                },
            ]
        );
    }

    #[test]
    fn a_container_named_before_hashes_counts_as_stale() {
        let want = hashed("a", ConfigHash::Desired("bb02".into()));
        let plan = plan(P, &[want], &[running("mcpdo-a")]);
        assert_eq!(plan.actions.len(), 2);
        assert!(plan.satisfied.is_empty());
    }

    #[test]
    fn the_matching_hash_is_left_alone_and_reported() {
        let want = hashed("a", ConfigHash::Desired("bb02".into()));
        let plan = plan(P, &[want], &[running("mcpdo-a_bb02")]);
        assert!(plan.is_converged());
        assert_eq!(plan.satisfied["a"], "mcpdo-a_bb02");
    }

    #[test]
    fn an_unchecked_hash_keeps_what_runs_so_neighbours_are_never_replaced() {
        let plan = plan(
            P,
            &[
                hashed("a", ConfigHash::Desired("bb02".into())),
                hashed("b", ConfigHash::Unchecked(Some("cc03".into()))),
            ],
            &[running("mcpdo-a_bb02"), running("mcpdo-b_aa01")],
        );
        assert!(plan.is_converged(), "{plan:?}");
        assert_eq!(plan.satisfied["b"], "mcpdo-b_aa01");
    }

    #[test]
    fn a_stale_container_the_agent_forgot_is_reported_not_deployed_beside() {
        let mut forgotten = container("mcpdo-a_aa01", "img:1", "running", false);
        forgotten.host_ports = vec![31001];
        let plan = plan(
            P,
            &[hashed("a", ConfigHash::Desired("bb02".into()))],
            &[forgotten],
        );
        assert!(plan.actions.is_empty(), "{:?}", plan.actions);
        assert_eq!(
            plan.blockers,
            vec![Blocker::Orphan {
                container: "mcpdo-a_aa01".into(),
                running: true
            }]
        );
    }

    #[test]
    fn empty_droplet_gets_every_server_deployed() {
        let plan = plan(
            P,
            &[server("a", "img:1", 31001)],
            &[container("dtma_manager", "dtma", "running", false)],
        );
        assert_eq!(
            plan.actions,
            vec![Action::Deploy {
                container: "mcpdo-a".into(),
                server: server("a", "img:1", 31001)
            }]
        );
    }

    #[test]
    fn running_container_with_the_right_image_is_left_alone() {
        let plan = plan(
            P,
            &[server("a", "img:1", 31001)],
            &[container("mcpdo-a", "img:1", "running", true)],
        );
        assert!(plan.is_converged());
        assert_eq!(plan.satisfied.keys().collect::<Vec<_>>(), vec!["a"]);
    }

    #[test]
    fn stopped_managed_container_is_started() {
        let plan = plan(
            P,
            &[server("a", "img:1", 31001)],
            &[container("mcpdo-a", "img:1", "exited", true)],
        );
        assert_eq!(
            plan.actions,
            vec![Action::Start {
                container: "mcpdo-a".into()
            }]
        );
    }

    #[test]
    fn image_change_removes_then_deploys_under_a_new_name() {
        let plan = plan(
            P,
            &[server("a", "img:2", 31001)],
            &[container("mcpdo-a", "img:1", "running", true)],
        );
        assert_eq!(
            plan.actions,
            vec![
                Action::Remove {
                    container: "mcpdo-a".into()
                },
                Action::Deploy {
                    container: "mcpdo-a.2".into(),
                    server: server("a", "img:2", 31001)
                },
            ]
        );
    }

    #[test]
    fn container_forgotten_by_a_restarted_agent_but_running_is_adopted() {
        let plan = plan(
            P,
            &[server("a", "img:1", 31001)],
            &[container("mcpdo-a", "img:1", "running", false)],
        );
        assert!(plan.is_converged());
    }

    #[test]
    fn stopped_container_forgotten_by_the_agent_is_replaced_and_reported() {
        let plan = plan(
            P,
            &[server("a", "img:1", 31001)],
            &[container("mcpdo-a", "img:1", "exited", false)],
        );
        assert_eq!(
            plan.actions,
            vec![Action::Deploy {
                container: "mcpdo-a.2".into(),
                server: server("a", "img:1", 31001)
            }]
        );
        assert_eq!(
            plan.blockers,
            vec![Blocker::Orphan {
                container: "mcpdo-a".into(),
                running: false
            }]
        );
    }

    #[test]
    fn undesired_containers_are_removed_or_reported() {
        let plan = plan(
            P,
            &[],
            &[
                container("mcpdo-old", "img:1", "running", true),
                container("mcpdo-lost", "img:1", "running", false),
                container("someone-elses", "img:1", "running", false),
            ],
        );
        assert_eq!(
            plan.actions,
            vec![Action::Remove {
                container: "mcpdo-old".into()
            }]
        );
        assert_eq!(
            plan.blockers,
            vec![Blocker::Orphan {
                container: "mcpdo-lost".into(),
                running: true
            }]
        );
    }

    #[test]
    fn kept_servers_are_neither_removed_nor_deployed() {
        let kept = BTreeSet::from(["b".to_owned()]);
        let plan = plan_keeping(
            P,
            &[server("a", "img:1", 31001)],
            &kept,
            &[
                container("mcpdo-a", "img:1", "running", true),
                container("mcpdo-b", "img:1", "running", true),
                container("mcpdo-c", "img:1", "running", true),
            ],
        );
        assert_eq!(
            plan.actions,
            vec![Action::Remove {
                container: "mcpdo-c".into()
            }]
        );
        assert_eq!(plan.satisfied.keys().collect::<Vec<_>>(), vec!["a"]);
    }

    #[test]
    fn duplicate_generations_keep_the_running_one() {
        let plan = plan(
            P,
            &[server("a", "img:1", 31001)],
            &[
                container("mcpdo-a", "img:1", "exited", true),
                container("mcpdo-a.2", "img:1", "running", true),
            ],
        );
        assert_eq!(
            plan.actions,
            vec![Action::Remove {
                container: "mcpdo-a".into()
            }]
        );
        assert_eq!(plan.satisfied.keys().collect::<Vec<_>>(), vec!["a"]);
    }

    #[test]
    fn port_change_is_a_replacement_when_the_port_is_visible() {
        let mut running = container("mcpdo-a", "img:1", "running", true);
        running.host_ports = vec![31001];
        let plan = plan(P, &[server("a", "img:1", 31002)], &[running]);
        assert_eq!(plan.actions.len(), 2);
        assert!(
            matches!(&plan.actions[1], Action::Deploy { container, .. } if container == "mcpdo-a.2")
        );
    }

    #[test]
    fn removals_come_before_starts_and_deploys() {
        let plan = plan(
            P,
            &[server("a", "img:1", 31001), server("b", "img:1", 31002)],
            &[
                container("mcpdo-a", "img:1", "exited", true),
                container("mcpdo-gone", "img:1", "running", true),
            ],
        );
        let kinds: Vec<&str> = plan
            .actions
            .iter()
            .map(|a| match a {
                Action::Remove { .. } => "remove",
                Action::Start { .. } => "start",
                Action::Deploy { .. } => "deploy",
            })
            .collect();
        assert_eq!(kinds, vec!["remove", "start", "deploy"]);
    }
}
