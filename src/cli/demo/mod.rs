//! `mcp-droplet-operator demo`: the simulated world (kube-sim, the simulated DigitalOcean and a
//! real agent per droplet, on one clock) with the operator running against it. It applies
//! `examples/`, shows a live bar per deployment, and ends with the deployments and the fleet.
//!
//! This module only parses, starts and prints; what is shown is computed by the pure modules
//! [`manifests`], [`progress`], [`tables`] and [`faults`].

pub mod faults;
pub mod live;
pub mod manifests;
pub mod operator;
pub mod progress;
pub mod tables;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, ListParams};
use secrecy::SecretString;
use serde_json::Value;
use thiserror::Error;

use crate::api::deployment::MCPDeployment;
use crate::api::droplet::Droplet;
use crate::api::shared_fields::parse_duration;
use crate::cloud::models::DropletStatus;
use crate::fleet::key_of;
use crate::sim::digitalocean::SimDoConfig;
use crate::sim::{CloudSettings, KubeSimSettings, SimulatedCloud, World, WorldConfig, WorldError};
use clock::{ScaledClock, SharedClock};
use faults::{FaultPlan, FaultPreset};
use live::{FollowEnd, LiveView, Notes};
use manifests::{DemoManifests, ManifestError};

/// Field manager of the objects the demo applies (as `kubectl apply --server-side` would).
const FIELD_MANAGER: &str = "mcp-droplet-operator-demo";

/// Arguments of `demo`.
#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// How many MCPDeployments to apply (default: those in the examples; more are copies of
    /// them with distinct names).
    #[arg(long, value_name = "N")]
    pub deployments: Option<usize>,
    /// Clock speed: simulated seconds per real second (droplet boots, timers, backoffs).
    #[arg(long, value_name = "X", default_value_t = 30.0, value_parser = parse_speed)]
    pub speed: f64,
    /// Faults the simulated DigitalOcean injects.
    #[arg(long, value_enum, default_value_t = FaultPreset::None)]
    pub faults: FaultPreset,
    /// Keep running after every deployment is Ready (for kubectl and MCP clients), until Ctrl-C.
    #[arg(long)]
    pub serve: bool,
    /// Where to write the kubeconfig of the simulated cluster (default: a temporary file).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Give up after this long (wall time), e.g. 90s or 5m.
    #[arg(long, value_name = "DURATION", default_value = "3m", value_parser = parse_timeout)]
    pub timeout: Duration,
    /// The manifests to apply: the top-level YAML files of this folder.
    #[arg(long, value_name = "DIR", default_value = "examples")]
    pub examples: PathBuf,
}

fn parse_speed(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(speed) if speed.is_finite() && speed > 0.0 => Ok(speed),
        _ => Err(format!("{raw:?} is not a positive number")),
    }
}

fn parse_timeout(raw: &str) -> Result<Duration, String> {
    parse_duration(raw)?.ok_or_else(|| "the demo needs a finite timeout".to_owned())
}

