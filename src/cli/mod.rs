//! The subcommands of the `mcp-droplet-operator` binary, one module each.

pub mod catalog;
pub mod crds;
pub mod demo;
pub mod plan;
pub mod probe;
pub mod run;
pub mod sim;
pub mod sim_cloud;
pub mod text_table;
