//! DigitalOcean: the API client, its rate limiter and retries, idempotent provisioning,
//! droplet bootstrap (cloud-init) and metrics.

pub mod bootstrap;
pub mod client;
pub mod error;
pub mod metrics;
pub mod models;
pub mod offline_catalog;
pub mod provision;
pub mod rate_limit;
pub mod retry;

pub use client::{DoClient, DoClientConfig, DoToken};
pub use error::CloudError;