/// What can stop the demo before its report.
#[derive(Debug, Error)]
pub enum DemoError {
    /// The examples could not be read.
    #[error("{0} (run the demo from the repository's root, or pass --examples DIR)")]
    Manifests(#[from] ManifestError),
    /// The simulated world did not start.
    #[error(transparent)]
    World(#[from] WorldError),
    /// kube-sim refused an example.
    #[error("applying {object}: {source}")]
    Apply {
        /// `Kind namespace/name`.
        object: String,
        /// Cause.
        source: kube_sim::SimError,
    },
    /// The kubeconfig's folder could not be made.
    #[error("creating {path}: {source}")]
    TempDir {
        /// Folder.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The operator did not start.
    #[error("starting the operator: {0}")]
    Operator(String),
    /// Listing the results failed.
    #[error("reading the results: {0}")]
    Read(#[from] kube::Error),
    /// Waiting for Ctrl-C failed.
    #[error("waiting for Ctrl-C: {0}")]
    Signal(std::io::Error),
}

/// How the demo ended.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoOutcome {
    /// Every deployment applied.
    pub deployments: usize,
    /// `namespace/name: reason` of each deployment that is not Ready (empty on success).
    pub failures: Vec<String>,
}

impl DemoOutcome {
    /// Whether every deployment became Ready.
    pub fn all_ready(&self) -> bool {
        self.failures.is_empty()
    }
}

/// The folder for the demo's temporary files (kubeconfig by default, the agents' state).
fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join(format!("mcp-droplet-operator-demo-{}", std::process::id()))
}

/// The world the demo runs: kube-sim writing `kubeconfig`, the simulated DigitalOcean with the
/// preset's faults, all on one clock of `speed`.
pub fn world_config(
    speed: f64,
    faults: &FaultPlan,
    kubeconfig: &Path,
    agent_data_dir: &Path,
) -> WorldConfig {
    let clock: SharedClock = Arc::new(ScaledClock::new(speed));
    let defaults = SimDoConfig::default();
    WorldConfig {
        clock: Arc::clone(&clock),
        kube: Some(KubeSimSettings {
            kubeconfig: Some(kubeconfig.to_path_buf()),
            ..KubeSimSettings::default()
        }),
        cloud: Some(CloudSettings {
            listen: ([127, 0, 0, 1], 0).into(),
            token: SecretString::from(format!("demo-{}", uuid::Uuid::new_v4())),
            digitalocean: SimDoConfig {
                clock,
                boot_delay: faults.boot_delay.unwrap_or(defaults.boot_delay),
                faults: faults.faults.clone(),
                // Droplet addresses of its own (decision 0212), so two demos at once (a
                // `--serve` one and another, or parallel tests) never share an agent address.
                first_address: rand::random::<u32>() % 1_000_000,
                ..defaults
            },
            agent_data_dir: agent_data_dir.to_path_buf(),
        }),
    }
}

/// The lines printed before anything else: where the kubeconfig is and how to watch.
pub fn header(kubeconfig: &Path, args: &DemoArgs, manifests: &DemoManifests) -> String {
    let kc = kubeconfig.display();
    let mut out = format!(
        "kubeconfig: {kc}\n\
         watch it:   kubectl --kubeconfig {kc} get mcp -A -w\n\
         {} deployments from {}, clock x{}, faults: {}\n",
        manifests.deployments.len(),
        args.examples.display(),
        args.speed,
        args.faults.describe(),
    );
    for skipped in &manifests.skipped {
        out.push_str(&format!("skipped {}: {}\n", skipped.object, skipped.reason));
    }
    out
}

/// What `--serve` prints once every deployment is Ready: how to watch, and where an MCP
/// client finds an endpoint's URL and token (the `<name>-mcp` Secret).
pub fn serve_usage(kubeconfig: &Path, deployments: &[String]) -> String {
    let kc = kubeconfig.display();
    let mut out = format!("Serving until Ctrl-C.\n  kubectl --kubeconfig {kc} get mcp -A -w\n");
    if let Some((ns, name)) = deployments.first().and_then(|k| k.split_once('/')) {
        out.push_str(&format!(
            "An MCP client needs an endpoint's URL and token, in the Secret <deployment>-mcp, e.g.\n  \
             kubectl --kubeconfig {kc} -n {ns} get secret {name}-mcp -o jsonpath='{{.data.token}}' | base64 -d\n"
        ));
    }
    out
}

fn describe(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or_default();
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
    {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// Server-side applies `objects` in order, in process (kube-sim validates them like an API
/// server: schema, CEL, namespaces).
pub fn apply_all(sim: &kube_sim::Handle, objects: &[Value]) -> Result<(), DemoError> {
    for object in objects {
        sim.apply(object, FIELD_MANAGER)
            .map_err(|source| DemoError::Apply {
                object: describe(object),
                source,
            })?;
    }
    Ok(())
}

/// Injects the preset's one-off faults (429 bursts, a lost droplet) on the world's clock, as
/// [`faults::FaultInjector`] decides; returns when there is nothing left to inject.
///
/// Only a droplet the pool provisioned is lost: the operator replaces those, while a Droplet
/// someone wrote (the examples' `d1`, which a deployment is pinned to) stays Failed until its
/// owner acts, so losing it would leave the demo waiting for a person.
async fn inject_faults(
    cloud: &SimulatedCloud,
    client: &kube::Client,
    plan: &FaultPlan,
    clock: &SharedClock,
    notes: &Notes,
) {
    use crate::api::droplet::Droplet;
    use crate::controller::pool::plan::PROVISIONED_FOR_ANNOTATION;
    use kube::ResourceExt;
    let mut injector = faults::FaultInjector::new(plan);
    while !injector.is_done() {
        clock.sleep(Duration::from_secs(5)).await;
        let provisioned: Vec<u64> = Api::<Droplet>::all(client.clone())
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
            .iter()
            .filter(|d| d.annotations().contains_key(PROVISIONED_FOR_ANNOTATION))
            .filter_map(|d| d.status.as_ref()?.droplet_id)
            .filter_map(|id| u64::try_from(id).ok())
            .collect();
        let droplets = cloud.digitalocean.droplets();
        let active: Vec<u64> = droplets
            .iter()
            .filter(|d| d.status == DropletStatus::Active && provisioned.contains(&d.id))
            .map(|d| d.id)
            .collect();
        let stats = cloud.digitalocean.stats();
        let traffic = faults::Traffic {
            requests: stats.requests,
            answered_429: stats.rate_limited,
        };
        for action in injector.step(clock.now(), &active, traffic) {
            match action {
                faults::FaultAction::RateLimit(count) => {
                    cloud.digitalocean.force_rate_limited(count);
                }
                faults::FaultAction::Lose(id) => {
                    let name = droplets
                        .iter()
                        .find(|d| d.id == id)
                        .map(|d| d.name.clone())
                        .unwrap_or_default();
                    if cloud.digitalocean.lose_droplet(id) {
                        notes.note(&format!(
                            "fault: DigitalOcean droplet {name} ({id}) vanished, as if destroyed outside the operator"
                        ));
                    }
                }
            }
        }
    }
}

/// Runs the demo: starts the world and the operator, applies the examples, follows progress,
/// prints the two tables. With `--serve` it then waits for Ctrl-C.
pub async fn run(args: DemoArgs) -> Result<DemoOutcome, DemoError> {
    if std::env::var_os("RUST_LOG").is_some() {
        // The operator's logs on stderr, only when asked for: they would tear the bars.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let documents = manifests::read_documents(&manifests::example_files(&args.examples)?)?;
    let manifests = manifests::choose(documents, args.deployments)?;
    let scratch = scratch_dir();
    std::fs::create_dir_all(&scratch).map_err(|source| DemoError::TempDir {
        path: scratch.display().to_string(),
        source,
    })?;
    let kubeconfig = args
        .kubeconfig
        .clone()
        .unwrap_or_else(|| scratch.join("kubeconfig"));
    let plan = args.faults.plan();
    let world = World::start(world_config(
        args.speed,
        &plan,
        &kubeconfig,
        &scratch.join("agents"),
    ))
    .await?;
    let outcome = run_in(&world, &args, &manifests, &plan, &kubeconfig).await;
    world.shutdown().await;
    // Best effort: the agents' state and a kubeconfig of a stopped server are of no use.
    let _ = std::fs::remove_dir_all(&scratch);
    outcome
}

async fn run_in(
    world: &World,
    args: &DemoArgs,
    manifests: &DemoManifests,
    plan: &FaultPlan,
    kubeconfig: &Path,
) -> Result<DemoOutcome, DemoError> {
    print!("{}", header(kubeconfig, args, manifests));
    let operator = operator::start(world).map_err(DemoError::Operator)?;
    let outcome = drive(world, args, manifests, plan, kubeconfig).await;
    if let Err(error) = operator.stop().await {
        eprintln!("the operator stopped with an error: {error}");
    }
    outcome
}

/// Applies the examples, follows them, prints the report, and with `--serve` waits for Ctrl-C.
async fn drive(
    world: &World,
    args: &DemoArgs,
    manifests: &DemoManifests,
    plan: &FaultPlan,
    kubeconfig: &Path,
) -> Result<DemoOutcome, DemoError> {
    let sim = world.kube().ok_or(WorldError::NoKube)?;
    let client = world.kube_client()?;
    apply_all(sim, &manifests.objects)?;
    println!("applied {} objects\n", manifests.objects.len());

    let mut view = LiveView::new(&manifests.deployments, std::io::stdout().is_terminal());
    let notes = view.notes();
    let end = if manifests.deployments.is_empty() {
        FollowEnd::AllReady
    } else {
        let follow = live::follow(
            Api::all(client.clone()),
            &manifests.deployments,
            args.timeout,
            &mut view,
        );
        let faults = async {
            if let Some(cloud) = world.cloud() {
                inject_faults(cloud, &client, plan, world.clock(), &notes).await;
            }
            futures::future::pending::<()>().await;
        };
        tokio::select! {
            end = follow => end,
            () = faults => FollowEnd::StreamEnded,
        }
    };
    let deployments: Vec<MCPDeployment> = Api::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|d: &MCPDeployment| manifests.deployments.contains(&key_of(&d.metadata)))
        .collect();
    let droplets: Vec<Droplet> = Api::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    println!();
    match end {
        FollowEnd::AllReady => println!("Every deployment is Ready.\n"),
        FollowEnd::TimedOut => println!("Gave up after {:?}.\n", args.timeout),
        FollowEnd::StreamEnded => println!("The watch on the API server ended.\n"),
    }
    print!("{}", tables::deployments_table(&deployments));
    println!(
        "(times to Ready are simulated seconds; the clock ran x{})\n",
        args.speed
    );
    print!("{}", tables::fleet_table(&droplets));
    if let Some(cloud) = world.cloud() {
        let stats = cloud.digitalocean.stats();
        println!(
            "\nDigitalOcean: {} requests, {} answered 429, droplets created: {}",
            stats.requests, stats.rate_limited, stats.droplets_created
        );
    }
    let mut failures = tables::failures(&deployments);
    for key in &manifests.deployments {
        if !deployments.iter().any(|d| key_of(&d.metadata) == *key) {
            failures.push(format!("{key}: not found in the API server"));
        }
    }
    let outcome = DemoOutcome {
        deployments: manifests.deployments.len(),
        failures,
    };
    if args.serve && outcome.all_ready() {
        print!("\n{}", serve_usage(kubeconfig, &manifests.deployments));
        tokio::signal::ctrl_c().await.map_err(DemoError::Signal)?;
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        demo: DemoArgs,
    }

    fn parse(args: &[&str]) -> Result<DemoArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("demo").chain(args.iter().copied())).map(|c| c.demo)
    }

    #[test]
    fn defaults_are_the_examples_at_thirty_times_speed_without_faults() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.deployments, None);
        assert_eq!(args.speed, 30.0);
        assert_eq!(args.faults, FaultPreset::None);
        assert!(!args.serve && args.kubeconfig.is_none());
        assert_eq!(args.timeout, Duration::from_secs(180));
        assert_eq!(args.examples, PathBuf::from("examples"));
    }

