//! The operator against a whole simulated world, for scenario tests: kube-sim with the CRDs,
//! the simulated DigitalOcean with real agents, and the four controllers in-process, on one
//! scaled clock. `wait_for` awaits a condition on an object (no sleeps as synchronisation).
//!
//! In kube-sim the operator runs as the chart's service account under exactly the chart's
//! rendered RBAC unless a test asks otherwise ([`OperatorIdentity`]), and
//! [`OperatorHarness::shutdown`] fails the test when any of its requests was denied.

use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clock::{ScaledClock, SharedClock};
use kube::{Api, Resource};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::controller::{
    Context, OperatorConfig, OperatorParts, RunningControllers, start_controllers,
};
use crate::sim::digitalocean::SimDoConfig;
use crate::sim::operator::{quick_timings, simulated_operator_config, world_cloud_client};
use crate::sim::{CloudSettings, KubeSimSettings, World, WorldConfig};
use crate::telemetry::{Metrics, Readiness};

/// How to start a [`OperatorHarness`].
pub struct HarnessOptions {
    /// Simulated seconds per real second.
    pub speed: f64,
    /// The simulated DigitalOcean (boot times, faults); its clock is replaced by the world's.
    pub digitalocean: SimDoConfig,
    /// Change the operator's settings before it starts (timings, default pool, ...).
    pub configure: Box<dyn FnOnce(&mut OperatorConfig) + Send>,
    /// Start the controllers (false: only the world; start them later with `start_operator`).
    pub start_operator: bool,
    /// A real cluster's kubeconfig instead of kube-sim (the CRDs are applied to it); see
    /// [`HarnessOptions::real_cluster_from_env`].
    pub real_cluster: Option<PathBuf>,
    /// Who the operator is to kube-sim: by default exactly the chart's rendered RBAC, so every
    /// scenario proves the chart grants enough. Ignored against a real cluster
    /// (`real_cluster`): there the operator uses the kubeconfig's credentials as they are.
    pub identity: OperatorIdentity,
}

/// Who the operator runs as in kube-sim ([`HarnessOptions::identity`]).
#[derive(Debug, Clone, Default)]
pub enum OperatorIdentity {
    /// The service account of the Helm chart's default (all-namespaces) install with exactly its
    /// rendered RBAC (`OperatorRbac::from_chart("all-namespaces")`); kube-sim authorizes every
    /// request and the harness's shutdown fails the test when one of the operator's was denied.
    #[default]
    ChartRbac,
    /// A service account with these RBAC documents (e.g. the chart's `namespaced` mode, or
    /// fewer rules to show a denial); denials fail the shutdown as with `ChartRbac`.
    Rbac(OperatorRbac),
    /// kube-sim's superuser (`system:masters`, RBAC off): only for a test whose set-up the
    /// chart's RBAC cannot express; the test says why in a comment.
    Superuser,
}

/// A service account and its RBAC documents, for [`OperatorIdentity::Rbac`].
#[derive(Debug, Clone)]
pub struct OperatorRbac {
    /// RBAC documents (ServiceAccount, Role, ClusterRole, bindings) to apply.
    pub documents: Vec<serde_json::Value>,
    /// The operator's service account namespace.
    pub namespace: String,
    /// The operator's service account name.
    pub service_account: String,
}

impl OperatorRbac {
    /// Exactly the Helm chart's rendered RBAC of one install mode (`all-namespaces` or
    /// `namespaced`): tests/fixtures/chart/rbac-<mode>.yaml, which scripts/lint-charts renders
    /// with the real Helm library and keeps equal to the chart. The identity is its
    /// ServiceAccount.
    pub fn from_chart(mode: &str) -> Result<Self, HarnessError> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/fixtures/chart/rbac-{mode}.yaml"));
        let fixture_error = |message: String| HarnessError::ChartRbac {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| fixture_error(e.to_string()))?;
        let documents =
            kube_sim::rbac::documents_from_yaml(&text).map_err(|e| fixture_error(e.to_string()))?;
        let account = documents
            .iter()
            .find(|d| d["kind"] == "ServiceAccount")
            .ok_or_else(|| fixture_error("no ServiceAccount".into()))?;
        let field = |key: &str| {
            account["metadata"][key]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        let (namespace, service_account) = (field("namespace"), field("name"));
        if namespace.is_empty() || service_account.is_empty() {
            return Err(fixture_error(
                "the ServiceAccount has no name or namespace".into(),
            ));
        }
        Ok(Self {
            documents,
            namespace,
            service_account,
        })
    }
}

