//! The simulated world in one call: kube-sim with the operator's CRDs, the simulated
//! DigitalOcean, and a real agent on every droplet that becomes active, all on one clock.
//! `sim`, `demo` and the tests start it with [`World::start`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use secrecy::SecretString;

use crate::api;
use crate::sim::agent_fleet::SimulatedAgentFleet;
use crate::sim::digitalocean::{SimDoConfig, SimDoError, SimulatedDo, serve_simulated_do};
use clock::{SharedClock, SystemClock};

/// Field manager used for the CRDs applied at start-up.
const FIELD_MANAGER: &str = "mcp-droplet-operator-sim";

/// The Kubernetes part of the world.
#[derive(Debug, Clone)]
pub struct KubeSimSettings {
    /// Address kube-sim listens on (loopback; port 0 picks a free port).
    pub listen: SocketAddr,
    /// Require this bearer token from clients (it is written into the kubeconfig).
    pub token: Option<kube_sim::BearerToken>,
    /// Where to write the kubeconfig, if anywhere.
    pub kubeconfig: Option<PathBuf>,
    /// Authorize requests with RBAC (the token above, or a random one, is then the superuser's).
    pub rbac: Option<kube_sim::rbac::Rbac>,
}

impl Default for KubeSimSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: None,
            kubeconfig: None,
            rbac: None,
        }
    }
}

/// The cloud part of the world: the simulated DigitalOcean and the droplets' agents.
#[derive(Debug, Clone)]
pub struct CloudSettings {
    /// Address of the simulated DigitalOcean API.
    pub listen: SocketAddr,
    /// The API token clients must present.
    pub token: SecretString,
    /// Timings, limits and faults; its clock is replaced by the world's.
    pub digitalocean: SimDoConfig,
    /// Where the droplets' agents keep their state.
    pub agent_data_dir: PathBuf,
}

/// What to start.
#[derive(Debug, Clone)]
pub struct WorldConfig {
    /// The one clock of the world (the simulated DigitalOcean and the agents' bookkeeping).
    pub clock: SharedClock,
    /// kube-sim, when wanted.
    pub kube: Option<KubeSimSettings>,
    /// The simulated cloud, when wanted.
    pub cloud: Option<CloudSettings>,
}

impl Default for WorldConfig {
    /// The system clock, kube-sim on a free loopback port, no cloud.
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            kube: Some(KubeSimSettings::default()),
            cloud: None,
        }
    }
}

/// Failures of starting the world.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    /// kube-sim could not start, write the kubeconfig, or accept a CRD.
    #[error("kube-sim: {0}")]
    KubeSim(#[from] kube_sim::SimError),
    /// A CRD could not be turned into JSON.
    #[error("encoding CRD {name}: {source}")]
    EncodeCrd {
        /// CRD name.
        name: String,
        /// Cause.
        source: serde_json::Error,
    },
    /// The simulated DigitalOcean could not start.
    #[error("simulated DigitalOcean: {0}")]
    Cloud(#[from] SimDoError),
    /// A kube client for kube-sim could not be built.
    #[error("building a client for kube-sim: {0}")]
    Client(#[from] kube::Error),
    /// kube-sim's URL did not parse.
    #[error("kube-sim URL {0} is invalid")]
    Url(String),
    /// The world has no kube-sim.
    #[error("the world was started without kube-sim")]
    NoKube,
}

/// The simulated cloud: DigitalOcean, and a real agent on every droplet that becomes active.
pub struct SimulatedCloud {
    /// The simulated DigitalOcean API.
    pub digitalocean: SimulatedDo,
    /// The droplets' agents.
    pub agents: Arc<SimulatedAgentFleet>,
    token: SecretString,
}

impl std::fmt::Debug for SimulatedCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedCloud")
            .field("digitalocean", &self.digitalocean)
            .finish_non_exhaustive()
    }
}

impl SimulatedCloud {
    /// Serves the simulated DigitalOcean on `clock` and wires the agent fleet into its
    /// lifecycle hook.
    pub async fn start(settings: &CloudSettings, clock: SharedClock) -> Result<Self, WorldError> {
        let config = SimDoConfig {
            clock: Arc::clone(&clock),
            ..settings.digitalocean.clone()
        };
        let digitalocean =
            serve_simulated_do(settings.listen, settings.token.clone(), config).await?;
        let agents = Arc::new(
            SimulatedAgentFleet::new(&settings.agent_data_dir, Default::default())
                .with_clock(clock),
        );
        digitalocean.set_lifecycle_hook(agents.clone());
        Ok(Self {
            digitalocean,
            agents,
            token: settings.token.clone(),
        })
    }

    /// The API token clients present.
    pub fn token(&self) -> &SecretString {
        &self.token
    }

