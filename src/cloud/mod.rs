//! DigitalOcean: the API client, its rate limiter, idempotent droplet creation, the orphan
//! sweep, droplet bootstrap (cloud-init) and metrics. Never imports the simulated world.

pub mod bootstrap;
pub mod client;
pub mod droplet_creation;
pub mod droplet_tags;
pub mod error;
pub mod metrics;
pub mod models;
pub mod offline_catalog;
pub mod orphan_sweep;
pub mod rate_limit;

pub use client::{DoClient, DoClientConfig};
pub use error::CloudError;
