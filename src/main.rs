use clap::{Parser, Subcommand};

/// mcp-droplet-operator: deploys MCP servers onto DigitalOcean droplets.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check an MCP endpoint with a real client: initialize, then tools/list.
    Probe(mcp_droplet_operator::cli::probe::ProbeArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Probe(args) => {
            // The outcome is already printed; a failed check only sets the exit code.
            if let Err(error) = mcp_droplet_operator::cli::probe::run(args).await {
                eprintln!("error: {error}");
                std::process::exit(1);
            }
        }
    }
    Ok(())
}
