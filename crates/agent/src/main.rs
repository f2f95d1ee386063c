fn main() -> anyhow::Result<()> {
    anyhow::bail!("mcp-droplet-agent: not built yet")
}
