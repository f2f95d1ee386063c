//! The `mcp-droplet-operator` command line.

use clap::{Parser, Subcommand};
use mcp_droplet_operator::cli;

/// Deploys MCP servers onto a fleet of DigitalOcean droplets.
#[derive(Parser, Debug)]
#[command(name = "mcp-droplet-operator", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the operator: the controllers against a cluster (in-cluster or KUBECONFIG), with
    /// leader election, /metrics, /healthz and /readyz.
    Run(Box<cli::run::RunArgs>),
    /// The one-command demo: the simulated world with the operator, examples/ applied, a live
    /// bar per deployment, then the deployments and the fleet (exit code 0 when all are Ready).
    Demo(Box<cli::demo::DemoArgs>),
    /// Print the CustomResourceDefinitions as YAML (or write one file per CRD with --out-dir).
    Crds(cli::crds::CrdsArgs),
    /// Run the simulated world until Ctrl-C: kube-sim with the CRDs, and with --do-token the
    /// simulated DigitalOcean whose droplets run real agents.
    Sim(Box<cli::sim::SimArgs>),
    /// Plan placements offline from manifests: droplets, new droplets, cost and packing.
    Plan(cli::plan::PlanArgs),
    /// Check an MCP endpoint with a real client: initialize, then tools/list.
    Probe(cli::probe::ProbeArgs),
    /// The catalogue: import MCP registry server.json documents as MCPTemplates.
    Catalog(cli::catalog::CatalogArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => tokio::runtime::Runtime::new()?.block_on(cli::run::run(*args))?,
        Command::Demo(args) => {
            let outcome = tokio::runtime::Runtime::new()?.block_on(cli::demo::run(*args))?;
            if !outcome.all_ready() {
                eprintln!(
                    "\n{} of {} deployments are not Ready:",
                    outcome.failures.len(),
                    outcome.deployments
                );
                for failure in &outcome.failures {
                    eprintln!("  {failure}");
                }
                std::process::exit(1);
            }
        }
        Command::Crds(args) => cli::crds::run(args)?,
        Command::Sim(args) => tokio::runtime::Runtime::new()?.block_on(cli::sim::run(*args))?,
        Command::Plan(args) => cli::plan::run(args)?,
        Command::Probe(args) => {
            let runtime = tokio::runtime::Runtime::new()?;
            // The outcome is already printed; a failed check only sets the exit code.
            if let Err(error) = runtime.block_on(cli::probe::run(args)) {
                eprintln!("error: {error}");
                std::process::exit(1);
            }
        }
        Command::Catalog(args) => {
            // The per-document report is already on stderr; the error only adds the summary.
            if let Err(error) = cli::catalog::run(args) {
                eprintln!("error: {error}");
                std::process::exit(1);
            }
        }
    }
    Ok(())
}
