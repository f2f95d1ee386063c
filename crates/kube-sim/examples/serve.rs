//! Runs kube-sim until Ctrl-C and writes a kubeconfig: `cargo run -p kube-sim --example serve -- /tmp/kubeconfig [addr]`.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "kubeconfig".into());
    let mut config = kube_sim::Config::default();
    if let Some(addr) = args.next() {
        config.listen = addr.parse()?;
    }
    let sim = kube_sim::KubeSim::start(config).await?;
    sim.write_kubeconfig(std::path::Path::new(&path))?;
    println!("kube-sim on {}; kubeconfig {path}", sim.url());
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(())
}
