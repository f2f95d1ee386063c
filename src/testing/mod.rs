//! Test support for the operator's unit tests, integration tests and benchmarks: builders for
//! the four kinds ([`builders`]), an in-memory credential store ([`credential_store`]), a
//! fake DTMA with a switch per quirk ([`dtma_fake`]) and a stand-in container registry
//! ([`registry_fake`]).
//!
//! Compiled only for the library's own tests and with the `testing` feature, which the binary
//! never enables; integration tests get it through the self dev-dependency in `Cargo.toml`
//! (decision 0020).

pub mod builders;
pub mod credential_store;
pub mod dtma_fake;
pub mod operator;
pub mod registry_fake;

pub use builders::{
    DeploymentBuilder, DropletBuilder, PoolBuilder, TemplateBuilder, manifest_yaml, validate,
};
pub use credential_store::MemoryCredentialStore;
pub use registry_fake::{FakeRegistry, RegistryControls, RegistryMode};
