//! Builds Droplet objects for tests: [`DropletBuilder`].

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::{NAMESPACE, REGION, SIZE, insert, list, meta, strings};
use crate::api::ResourceList;
use crate::api::droplet::{
    Adopt, AgentKind, DeletionPolicy, Droplet, DropletPhase, DropletSpec, DropletStatus,
    Utilization,
};
use crate::api::quantity::{format_bytes, format_cpu_millis};
use crate::catalog;

impl Droplet {
    /// A builder for a Droplet object named `name` in [`NAMESPACE`]: [`SIZE`] in [`REGION`],
    /// our agent, not observed yet (no status).
    ///
    /// ```
    /// use mcp_droplet_operator::api::Droplet;
    ///
    /// let d = Droplet::test("d1").ready().size("s-4vcpu-8gb").build();
    /// assert_eq!(d.status.unwrap().capacity.memory.as_deref(), Some("8Gi"));
    /// ```
    pub fn test(name: &str) -> DropletBuilder {
        DropletBuilder(Droplet {
            metadata: meta(name, Some(NAMESPACE)),
            spec: DropletSpec {
                region: Some(REGION.to_owned()),
                size: Some(SIZE.to_owned()),
                ..DropletSpec::default()
            },
            status: None,
        })
    }
}

/// Builds a [`Droplet`] object; start with [`Droplet::test`].
///
/// [`DropletBuilder::ready`] fills capacity and allocatable from the catalogue for the size the
/// object has when it is built, so `.ready().size(..)` and `.size(..).ready()` agree.
#[derive(Debug, Clone)]
#[must_use = "call .build() to get the object"]
pub struct DropletBuilder(Droplet);

impl DropletBuilder {
    /// The finished object.
    pub fn build(mut self) -> Droplet {
        let (size, region) = (self.0.spec.size.clone(), self.0.spec.region.clone());
        if let Some(status) = self.0.status.as_mut() {
            if status.size.is_none() {
                status.size = size.clone();
            }
            if status.region.is_none() {
                status.region = region;
            }
            if let Some(spec) = size.as_deref().and_then(catalog::size) {
                let capacity = spec.capacity();
                let allocatable = capacity.minus(scheduler::DEFAULT_SYSTEM_RESERVE);
                if status.capacity == ResourceList::default() {
                    status.capacity = resource_list(capacity);
                }
                if status.allocatable == ResourceList::default() {
                    status.allocatable = resource_list(allocatable);
                }
            }
        }
        self.0
    }

    /// Puts it in `namespace`.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.0.metadata.namespace = Some(namespace.to_owned());
        self
    }

    /// Adds a label (matched by deployments' `placement.dropletSelector`).
    pub fn label(mut self, key: &str, value: &str) -> Self {
        insert(&mut self.0.metadata.labels, key, value);
        self
    }

    /// Adds an annotation.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        insert(&mut self.0.metadata.annotations, key, value);
        self
    }

    /// Sets the region slug.
    pub fn region(mut self, region: &str) -> Self {
        self.0.spec.region = Some(region.to_owned());
        self
    }

    /// Sets the size slug.
    pub fn size(mut self, size: &str) -> Self {
        self.0.spec.size = Some(size.to_owned());
        self
    }

    /// Marks it as provisioned by the pool `pool`.
    pub fn pool(mut self, pool: &str) -> Self {
        self.0.spec.pool = Some(pool.to_owned());
        self
    }

    /// Runs the original DTMA instead of our agent.
    pub fn dtma(mut self) -> Self {
        self.0.spec.agent.kind = AgentKind::Dtma;
        self
    }

    /// Adopts the existing DigitalOcean droplet `droplet_id` (region and size stay as set).
    pub fn adopt(mut self, droplet_id: i64) -> Self {
        self.0.spec.adopt = Some(Adopt { droplet_id });
        self
    }

    /// Keeps the DigitalOcean droplet when the object is deleted.
    pub fn retain(mut self) -> Self {
        self.0.spec.deletion_policy = DeletionPolicy::Retain;
        self
    }

    /// Cordons it: no new deployments are placed here.
    pub fn unschedulable(mut self) -> Self {
        self.0.spec.unschedulable = true;
        self
    }

    fn status(&mut self) -> &mut DropletStatus {
        self.0.status.get_or_insert_with(DropletStatus::default)
    }

    /// Observed and `Ready`: status with the phase, region and size, capacity and allocatable
    /// from the catalogue (unless set explicitly), and full health.
    pub fn ready(self) -> Self {
        self.phase(DropletPhase::Ready)
    }

    /// Sets `status.phase` (and so gives the droplet a status).
    pub fn phase(mut self, phase: DropletPhase) -> Self {
        self.status().phase = phase;
        self
    }

    /// Sets `status.dropletID`.
    pub fn droplet_id(mut self, id: i64) -> Self {
        self.status().droplet_id = Some(id);
        self
    }

    /// Sets the public and private IPv4 addresses.
    pub fn ips(mut self, public: &str, private: &str) -> Self {
        let status = self.status();
        status.public_ipv4 = Some(public.to_owned());
        status.private_ipv4 = Some(private.to_owned());
        self
    }

    /// Sets `status.capacity` (memory, CPU) instead of the catalogue's.
    pub fn capacity(mut self, memory: &str, cpu: &str) -> Self {
        self.status().capacity = list(memory, cpu);
        self
    }

    /// Sets `status.allocatable` (memory, CPU) instead of capacity minus the system reserve.
    pub fn allocatable(mut self, memory: &str, cpu: &str) -> Self {
        self.status().allocatable = list(memory, cpu);
        self
    }

    /// Sets `status.allocated` (memory, CPU): what the agent reports in use.
    pub fn allocated(mut self, memory: &str, cpu: &str) -> Self {
        self.status().allocated = list(memory, cpu);
        self
    }

    /// Sets the deployments the agent reports, as `namespace/name`.
    pub fn deployments(mut self, keys: &[&str]) -> Self {
        self.status().deployments = strings(keys);
        self
    }

    /// Sets the observed CPU and memory busy fractions (0-1), sampled at `at`.
    pub fn utilization(mut self, cpu: f64, memory: f64, at: jiff::Timestamp) -> Self {
        self.status().utilization = Utilization {
            cpu,
            memory,
            sampled_at: Some(Time(at)),
            ..Utilization::default()
        };
        self
    }

    /// Sets the health score (0-100; below 50 is unhealthy).
    pub fn health(mut self, score: u32) -> Self {
        self.status().health.score = score;
        self
    }

    /// Sets the last successful contact with the agent.
    pub fn heartbeat(mut self, at: jiff::Timestamp) -> Self {
        self.status().health.last_heartbeat = Some(Time(at));
        self
    }

    /// Sets the failed contacts since the last success.
    pub fn failures(mut self, consecutive: u32) -> Self {
        self.status().health.consecutive_failures = consecutive;
        self
    }

    /// Adds a status condition (see [`crate::api::conditions::condition`]).
    pub fn condition(mut self, condition: Condition) -> Self {
        self.status().conditions.push(condition);
        self
    }
}

fn resource_list(resources: scheduler::Resources) -> ResourceList {
    ResourceList {
        memory: Some(format_bytes(resources.memory)),
        cpu: Some(format_cpu_millis(resources.cpu_millis)),
        disk: Some(format_bytes(resources.disk)),
    }
}
