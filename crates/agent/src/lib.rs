//! mcp-droplet-agent: the agent that runs MCP servers in containers on a droplet.
