//! `mcp-droplet-operator run`: the controllers against a cluster (in-cluster config or
//! KUBECONFIG), with leader election on a Lease, the admin server, and graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use clock::{SharedClock, SystemClock};
use k8s_openapi::api::core::v1::Secret as SecretObject;
use kube::Api;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::cloud::bootstrap::{AgentSource, BootstrapConfig};
use crate::controller::{
    FIELD_MANAGER, OperatorConfig, OperatorParts, Timings, WatchScope, start_controllers,
};
use crate::sim::operator::{SIMULATED_AGENT_PORT, cloud_client};
use crate::sim::{CloudSettings, World, WorldConfig};
use crate::telemetry::{LogFormat, Metrics, Readiness, admin, init_logging};

/// Which DigitalOcean the operator talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CloudKind {
    /// The real API (or any compatible endpoint with `--digitalocean-url`).
    Digitalocean,
    /// The simulated DigitalOcean and agents, in-process (no account needed).
    Simulated,
}

/// Flags of `run` (each also read from an environment variable).
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Kubeconfig file; default: in-cluster config, else ~/.kube/config.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// The DigitalOcean to use.
    #[arg(long, env = "MCP_CLOUD", value_enum, default_value = "digitalocean")]
    pub cloud: CloudKind,
    /// Base URL of the DigitalOcean API (any compatible endpoint, e.g. `sim --no-kube`).
    #[arg(
        long,
        env = "DIGITALOCEAN_API_URL",
        default_value = "https://api.digitalocean.com"
    )]
    pub digitalocean_url: String,
    /// Secret (in the operator's namespace) holding the DigitalOcean token; never a flag value.
    #[arg(
        long,
        env = "MCP_DIGITALOCEAN_TOKEN_SECRET",
        default_value = "digitalocean-token"
    )]
    pub digitalocean_token_secret: String,
    /// Key of the token in that Secret.
    #[arg(long, env = "MCP_DIGITALOCEAN_TOKEN_KEY", default_value = "token")]
    pub digitalocean_token_key: String,
    /// The operator's own namespace (Lease, token Secret).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// Manage only this namespace (empty: all namespaces).
    #[arg(long, env = "MCP_WATCH_NAMESPACE", default_value = "")]
    pub watch_namespace: String,
    /// Admin server address: /metrics, /healthz, /readyz.
    #[arg(long, env = "MCP_ADMIN_ADDR", default_value = "0.0.0.0:8080")]
    pub admin_addr: SocketAddr,
    /// Log format (level from RUST_LOG, default info).
    #[arg(long, env = "MCP_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Elect a leader on a Lease so only one replica acts.
    #[arg(long, env = "MCP_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Name of the Lease.
    #[arg(long, env = "MCP_LEASE_NAME", default_value = "mcp-droplet-operator")]
    pub lease_name: String,
    /// Tags every droplet this installation creates.
    #[arg(long, env = "MCP_CLUSTER_ID", default_value = "default")]
    pub cluster_id: String,
    /// Agent version installed on new droplets.
    #[arg(long, env = "MCP_AGENT_VERSION", default_value = env!("CARGO_PKG_VERSION"))]
    pub agent_version: String,
    /// Where cloud-init downloads the agent's static binary.
    #[arg(long, env = "MCP_AGENT_URL")]
    pub agent_url: Option<String>,
    /// Lower-case hex SHA-256 of that binary (checked by cloud-init).
    #[arg(long, env = "MCP_AGENT_SHA256")]
    pub agent_sha256: Option<String>,
    /// Regions of the default pool.
    #[arg(
        long,
        env = "MCP_DEFAULT_REGIONS",
        value_delimiter = ',',
        default_value = "nyc3"
    )]
    pub default_regions: Vec<String>,
    /// Sizes of the default pool (default: the basic family).
    #[arg(long, env = "MCP_DEFAULT_SIZES", value_delimiter = ',')]
    pub default_sizes: Vec<String>,
    /// Check that template images exist through their registry's HTTP API.
    #[arg(long, env = "MCP_IMAGE_CHECK", default_value_t = true, action = clap::ArgAction::Set)]
    pub image_check: bool,
    /// Reach a registry at another base URL (a mirror): `HOST=URL`, repeatable or comma-separated.
    #[arg(long, env = "MCP_REGISTRY_MIRRORS", value_delimiter = ',')]
    pub registry_mirror: Vec<String>,
    /// Speed of the simulated cloud's clock (`--cloud simulated` only).
    #[arg(long, default_value_t = 1.0)]
    pub simulated_speed: f64,
}

