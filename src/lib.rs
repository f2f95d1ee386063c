//! mcp-droplet-operator: deploys MCP servers onto a fleet of DigitalOcean droplets.
pub mod api;
pub mod cloud;
pub mod sim;
