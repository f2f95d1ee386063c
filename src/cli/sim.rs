//! `mcp-droplet-operator sim`: the simulated world without the operator. For now that is
//! kube-sim with our CRDs applied; later issues add the simulated DigitalOcean and agents.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::api;

/// Arguments of `sim`. Other parts of the simulated world add their flags here.
#[derive(clap::Args, Debug, Clone)]
pub struct SimArgs {
    /// Where to write the kubeconfig that points kubectl and clients at kube-sim.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: PathBuf,
    /// Address kube-sim listens on (loopback; port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Require this bearer token from clients (it is written into the kubeconfig).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "MCP_SIM_KUBE_TOKEN",
        hide_env_values = true
    )]
    pub kube_token: Option<String>,
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

/// Field manager used for the CRDs applied at start-up.
const FIELD_MANAGER: &str = "mcp-droplet-operator-sim";

/// Starts kube-sim, applies the operator's CRDs and writes the kubeconfig.
pub async fn start(args: &SimArgs) -> Result<kube_sim::Handle, SimError> {
    let config = kube_sim::Config {
        listen: args.listen,
        token: args.kube_token.clone().map(kube_sim::BearerToken::new),
        ..Default::default()
    };
    let sim = kube_sim::KubeSim::start(config).await?;
    for crd in api::all_crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let value =
            serde_json::to_value(&crd).map_err(|source| SimError::EncodeCrd { name, source })?;
        sim.apply(&value, FIELD_MANAGER)?;
    }
    sim.write_kubeconfig(&args.kubeconfig)?;
    Ok(sim)
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

/// The how-to printed once the world is up.
pub fn usage(url: &str, kubeconfig: &Path) -> String {
    let kc = kubeconfig.display();
    format!(
        "kube-sim is serving the Kubernetes API at {url}\n\
         The MCP CRDs are installed; the kubeconfig is {kc}.\n\n\
         Try:\n  \
           kubectl --kubeconfig {kc} apply -f examples/\n  \
           kubectl --kubeconfig {kc} get mcp -A\n  \
           export KUBECONFIG={kc}\n\n\
         Press Ctrl-C to stop.\n"
    )
}

/// Runs `sim` until Ctrl-C.
pub async fn run(args: SimArgs) -> Result<(), SimError> {
    let sim = start(&args).await?;
    print!("{}", usage(&sim.url(), &args.kubeconfig));
    tokio::signal::ctrl_c().await.map_err(SimError::Signal)?;
    sim.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Api, ListParams};

    #[tokio::test]
    async fn start_installs_the_crds_and_writes_a_kubeconfig() {
        let dir = tempfile::tempdir().unwrap();
        let args = SimArgs {
            kubeconfig: dir.path().join("kubeconfig"),
            listen: "127.0.0.1:0".parse().unwrap(),
            kube_token: Some("t0ken".into()),
        };
        let sim = start(&args).await.unwrap();
        let text = std::fs::read_to_string(&args.kubeconfig).unwrap();
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
        assert!(usage(&sim.url(), &args.kubeconfig).contains("get mcp -A"));
        sim.shutdown().await;
    }
}
