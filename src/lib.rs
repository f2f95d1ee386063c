//! mcp-droplet-operator: deploys MCP servers onto a fleet of DigitalOcean droplets.
//!
//! The library holds the API types, the pure decision logic and the I/O edges; the binary
//! (`src/main.rs`) is the CLI. See `docs/architecture.md` for the map.

pub mod agent_client;
// kube-derive's repeated `printcolumn(type_ = ...)` attributes trip this lint by design.
#[allow(clippy::duplicated_attributes)]
pub mod api;
pub mod catalog;
pub mod cli;
pub mod cloud;
pub mod controller;
pub mod dtma;
pub mod fleet;
pub mod image_check;
pub mod probe;
pub mod registry_import;
pub mod retry;
pub mod sim;
pub mod telemetry;
// Builders and doubles for tests; the binary never enables `testing` (decision 0020).
#[cfg(any(test, feature = "testing"))]
pub mod testing;

// The scheduler is its own pure crate (crates/scheduler); re-exported so `crate::scheduler`
// paths keep working in the operator.
pub use scheduler;