/// The environment variable naming a real cluster's kubeconfig for the end-to-end suites.
pub const E2E_KUBECONFIG: &str = "MCP_E2E_KUBECONFIG";

impl HarnessOptions {
    /// The defaults against the real cluster named by `MCP_E2E_KUBECONFIG`, or None when it is
    /// not set (the caller prints that the real-cluster run is skipped).
    pub fn real_cluster_from_env() -> Option<Self> {
        let path = std::env::var_os(E2E_KUBECONFIG).filter(|v| !v.is_empty())?;
        Some(Self {
            real_cluster: Some(PathBuf::from(path)),
            ..Self::default()
        })
    }
}

impl Default for HarnessOptions {
    /// Speed 30, boots of 20–40 simulated seconds, no faults, quick timings.
    fn default() -> Self {
        let mut digitalocean = SimDoConfig::default();
        digitalocean.boot_delay.min = Duration::from_secs(20);
        digitalocean.boot_delay.max = Duration::from_secs(40);
        // Scenario tests run in parallel processes: give each world its own address range.
        digitalocean.first_address = rand::random::<u32>() % 1_000_000;
        Self {
            speed: 30.0,
            digitalocean,
            configure: Box::new(|_| {}),
            start_operator: true,
            real_cluster: None,
            identity: OperatorIdentity::default(),
        }
    }
}

