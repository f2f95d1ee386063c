//! mcp-droplet-agent: the agent that runs MCP servers in containers on a droplet.

use anyhow::Context;
use clap::{Parser, ValueEnum};
use mcp_droplet_agent::runtime::ContainerRuntime;
use mcp_droplet_agent::runtime::docker::DockerRuntime;
use mcp_droplet_agent::{AgentConfig, AgentOptions, BootstrapConfig, SimulatedRuntime};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RuntimeKind {
    Docker,
    Simulated,
}

/// The droplet agent: runs MCP servers in containers, driven by mcp-droplet-operator.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Bootstrap config written by cloud-init.
    #[arg(
        long,
        env = "MCP_DROPLET_AGENT_BOOTSTRAP",
        default_value = mcp_droplet_agent::bootstrap::BOOTSTRAP_PATH
    )]
    bootstrap: PathBuf,
    /// Directory for state and the TLS identity.
    #[arg(long, default_value = "/var/lib/mcp-droplet-agent")]
    data_dir: PathBuf,
    /// Container runtime.
    #[arg(long, value_enum, default_value = "docker")]
    runtime: RuntimeKind,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .json()
        .init();
    let args = Args::parse();
    let bootstrap = BootstrapConfig::from_file(&args.bootstrap)?;
    let runtime: Arc<dyn ContainerRuntime> = match args.runtime {
        RuntimeKind::Docker => {
            let docker = DockerRuntime::connect(&bootstrap.droplet_name)?;
            docker
                .ping()
                .await
                .context("Docker Engine is not reachable")?;
            Arc::new(docker)
        }
        RuntimeKind::Simulated => Arc::new(SimulatedRuntime::default()),
    };
    let handle = mcp_droplet_agent::spawn_agent(AgentConfig {
        bootstrap,
        data_dir: args.data_dir,
        listen: None,
        runtime,
        options: AgentOptions::default(),
    })
    .await?;
    // systemd stops services with SIGTERM; an operator at a terminal uses Ctrl-C.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down; containers keep running");
    handle.shutdown().await;
    Ok(())
}
