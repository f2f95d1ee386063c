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
    /// Print the CustomResourceDefinitions as YAML (or write one file per CRD with --out-dir).
    Crds(cli::crds::CrdsArgs),
    /// Run the simulated world (kube-sim with the CRDs installed) until Ctrl-C.
    Sim(cli::sim::SimArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds(args) => cli::crds::run(args)?,
        Command::Sim(args) => tokio::runtime::Runtime::new()?.block_on(cli::sim::run(args))?,
    }
    Ok(())
}