/// Why the harness failed to start or a wait timed out.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The world did not start.
    #[error("world: {0}")]
    World(#[from] crate::sim::WorldError),
    /// The DigitalOcean client could not be built.
    #[error("cloud client: {0}")]
    Cloud(#[from] crate::cloud::CloudError),
    /// The Kubernetes set-up (real cluster config, CRDs, namespace) failed.
    #[error("Kubernetes set-up: {0}")]
    Kube(String),
    /// The chart's rendered RBAC (tests/fixtures/chart/rbac-<mode>.yaml) could not be loaded.
    #[error("the chart's RBAC fixture {path}: {message}")]
    ChartRbac {
        /// The fixture file.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// A wait ran out; the message shows the object's last state.
    #[error("timed out after {waited:?} waiting for {what}; last seen: {last}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        waited: Duration,
        /// The object's last state (status as JSON) or the last error.
        last: String,
    },
}

/// A running simulated world with the operator.
pub struct OperatorHarness {
    /// The world (kube-sim unless a real cluster is used, simulated DigitalOcean, agents).
    pub world: World,
    /// A Kubernetes client of kube-sim (or of the real cluster).
    pub client: kube::Client,
    /// A namespace made for this harness (unique, so runs on a real cluster never collide).
    pub namespace: String,
    /// The operator's client (the service account's unless [`OperatorIdentity::Superuser`]).
    operator_client: kube::Client,
    /// The user kube-sim authenticates the operator as, when it runs under RBAC.
    operator_user: Option<String>,
    /// The clock of the world and the operator.
    pub clock: SharedClock,
    operator: Option<(RunningControllers, CancellationToken)>,
    config: Option<OperatorConfig>,
    real_cluster: bool,
    data_dir: PathBuf,
}

impl OperatorHarness {
    /// Starts the world and, unless told otherwise, the operator.
    pub async fn start(options: HarnessOptions) -> Result<Self, HarnessError> {
        let clock: SharedClock = Arc::new(ScaledClock::new(options.speed));
        let id = uuid::Uuid::new_v4().simple().to_string();
        let data_dir = std::env::temp_dir().join(format!("mcp-harness-{id}"));
        let rbac = match (options.identity, &options.real_cluster) {
            (_, Some(_)) | (OperatorIdentity::Superuser, None) => None,
            (OperatorIdentity::ChartRbac, None) => {
                Some(OperatorRbac::from_chart("all-namespaces")?)
            }
            (OperatorIdentity::Rbac(rbac), None) => Some(rbac),
        };
        let world = World::start(WorldConfig {
            clock: clock.clone(),
            kube: options.real_cluster.is_none().then(|| KubeSimSettings {
                rbac: rbac.as_ref().map(|_| kube_sim::rbac::Rbac::new()),
                ..Default::default()
            }),
            cloud: Some(CloudSettings {
                listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                token: SecretString::from("dop_v1_harness"),
                digitalocean: options.digitalocean,
                agent_data_dir: data_dir.clone(),
            }),
        })
        .await?;
        let client = match &options.real_cluster {
            None => world.kube_client()?,
            Some(path) => real_cluster_client(path).await?,
        };
        let namespace = format!("t-{}", &id[..10]);
        setup_namespace(&client, &namespace).await?;
        let (operator_client, operator_user) = match (&rbac, world.kube()) {
            (Some(rbac), Some(sim)) => (
                service_account_client(sim, rbac)?,
                Some(
                    kube_sim::rbac::UserInfo::service_account(
                        &rbac.namespace,
                        &rbac.service_account,
                    )
                    .name,
                ),
            ),
            _ => (client.clone(), None),
        };
        let mut config = simulated_operator_config(&format!("harness-{}", &id[..8]));
        config.timings = quick_timings();
        if let Some(rbac) = &rbac {
            // Where the chart installs it (its release namespace: the Lease's Role is there).
            config.operator_namespace = rbac.namespace.clone();
        }
        if options.real_cluster.is_some() {
            // A real cluster is shared by parallel test processes, each with its own simulated
            // cloud: an operator must see only its own namespace's objects.
            config.scope = crate::controller::WatchScope::Namespace(namespace.clone());
        }
        (options.configure)(&mut config);
        let mut harness = Self {
            world,
            client,
            operator_client,
            operator_user,
            namespace,
            clock,
            operator: None,
            config: Some(config),
            real_cluster: options.real_cluster.is_some(),
            data_dir,
        };
        if options.start_operator {
            harness.start_operator()?;
        }
        Ok(harness)
    }

    /// Starts the controllers (again, after `stop_operator`), with fresh in-memory state: what
    /// survives is only what is in kube-sim and the simulated cloud, as after a process restart.
    pub fn start_operator(&mut self) -> Result<Arc<Context>, HarnessError> {
        self.stop_operator_now();
        let metrics = Metrics::new();
        let cloud =
            world_cloud_client(&self.world, &metrics).ok_or_else(|| HarnessError::Timeout {
                what: "a simulated cloud".into(),
                waited: Duration::ZERO,
                last: "the world has no cloud".into(),
            })??;
        let config = self
            .config
            .clone()
            .unwrap_or_else(|| simulated_operator_config("harness"));
        let shutdown = CancellationToken::new();
        let running = start_controllers(
            OperatorParts {
                client: self.operator_client.clone(),
                cloud,
                clock: self.clock.clone(),
                metrics,
                config,
            },
            Readiness::default(),
            shutdown.clone(),
        );
        let context = Arc::clone(&running.context);
        self.operator = Some((running, shutdown));
        Ok(context)
    }

    /// The running operator's context (metrics, ledger).
    pub fn context(&self) -> Option<&Arc<Context>> {
        self.operator.as_ref().map(|(running, _)| &running.context)
    }

    /// Stops the controllers gracefully and waits until they have (at most
    /// [`SHUTDOWN_DEADLINE`]: a pass that never ends fails the test, naming this step, instead
    /// of hanging it).
    pub async fn stop_operator(&mut self) {
        if let Some((running, shutdown)) = self.operator.take() {
            shutdown.cancel();
            let _ = within_deadline("the controllers' graceful stop", running.done).await;
        }
    }

    /// Aborts the controllers at once (as a killed process would stop: no pass finishes).
    pub fn stop_operator_now(&mut self) {
        if let Some((running, shutdown)) = self.operator.take() {
            shutdown.cancel();
            running.done.abort();
        }
    }

    /// Waits until the object `name` in `api` satisfies `done`, polling every 50 ms of real
    /// time, at most `timeout` of real time.
    pub async fn wait_for<K>(
        &self,
        api: &Api<K>,
        name: &str,
        timeout: Duration,
        done: impl Fn(&K) -> bool,
    ) -> Result<K, HarnessError>
    where
        K: Resource + Clone + DeserializeOwned + Debug + serde::Serialize,
        K::DynamicType: Default,
    {
        wait_for(api, name, timeout, done).await
    }

    /// The client the operator uses: the service account's under RBAC, else the test's.
    pub fn operator_client(&self) -> &kube::Client {
        &self.operator_client
    }

    /// The operator's requests kube-sim denied so far (empty when it runs without RBAC or
    /// against a real cluster). Other users' denials (a test's own clients) are not counted.
    pub fn operator_denials(&self) -> Result<Vec<kube_sim::rbac::DeniedAccess>, HarnessError> {
        let (Some(user), Some(sim)) = (&self.operator_user, self.world.kube()) else {
            return Ok(Vec::new());
        };
        let record = sim
            .access_record()
            .map_err(|e| HarnessError::Kube(e.to_string()))?;
        Ok(record
            .denied()
            .into_iter()
            .filter(|d| d.user == *user)
            .collect())
    }

    /// Stops everything and removes the agents' data. On a real cluster the harness's
    /// namespace is emptied first (through the operator's finalizers) and deleted.
    ///
    /// Panics (failing the test) when kube-sim denied any request of the operator's under its
    /// RBAC: every scenario proves that the chart's permissions suffice.
    pub async fn shutdown(mut self) {
        if self.real_cluster {
            within_deadline("emptying the test namespace", self.clean_namespace()).await;
        }
        self.stop_operator().await;
        let denials = self.operator_denials();
        within_deadline(
            "the simulated world's stop (kube-sim, agents, DigitalOcean)",
            self.world.shutdown(),
        )
        .await;
        let _ = std::fs::remove_dir_all(&self.data_dir);
        match denials {
            Ok(denied) if denied.is_empty() => {}
            Ok(denied) => panic!(
                "kube-sim denied {} kind(s) of the operator's requests under its RBAC (the chart \
                 lacks a permission, or the test set the operator up unlike the chart): \
                 {denied:#?}",
                denied.len()
            ),
            Err(error) => panic!("the operator's denied requests could not be read: {error}"),
        }
    }
}

/// Applies `rbac`'s documents to kube-sim and returns a client with its service account's token
/// (the access record starts empty after this set-up).
fn service_account_client(
    sim: &kube_sim::Handle,
    rbac: &OperatorRbac,
) -> Result<kube::Client, HarnessError> {
    let err = |e: kube_sim::SimError| HarnessError::Kube(e.to_string());
    sim.apply_documents(&rbac.documents, &rbac.namespace, "harness-rbac-setup")
        .map_err(err)?;
    let token = sim
        .service_account_token(&rbac.namespace, &rbac.service_account)
        .map_err(err)?;
    let operator = crate::sim::world::client_with(sim, &token)?;
    sim.clear_access_record().map_err(err)?;
    Ok(operator)
}

/// The longest one step of the harness's shutdown may take, in real time. Every pass has its
/// own deadline ([`crate::controller::PASS_DEADLINE`]), so this only trips on a real hang.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(180);

/// Awaits `step`; panics naming it when it takes longer than [`SHUTDOWN_DEADLINE`] (test
/// support: a hung test should fail and say where, not run until CI's limit).
async fn within_deadline<F: std::future::Future>(what: &str, step: F) -> F::Output {
    match tokio::time::timeout(SHUTDOWN_DEADLINE, step).await {
        Ok(output) => output,
        Err(_) => panic!(
            "harness shutdown: {what} did not finish within {} s",
            SHUTDOWN_DEADLINE.as_secs()
        ),
    }
}

async fn real_cluster_client(path: &std::path::Path) -> Result<kube::Client, HarnessError> {
    use kube::api::{Patch, PatchParams};
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .map_err(|e| HarnessError::Kube(format!("{}: {e}", path.display())))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .map_err(|e| HarnessError::Kube(e.to_string()))?;
    let client = kube::Client::try_from(config).map_err(|e| HarnessError::Kube(e.to_string()))?;
    let crds: Api<
        k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    > = Api::all(client.clone());
    for crd in crate::api::all_crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.patch(
            &name,
            &PatchParams::apply("mcp-droplet-operator-e2e").force(),
            &Patch::Apply(&crd),
        )
        .await
        .map_err(|e| HarnessError::Kube(format!("CRD {name}: {e}")))?;
    }
    // A new CRD is served a moment after it is created.
    for _ in 0..100 {
        let api: Api<crate::api::deployment::MCPDeployment> = Api::all(client.clone());
        if api.list(&Default::default()).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(client)
}

async fn setup_namespace(client: &kube::Client, name: &str) -> Result<(), HarnessError> {
    use k8s_openapi::api::core::v1::Namespace;
    let api: Api<Namespace> = Api::all(client.clone());
    let namespace = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        ..Default::default()
    };
    api.create(&Default::default(), &namespace)
        .await
        .map_err(|e| HarnessError::Kube(format!("namespace {name}: {e}")))?;
    Ok(())
}

