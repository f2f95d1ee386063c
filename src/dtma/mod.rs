//! Compatibility driver for the original Agentopia DTMA agent.