    #[test]
    fn flags_parse_and_bad_values_are_refused() {
        let args = parse(&[
            "--deployments",
            "40",
            "--speed",
            "60",
            "--faults",
            "heavy",
            "--serve",
            "--kubeconfig",
            "/tmp/k",
            "--timeout",
            "90s",
        ])
        .unwrap();
        assert_eq!(args.deployments, Some(40));
        assert_eq!(args.faults, FaultPreset::Heavy);
        assert_eq!(args.timeout, Duration::from_secs(90));
        assert!(args.serve);
        assert!(parse(&["--speed", "0"]).is_err());
        assert!(parse(&["--faults", "medium"]).is_err());
        assert!(parse(&["--timeout", "Never"]).is_err());
    }

    #[test]
    fn the_world_gets_the_presets_faults_and_boot_times() {
        let heavy = FaultPreset::Heavy.plan();
        let config = world_config(30.0, &heavy, Path::new("/tmp/k"), Path::new("/tmp/a"));
        let cloud = config.cloud.expect("the demo needs the cloud");
        assert_eq!(cloud.digitalocean.faults, heavy.faults);
        assert_eq!(Some(cloud.digitalocean.boot_delay), heavy.boot_delay);
        let kube = config.kube.expect("and kube-sim");
        assert_eq!(kube.kubeconfig.as_deref(), Some(Path::new("/tmp/k")));
        let none = world_config(
            30.0,
            &FaultPreset::None.plan(),
            Path::new("/k"),
            Path::new("/a"),
        );
        assert_eq!(
            none.cloud.unwrap().digitalocean.boot_delay,
            SimDoConfig::default().boot_delay
        );
    }