impl OperatorHarness {
    async fn clean_namespace(&self) {
        use crate::api::deployment::MCPDeployment;
        use crate::api::droplet::Droplet;
        use k8s_openapi::api::core::v1::Namespace;
        let deployments: Api<MCPDeployment> = Api::namespaced(self.client.clone(), &self.namespace);
        let droplets: Api<Droplet> = Api::namespaced(self.client.clone(), &self.namespace);
        let _ = deployments
            .delete_collection(&Default::default(), &Default::default())
            .await;
        let _ = droplets
            .delete_collection(&Default::default(), &Default::default())
            .await;
        for _ in 0..600 {
            let left = deployments
                .list(&Default::default())
                .await
                .map(|l| l.items.len())
                .unwrap_or(0)
                + droplets
                    .list(&Default::default())
                    .await
                    .map(|l| l.items.len())
                    .unwrap_or(0);
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let _ = namespaces
            .delete(&self.namespace, &Default::default())
            .await;
    }
}

/// Waits until the object `name` in `api` satisfies `done` (see [`OperatorHarness::wait_for`]).
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    timeout: Duration,
    done: impl Fn(&K) -> bool,
) -> Result<K, HarnessError>
where
    K: Resource + Clone + DeserializeOwned + Debug + serde::Serialize,
    K::DynamicType: Default,
{
    let started = std::time::Instant::now();
    loop {
        let last = match api.get_opt(name).await {
            Ok(Some(object)) => {
                if done(&object) {
                    return Ok(object);
                }
                serde_json::to_string(&object).unwrap_or_default()
            }
            Ok(None) => "not found".to_string(),
            Err(error) => error.to_string(),
        };
        if started.elapsed() > timeout {
            return Err(HarnessError::Timeout {
                what: format!("{} {name}", K::kind(&Default::default())),
                waited: timeout,
                last,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `check` every 50 ms of real time until it gives `Some`, at most `timeout`; panics
/// naming `what` when it never does (for tests: an awaited condition, never a bare sleep).
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = std::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
