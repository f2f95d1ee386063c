//! `mcp-droplet-operator sim`: the simulated world without the operator: kube-sim with our CRDs
//! applied, and (with `--do-token`) the simulated DigitalOcean whose droplets run real agents on
//! their own loopback addresses. `--no-kube` serves the simulated cloud alone, so an operator
//! connected to a real cluster can use it and be restarted while the cloud keeps its state.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

use crate::agent_client::sim_fleet::SimulatedAgentFleet;
use crate::api;
use crate::cli::sim_cloud::SimCloudArgs;
use crate::cloud::DoToken;
use crate::sim::digitalocean::{SimulatedDo, serve_simulated_do};

/// Arguments of `sim`.
#[derive(clap::Args, Debug, Clone)]
pub struct SimArgs {
    /// Where to write the kubeconfig that points kubectl and clients at kube-sim.
    #[arg(long, value_name = "FILE", required_unless_present = "no_kube")]
    pub kubeconfig: Option<PathBuf>,
    /// Serve only the simulated cloud (DigitalOcean and the droplets' agents), no API server.
    #[arg(long, requires = "do_token")]
    pub no_kube: bool,
    /// Where the simulated droplets' agents keep their state (default: a temporary folder).
    #[arg(long, value_name = "DIR")]
    pub agent_data_dir: Option<PathBuf>,
    /// The simulated DigitalOcean (it runs when `--do-token` is given).
    #[command(flatten)]
    pub cloud: SimCloudArgs,
    /// Address kube-sim listens on (loopback; port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Require this bearer token from clients (it is written into the kubeconfig).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "MCP_SIM_KUBE_TOKEN",
        hide_env_values = true,
        value_parser = parse_kube_token
    )]
    pub kube_token: Option<kube_sim::BearerToken>,
}

/// What can go wrong running `sim`.
#[derive(Debug, Error)]
pub enum SimError {
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
    Cloud(#[from] crate::sim::digitalocean::SimDoError),
    /// `--no-kube` without the simulated cloud would serve nothing.
    #[error(
        "sim --no-kube serves the simulated cloud alone: give --do-token TOKEN (and --do-listen ADDR)"
    )]
    NothingToServe,
    /// The kubeconfig path is missing.
    #[error("sim needs --kubeconfig FILE (or --no-kube with --do-token)")]
    NoKubeconfig,
    /// Waiting for Ctrl-C failed.
    #[error("waiting for Ctrl-C: {0}")]
    Signal(std::io::Error),
    /// A kube client for kube-sim could not be built.
    #[error("building a client for kube-sim: {0}")]
    Client(#[from] kube::Error),
    /// kube-sim's URL did not parse.
    #[error("kube-sim URL {0} is invalid")]
    Url(String),
}

fn parse_kube_token(raw: &str) -> Result<kube_sim::BearerToken, String> {
    if raw.trim().is_empty() {
        Err("the token must not be empty".to_owned())
    } else {
        Ok(kube_sim::BearerToken::new(raw))
    }
}

/// Field manager used for the CRDs applied at start-up.
const FIELD_MANAGER: &str = "mcp-droplet-operator-sim";

/// Starts kube-sim, applies the operator's CRDs and writes the kubeconfig.
pub async fn start(args: &SimArgs) -> Result<kube_sim::Handle, SimError> {
    let kubeconfig = args.kubeconfig.as_ref().ok_or(SimError::NoKubeconfig)?;
    let config = kube_sim::Config {
        listen: args.listen,
        token: args.kube_token.clone(),
        ..Default::default()
    };
    let sim = kube_sim::KubeSim::start(config).await?;
    for crd in api::all_crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let value =
            serde_json::to_value(&crd).map_err(|source| SimError::EncodeCrd { name, source })?;
        sim.apply(&value, FIELD_MANAGER)?;
    }
    sim.write_kubeconfig(kubeconfig)?;
    Ok(sim)
}

/// The simulated cloud: DigitalOcean, and a real agent on every droplet that becomes active.
pub struct SimulatedCloud {
    /// The simulated DigitalOcean API.
    pub digitalocean: SimulatedDo,
    /// The droplets' agents.
    pub agents: Arc<SimulatedAgentFleet>,
}

impl SimulatedCloud {
    /// Serves the simulated DigitalOcean and wires the agent fleet into its lifecycle hook.
    pub async fn start(
        args: &SimCloudArgs,
        token: DoToken,
        agent_data: &Path,
    ) -> Result<Self, SimError> {
        let digitalocean =
            serve_simulated_do(args.listen, token, args.to_config(args.clock())).await?;
        let agents = Arc::new(SimulatedAgentFleet::new(agent_data, Default::default()));
        digitalocean.set_lifecycle_hook(agents.clone());
        Ok(SimulatedCloud {
            digitalocean,
            agents,
        })
    }

    /// Stops the agents, then the API.
    pub async fn shutdown(self) {
        self.agents.shutdown().await;
        self.digitalocean.shutdown().await;
    }
}

