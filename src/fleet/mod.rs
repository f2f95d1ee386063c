//! API objects -> the scheduler's model: the conversion `plan` uses now and the controllers
//! use next.
//!
//! - [`pool`]: a DropletPool as a scheduler [`scheduler::Pool`], and the default pool of a
//!   namespace without pools;
//! - [`droplet`]: a Droplet object as a [`scheduler::FleetDroplet`] (phase, health, load,
//!   price, allocatable, reserve); a droplet without status has not been observed and takes
//!   no work;
//! - [`deployment`]: what an MCPDeployment requests (template defaults, overrides), its
//!   constraints as a [`scheduler::PendingDeployment`], and a decision as its
//!   `status.placement`;
//! - [`view`]: all of it together as one [`FleetView`]: what runs where, reconciled from the
//!   droplets' reports and the deployments' recorded placements (one truth), the pending
//!   deployments and the pools, ready to become a [`scheduler::Snapshot`].
//!
//! The catalogue's sizes and regions in the scheduler's shape come from
//! [`crate::catalog::size_offers`] and [`crate::catalog::region_locations`].

pub mod deployment;
pub mod droplet;
pub mod pool;
pub mod view;

pub use deployment::{pending_from_api, placement_status, request_of};
pub use droplet::droplet_from_api;
pub use pool::{default_pool, pool_from_api};
pub use view::{FleetObjects, FleetView, NotPlanned};

/// A conversion that failed, naming the object and the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FleetError {
    /// A field of one of our objects is wrong.
    #[error("{kind} {name}: {field}: {message}")]
    Field {
        /// Kind of the object.
        kind: &'static str,
        /// `namespace/name` of the object.
        name: String,
        /// Dotted field path.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The objects contradict each other (duplicate names and the like).
    #[error("{0}")]
    Scheduler(#[from] scheduler::SchedulerError),
}

/// Which object a conversion is reading, for errors that name it.
pub(crate) struct ObjectRef {
    pub(crate) kind: &'static str,
    pub(crate) name: String,
}

impl ObjectRef {
    pub(crate) fn err(&self, field: &str, message: impl std::fmt::Display) -> FleetError {
        FleetError::Field {
            kind: self.kind,
            name: self.name.clone(),
            field: field.to_string(),
            message: message.to_string(),
        }
    }

    pub(crate) fn bytes(
        &self,
        field: &str,
        value: Option<&String>,
    ) -> Result<Option<u64>, FleetError> {
        value
            .map(|v| crate::api::quantity::parse_bytes(v).map_err(|e| self.err(field, e)))
            .transpose()
    }

    pub(crate) fn cpu(
        &self,
        field: &str,
        value: Option<&String>,
    ) -> Result<Option<u64>, FleetError> {
        value
            .map(|v| crate::api::quantity::parse_cpu_millis(v).map_err(|e| self.err(field, e)))
            .transpose()
    }

    /// A resource list with at least memory or CPU, else `None`.
    pub(crate) fn list(
        &self,
        field: &str,
        list: &crate::api::ResourceList,
    ) -> Result<Option<scheduler::Resources>, FleetError> {
        let memory = self.bytes(&format!("{field}.memory"), list.memory.as_ref())?;
        let cpu = self.cpu(&format!("{field}.cpu"), list.cpu.as_ref())?;
        let disk = self.bytes(&format!("{field}.disk"), list.disk.as_ref())?;
        if memory.is_none() && cpu.is_none() {
            return Ok(None);
        }
        Ok(Some(scheduler::Resources::new(
            memory.unwrap_or(0),
            cpu.unwrap_or(0),
            disk.unwrap_or(0),
        )))
    }
}

/// The namespace of an object (`default` when unset).
pub fn namespace_of(meta: &kube::api::ObjectMeta) -> String {
    meta.namespace.clone().unwrap_or_else(|| "default".into())
}

/// `namespace/name` of an object.
pub fn key_of(meta: &kube::api::ObjectMeta) -> String {
    format!(
        "{}/{}",
        namespace_of(meta),
        meta.name.clone().unwrap_or_default()
    )
}

/// True when the object carries `mcp.agentopia.io/do-not-disrupt: "true"`.
pub(crate) fn do_not_disrupt(meta: &kube::api::ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(crate::api::DO_NOT_DISRUPT_ANNOTATION))
        .is_some_and(|v| v == "true")
}

/// The API's weights in the scheduler's shape (absent factors count 0, decision 0002).
pub(crate) fn weights_from(w: &crate::api::Weights) -> scheduler::Weights {
    let [resources, load, latency, cost, health] = w.values().map(f64::from);
    scheduler::Weights {
        resources,
        load,
        latency,
        cost,
        health,
    }
}
