//! The simulated world: the simulated DigitalOcean, the droplets' agent fleet, and [`World`],
//! which starts them with kube-sim on one clock (the `clock` crate). Production code
//! (`cloud`, `agent_client`) never imports this module.

pub mod agent_fleet;
pub mod digitalocean;
pub mod operator;
pub mod world;

pub use world::{CloudSettings, KubeSimSettings, SimulatedCloud, World, WorldConfig, WorldError};