/// A kube client talking to a running kube-sim (for the in-process simulated world and tests).
pub fn client_for(sim: &kube_sim::Handle) -> Result<kube::Client, SimError> {
    let cc = sim.client_config();
    let url = cc.url.parse().map_err(|_| SimError::Url(cc.url.clone()))?;
    let mut config = kube::Config::new(url);
    if let Some(token) = cc.token {
        config.auth_info.token = Some(token.expose().to_string().into());
    }
    Ok(kube::Client::try_from(config)?)
}

/// The how-to for the simulated cloud.
pub fn cloud_usage(base_url: &str) -> String {
    format!(
        "The simulated DigitalOcean is serving at {base_url}/v2/ (bearer token as given with --do-token).\n\
         Each droplet that becomes active runs a real mcp-droplet-agent on its own 127.x.y.z address.\n\
         Try:\n  curl -H \"Authorization: Bearer $TOKEN\" {base_url}/v2/droplets\n\n"
    )
}

/// The how-to printed once the world is up.
pub fn usage(url: &str, kubeconfig: &Path) -> String {
    let kc = kubeconfig.display();
    format!(
        "kube-sim is serving the Kubernetes API at {url}\n\
         The MCP CRDs are installed; the kubeconfig is {kc}.\n\n\
         Try:\n  \
           kubectl --kubeconfig {kc} apply -f examples/\n  \
           kubectl --kubeconfig {kc} get mcp -A\n  \
           export KUBECONFIG={kc}\n\n"
    )
}

/// Runs `sim` until Ctrl-C.
pub async fn run(args: SimArgs) -> Result<(), SimError> {
    if args.no_kube && args.cloud.token.is_none() {
        return Err(SimError::NothingToServe);
    }
    let cloud = match &args.cloud.token {
        Some(token) => {
            let agent_data = match &args.agent_data_dir {
                Some(dir) => dir.clone(),
                None => std::env::temp_dir().join(format!("mcp-sim-agents-{}", std::process::id())),
            };
            let cloud = SimulatedCloud::start(&args.cloud, token.clone(), &agent_data).await?;
            print!("{}", cloud_usage(&cloud.digitalocean.base_url()));
            Some(cloud)
        }
        None => None,
    };
    let kube = if args.no_kube {
        None
    } else {
        let sim = start(&args).await?;
        if let Some(kubeconfig) = &args.kubeconfig {
            print!("{}", usage(&sim.url(), kubeconfig));
        }
        Some(sim)
    };
    println!("Press Ctrl-C to stop.");
    let waited = tokio::signal::ctrl_c().await.map_err(SimError::Signal);
    if let Some(kube) = kube {
        kube.shutdown().await;
    }
    if let Some(cloud) = cloud {
        cloud.shutdown().await;
    }
    waited
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Api, ListParams};

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn parse(args: &[&str]) -> Result<SimArgs, clap::Error> {
        use clap::Parser;
        Cli::try_parse_from(std::iter::once("sim").chain(args.iter().copied())).map(|c| c.sim)
    }

    #[test]
    fn flags_choose_the_parts_of_the_world() {
        let kube_only = parse(&["--kubeconfig", "/tmp/k"]).unwrap();
        assert!(kube_only.cloud.token.is_none() && !kube_only.no_kube);
        let both = parse(&[
            "--kubeconfig",
            "/tmp/k",
            "--do-token",
            "t",
            "--do-listen",
            "127.0.0.1:0",
        ])
        .unwrap();
        assert!(both.cloud.token.is_some());
        let cloud_only = parse(&["--no-kube", "--do-token", "t"]).unwrap();
        assert!(cloud_only.no_kube && cloud_only.kubeconfig.is_none());
        assert!(parse(&[]).is_err(), "neither a kubeconfig nor --no-kube");
        assert!(
            parse(&["--no-kube"]).is_err(),
            "--no-kube without the cloud serves nothing"
        );
    }

    #[tokio::test]
    async fn start_installs_the_crds_and_writes_a_kubeconfig() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        let args = parse(&[
            "--kubeconfig",
            path.to_str().unwrap(),
            "--kube-token",
            "t0ken",
        ])
        .unwrap();
        let sim = start(&args).await.unwrap();
        let kubeconfig = args.kubeconfig.clone().unwrap();
        let text = std::fs::read_to_string(&kubeconfig).unwrap();
        assert!(text.contains(&sim.url()) && text.contains("t0ken"));
        let crds: Api<CustomResourceDefinition> = Api::all(client_for(&sim).unwrap());
        let mut names: Vec<String> = crds
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect();
        names.sort();
        let mut expected: Vec<String> = api::all_crds()
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect();
        expected.sort();
        assert_eq!(names, expected);
        assert!(usage(&sim.url(), &kubeconfig).contains("get mcp -A"));
        sim.shutdown().await;
    }
}