    /// Stops the agents, then the API.
    pub async fn shutdown(self) {
        self.agents.shutdown().await;
        self.digitalocean.shutdown().await;
    }
}

/// A running simulated world.
pub struct World {
    clock: SharedClock,
    kube: Option<kube_sim::Handle>,
    cloud: Option<SimulatedCloud>,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("kube", &self.kube.as_ref().map(kube_sim::Handle::url))
            .field("cloud", &self.cloud)
            .finish_non_exhaustive()
    }
}

impl World {
    /// Starts the parts `config` asks for: the cloud first (so droplets can be created as soon
    /// as the API server answers), then kube-sim with the CRDs applied and the kubeconfig
    /// written.
    pub async fn start(config: WorldConfig) -> Result<Self, WorldError> {
        let cloud = match &config.cloud {
            Some(settings) => {
                Some(SimulatedCloud::start(settings, Arc::clone(&config.clock)).await?)
            }
            None => None,
        };
        let kube = match &config.kube {
            Some(settings) => match start_kube(settings, Arc::clone(&config.clock)).await {
                Ok(kube) => Some(kube),
                Err(error) => {
                    if let Some(cloud) = cloud {
                        cloud.shutdown().await;
                    }
                    return Err(error);
                }
            },
            None => None,
        };
        Ok(Self {
            clock: config.clock,
            kube,
            cloud,
        })
    }

    /// The world's clock.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// kube-sim, when started.
    pub fn kube(&self) -> Option<&kube_sim::Handle> {
        self.kube.as_ref()
    }

    /// kube-sim's URL, when started.
    pub fn kube_url(&self) -> Option<String> {
        self.kube.as_ref().map(kube_sim::Handle::url)
    }

    /// A kube client for kube-sim.
    pub fn kube_client(&self) -> Result<kube::Client, WorldError> {
        client_for(self.kube.as_ref().ok_or(WorldError::NoKube)?)
    }

    /// The simulated cloud, when started.
    pub fn cloud(&self) -> Option<&SimulatedCloud> {
        self.cloud.as_ref()
    }

    /// The simulated DigitalOcean's base URL (`http://ADDR`), when started.
    pub fn digitalocean_url(&self) -> Option<String> {
        self.cloud.as_ref().map(|c| c.digitalocean.base_url())
    }

    /// The token of the simulated DigitalOcean, when started.
    pub fn digitalocean_token(&self) -> Option<&SecretString> {
        self.cloud.as_ref().map(SimulatedCloud::token)
    }

    /// Stops kube-sim, then the agents and the simulated DigitalOcean.
    pub async fn shutdown(self) {
        if let Some(kube) = self.kube {
            kube.shutdown().await;
        }
        if let Some(cloud) = self.cloud {
            cloud.shutdown().await;
        }
    }
}

/// Starts kube-sim on `clock` (so its timestamps agree with the simulated cloud's), applies the
/// operator's CRDs and writes the kubeconfig (when asked).
pub async fn start_kube(
    settings: &KubeSimSettings,
    clock: SharedClock,
) -> Result<kube_sim::Handle, WorldError> {
    let config = kube_sim::Config {
        listen: settings.listen,
        token: settings.token.clone(),
        ..Default::default()
    }
    .with_clock(clock);
    let config = match &settings.rbac {
        Some(rbac) => config.with_rbac(rbac.clone()),
        None => config,
    };
    let sim = kube_sim::KubeSim::start(config).await?;
    for crd in api::all_crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let value =
            serde_json::to_value(&crd).map_err(|source| WorldError::EncodeCrd { name, source })?;
        sim.apply(&value, FIELD_MANAGER)?;
    }
    if let Some(path) = &settings.kubeconfig {
        sim.write_kubeconfig(path)?;
    }
    Ok(sim)
}

/// A kube client talking to a running kube-sim.
pub fn client_for(sim: &kube_sim::Handle) -> Result<kube::Client, WorldError> {
    client_of(sim.client_config())
}

/// A kube client of a running kube-sim that authenticates with `token` (a service account's or
/// a user's, from `Handle::service_account_token` or `Handle::user_token`).
pub fn client_with(
    sim: &kube_sim::Handle,
    token: &kube_sim::BearerToken,
) -> Result<kube::Client, WorldError> {
    client_of(sim.client_config_with(token))
}

fn client_of(cc: kube_sim::ClientConfig) -> Result<kube::Client, WorldError> {
    let url = cc
        .url
        .parse()
        .map_err(|_| WorldError::Url(cc.url.clone()))?;
    let mut config = kube::Config::new(url);
    if let Some(token) = cc.token {
        config.auth_info.token = Some(token.expose().to_string().into());
    }
    Ok(kube::Client::try_from(config)?)
}