    #[test]
    fn serving_says_how_to_watch_and_where_the_tokens_are() {
        let text = serve_usage(Path::new("/tmp/kc"), &["team-a/github".into()]);
        assert!(
            text.contains("kubectl --kubeconfig /tmp/kc get mcp -A -w"),
            "{text}"
        );
        assert!(
            text.contains("kubectl --kubeconfig /tmp/kc -n team-a get secret github-mcp"),
            "{text}"
        );
        assert!(!serve_usage(Path::new("/k"), &[]).contains("secret"));
    }

    #[test]
    fn the_header_prints_the_kubeconfig_and_the_watch_command() {
        let args = parse(&["--kubeconfig", "/tmp/demo-kc"]).unwrap();
        let manifests = DemoManifests {
            deployments: vec!["a/x".into()],
            skipped: vec![manifests::Skipped {
                object: "Droplet a/legacy".into(),
                reason: "it adopts".into(),
            }],
            ..DemoManifests::default()
        };
        let header = header(Path::new("/tmp/demo-kc"), &args, &manifests);
        assert!(header.starts_with("kubeconfig: /tmp/demo-kc\n"), "{header}");
        assert!(
            header.contains("kubectl --kubeconfig /tmp/demo-kc get mcp -A -w"),
            "{header}"
        );
        assert!(
            header.contains("skipped Droplet a/legacy: it adopts"),
            "{header}"
        );
    }
}
