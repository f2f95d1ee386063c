//! `mcp-droplet-operator sim`: the simulated world without the operator: kube-sim with our CRDs
//! applied, and (with `--do-token`) the simulated DigitalOcean whose droplets run real agents on
//! their own loopback addresses. `--no-kube` serves the simulated cloud alone, so an operator
//! connected to a real cluster can use it and be restarted while the cloud keeps its state.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::cli::sim_cloud::SimCloudArgs;
use crate::sim::{CloudSettings, KubeSimSettings, World, WorldConfig, WorldError};

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
    /// The world could not start.
    #[error(transparent)]
    World(#[from] WorldError),
    /// `--no-kube` without the simulated cloud would serve nothing.
    #[error(
        "sim --no-kube serves the simulated cloud alone: give --do-token TOKEN (and --do-listen ADDR)"
    )]
    NothingToServe,
    /// Waiting for Ctrl-C failed.
    #[error("waiting for Ctrl-C: {0}")]
    Signal(std::io::Error),
}

fn parse_kube_token(raw: &str) -> Result<kube_sim::BearerToken, String> {
    if raw.trim().is_empty() {
        Err("the token must not be empty".to_owned())
    } else {
        Ok(kube_sim::BearerToken::new(raw))
    }
}

impl SimArgs {
    /// The world these flags ask for (the cloud's clock is `--do-speed`'s).
    pub fn world_config(&self) -> Result<WorldConfig, SimError> {
        if self.no_kube && self.cloud.token.is_none() {
            return Err(SimError::NothingToServe);
        }
        let cloud = self.cloud.token.as_ref().map(|token| CloudSettings {
            listen: self.cloud.listen,
            token: token.clone(),
            digitalocean: self.cloud.to_config(self.cloud.clock()),
            agent_data_dir: self.agent_data_dir.clone().unwrap_or_else(|| {
                std::env::temp_dir().join(format!("mcp-sim-agents-{}", std::process::id()))
            }),
        });
        let kube = (!self.no_kube).then(|| KubeSimSettings {
            listen: self.listen,
            token: self.kube_token.clone(),
            kubeconfig: self.kubeconfig.clone(),
            rbac: None,
        });
        Ok(WorldConfig {
            clock: self.cloud.clock(),
            kube,
            cloud,
        })
    }
}

/// A kube client talking to a running kube-sim (kept for callers of the old path).
pub fn client_for(sim: &kube_sim::Handle) -> Result<kube::Client, WorldError> {
    crate::sim::world::client_for(sim)
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
    let world = World::start(args.world_config()?).await?;
    if let Some(url) = world.digitalocean_url() {
        print!("{}", cloud_usage(&url));
    }
    if let (Some(url), Some(kubeconfig)) = (world.kube_url(), &args.kubeconfig) {
        print!("{}", usage(&url, kubeconfig));
    }
    println!("Press Ctrl-C to stop.");
    let waited = tokio::signal::ctrl_c().await.map_err(SimError::Signal);
    world.shutdown().await;
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
        let world = cloud_only.world_config().unwrap();
        assert!(world.kube.is_none() && world.cloud.is_some());
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
        let world = World::start(args.world_config().unwrap()).await.unwrap();
        let url = world.kube_url().unwrap();
        let kubeconfig = args.kubeconfig.clone().unwrap();
        let text = std::fs::read_to_string(&kubeconfig).unwrap();
        assert!(text.contains(&url) && text.contains("t0ken"));
        let crds: Api<CustomResourceDefinition> = Api::all(world.kube_client().unwrap());
        let mut names: Vec<String> = crds
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect();
        names.sort();
        let mut expected: Vec<String> = crate::api::all_crds()
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect();
        expected.sort();
        assert_eq!(names, expected);
        assert!(usage(&url, &kubeconfig).contains("get mcp -A"));
        assert!(world.cloud().is_none());
        world.shutdown().await;
    }
}