/// Why `run` stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No usable Kubernetes configuration.
    #[error("Kubernetes configuration: {0}")]
    KubeConfig(String),
    /// A Kubernetes call failed at start-up.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The DigitalOcean token Secret is missing or has no such key.
    #[error(
        "DigitalOcean token: Secret {namespace}/{name} {problem} (create it with: kubectl -n {namespace} create secret generic {name} --from-literal={key}=YOUR_TOKEN)"
    )]
    Token {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// Key.
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// The DigitalOcean client could not be built.
    #[error("DigitalOcean client: {0}")]
    Cloud(#[from] crate::cloud::CloudError),
    /// The simulated cloud did not start.
    #[error("simulated cloud: {0}")]
    World(#[from] crate::sim::WorldError),
    /// The admin server failed.
    #[error(transparent)]
    Admin(#[from] admin::AdminError),
    /// Leader election failed.
    #[error("leader election: {0}")]
    Lease(String),
    /// A flag is invalid.
    #[error("invalid flag {flag}: {message}")]
    Flag {
        /// The flag.
        flag: &'static str,
        /// Why.
        message: String,
    },
}

impl RunArgs {
    /// The operator settings these flags describe.
    pub fn operator_config(&self) -> Result<OperatorConfig, RunError> {
        let scope = if self.watch_namespace.is_empty() {
            WatchScope::AllNamespaces
        } else {
            WatchScope::Namespace(self.watch_namespace.clone())
        };
        let url = self.agent_url.clone().unwrap_or_else(|| {
            format!(
                "https://github.com/agentopia/mcp-droplet-operator/releases/download/v{0}/mcp-droplet-agent-x86_64-linux",
                self.agent_version
            )
        });
        if let Some(sha) = &self.agent_sha256
            && (sha.len() != 64
                || !sha
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()))
        {
            return Err(RunError::Flag {
                flag: "--agent-sha256",
                message: "must be 64 lower-case hex digits".into(),
            });
        }
        let mut bootstrap = BootstrapConfig::from_release_url(url);
        bootstrap.agent = match bootstrap.agent {
            AgentSource::ReleaseUrl { url, .. } => AgentSource::ReleaseUrl {
                url,
                sha256: self.agent_sha256.clone(),
            },
            other => other,
        };
        if self.cloud == CloudKind::Simulated {
            bootstrap.listen = format!("0.0.0.0:{SIMULATED_AGENT_PORT}");
        }
        let default_sizes = if self.default_sizes.is_empty() {
            crate::catalog::default_pool_sizes()
                .into_iter()
                .map(String::from)
                .collect()
        } else {
            self.default_sizes.clone()
        };
        Ok(OperatorConfig {
            cluster_id: self.cluster_id.clone(),
            scope,
            operator_namespace: self.namespace.clone(),
            default_regions: self.default_regions.clone(),
            default_sizes,
            bootstrap,
            agent: crate::agent_client::ClientSettings::default(),
            image_check: self.image_check_settings()?,
            timings: Timings::default(),
            reporter_instance: std::env::var("POD_NAME").ok(),
        })
    }
}

impl RunArgs {
    fn image_check_settings(&self) -> Result<crate::image_check::ImageCheckSettings, RunError> {
        use crate::image_check::{ImageCheckConfig, ImageCheckSettings};
        if !self.image_check {
            return Ok(ImageCheckSettings::Off);
        }
        let mut config = ImageCheckConfig::default();
        for mirror in &self.registry_mirror {
            let Some((host, url)) = mirror.split_once('=') else {
                return Err(RunError::Flag {
                    flag: "--registry-mirror",
                    message: format!("{mirror:?} is not HOST=URL"),
                });
            };
            if !(url.starts_with("http://") || url.starts_with("https://")) || host.is_empty() {
                return Err(RunError::Flag {
                    flag: "--registry-mirror",
                    message: format!("{mirror:?}: the URL must start with http:// or https://"),
                });
            }
            config
                .registry_urls
                .insert(host.to_string(), url.trim_end_matches('/').to_string());
        }
        Ok(ImageCheckSettings::Registry(config))
    }
}

async fn kube_client(kubeconfig: Option<&PathBuf>) -> Result<kube::Client, RunError> {
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| RunError::KubeConfig(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| RunError::KubeConfig(e.to_string()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| RunError::KubeConfig(e.to_string()))?,
    };
    kube::Client::try_from(config).map_err(RunError::Kube)
}

/// The leader election of `run`: the Lease `lease_name` in the operator's `namespace`, held 15 s
/// and renewed 5 s before it runs out, written under the operator's field manager. Public so the
/// chart's RBAC tests elect a leader exactly as `run` does.
pub async fn lease_manager(
    client: kube::Client,
    namespace: &str,
    lease_name: &str,
    identity: &str,
) -> Result<kube_lease_manager::LeaseManager, RunError> {
    kube_lease_manager::LeaseManagerBuilder::new(client, lease_name)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(15)
        .with_grace(5)
        .with_field_manager(FIELD_MANAGER)
        .build()
        .await
        .map_err(|e| RunError::Lease(e.to_string()))
}

/// Reads the DigitalOcean token from the Secret `name` in the operator's `namespace` (key
/// `key`), as `run` does at start. Public so the chart's RBAC tests read it as `run` does.
pub async fn read_token(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<SecretString, RunError> {
    let secrets: Api<SecretObject> = Api::namespaced(client.clone(), namespace);
    let problem = |problem: &str| RunError::Token {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        key: key.to_owned(),
        problem: problem.to_string(),
    };
    let secret = secrets
        .get_opt(name)
        .await?
        .ok_or_else(|| problem("does not exist"))?;
    let bytes = secret
        .data
        .and_then(|mut d| d.remove(key))
        .ok_or_else(|| problem(&format!("has no key {key:?}")))?;
    let token =
        String::from_utf8(bytes.0).map_err(|_| problem("holds a token that is not UTF-8"))?;
    let token = token.trim();
    if token.is_empty() {
        return Err(problem("holds an empty token"));
    }
    Ok(SecretString::from(token.to_string()))
}

/// Resolves on SIGTERM or Ctrl-C.
async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs the operator until SIGTERM/Ctrl-C (or until leadership is lost).
pub async fn run(args: RunArgs) -> Result<(), RunError> {
    init_logging(args.log_format);
    let config = args.operator_config()?;
    let client = kube_client(args.kubeconfig.as_ref()).await?;
    let metrics = Metrics::new();
    let readiness = Readiness::default();
    let shutdown = CancellationToken::new();

    let clock: SharedClock;
    let mut simulated_world = None;
    let cloud = match args.cloud {
        CloudKind::Digitalocean => {
            clock = Arc::new(SystemClock);
            let token = read_token(
                &client,
                &args.namespace,
                &args.digitalocean_token_secret,
                &args.digitalocean_token_key,
            )
            .await?;
            cloud_client(&args.digitalocean_url, token, clock.clone(), &metrics)?
        }
        CloudKind::Simulated => {
            clock = Arc::new(clock::ScaledClock::new(args.simulated_speed));
            let token = SecretString::from(format!(
                "dop_v1_simulated_{}",
                uuid::Uuid::new_v4().simple()
            ));
            let world = World::start(WorldConfig {
                clock: clock.clone(),
                kube: None,
                cloud: Some(CloudSettings {
                    listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                    token: token.clone(),
                    digitalocean: Default::default(),
                    agent_data_dir: std::env::temp_dir()
                        .join("mcp-droplet-operator-simulated-agents"),
                }),
            })
            .await?;
            let url = world.digitalocean_url().ok_or_else(|| RunError::Flag {
                flag: "--cloud",
                message: "the simulated cloud did not start".into(),
            })?;
            tracing::info!(%url, "simulated DigitalOcean started in-process");
            simulated_world = Some(world);
            cloud_client(&url, token, clock.clone(), &metrics)?
        }
    };

    let (admin_addr, admin_server) = admin::serve(
        args.admin_addr,
        Arc::clone(&metrics),
        readiness.clone(),
        shutdown.clone().cancelled_owned(),
    )
    .await?;
    tracing::info!(%admin_addr, "admin server listening (/metrics, /healthz, /readyz)");
    let admin_task = tokio::spawn(admin_server);

    let signal_shutdown = shutdown.clone();
    tokio::spawn(async move {
        termination().await;
        tracing::info!("termination signal: finishing the passes under way");
        signal_shutdown.cancel();
    });

    let mut leader_rx = None;
    if args.leader_election {
        // Standby replicas are ready (healthy and able to take over) while they wait.
        readiness.set_ready(true);
        let identity = std::env::var("POD_NAME")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| format!("mcp-droplet-operator-{}", uuid::Uuid::new_v4().simple()));
        let manager =
            lease_manager(client.clone(), &args.namespace, &args.lease_name, &identity).await?;
        let (mut rx, _task) = manager.watch().await;
        tracing::info!(%identity, lease = %args.lease_name, "waiting for leadership");
        loop {
            if *rx.borrow_and_update() {
                break;
            }
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        return Err(RunError::Lease("the lease watcher stopped".into()));
                    }
                }
                () = shutdown.cancelled() => {
                    let _ = admin_task.await;
                    return Ok(());
                }
            }
        }
        tracing::info!(%identity, "leader: starting the controllers");
        metrics.leader.set(1);
        readiness.set_ready(false);
        leader_rx = Some(rx);
    }

    let running = start_controllers(
        OperatorParts {
            client,
            cloud,
            clock,
            metrics: Arc::clone(&metrics),
            config,
        },
        readiness,
        shutdown.clone(),
    );

    // Losing the lease stops this replica's controllers: another one acts now.
    let mut lost_leadership = false;
    if let Some(mut rx) = leader_rx {
        let shutdown = shutdown.clone();
        tokio::select! {
            () = async {
                while rx.changed().await.is_ok() {
                    if !*rx.borrow() {
                        return;
                    }
                }
            } => {
                tracing::warn!("lost leadership: stopping the controllers");
                lost_leadership = true;
                shutdown.cancel();
            }
            () = shutdown.cancelled() => {}
        }
    } else {
        shutdown.cancelled().await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(25), running.done).await;
    metrics.leader.set(0);
    let _ = admin_task.await;
    if let Some(world) = simulated_world {
        world.shutdown().await;
    }
    if lost_leadership {
        return Err(RunError::Lease("leadership lost".into()));
    }
    tracing::info!("stopped");
    Ok(())
}
