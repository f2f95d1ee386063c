//! mcp-droplet-operator: deploys MCP servers onto a fleet of DigitalOcean droplets.
pub mod api;
pub mod cli;
pub mod dtma;
pub mod probe;
