//! The custom resources of group `mcp.agentopia.io`, version `v1alpha1`.
