//! Builds MCPDeployment objects for tests: [`DeploymentBuilder`].

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};

use super::{NAMESPACE, insert, meta, strings};
use crate::api::deployment::{
    DeploymentPhase, MCPDeployment, MCPDeploymentSpec, MCPDeploymentStatus, PlacementStatus,
};
use crate::api::shared_fields::{EnvVar, EnvVarSource, KeySelector, LocalObjectReference};
use crate::api::{DO_NOT_DISRUPT_ANNOTATION, ResourceRequests, Weights};

impl MCPDeployment {
    /// A builder for a deployment named `name` in [`NAMESPACE`] running the template of the
    /// same name, placed anywhere with auto-provisioning on.
    ///
    /// ```
    /// use mcp_droplet_operator::api::MCPDeployment;
    ///
    /// let d = MCPDeployment::test("github").pinned_to("d1").memory("512Mi").build();
    /// assert_eq!(d.spec.template_ref.name, "github");
    /// ```
    pub fn test(name: &str) -> DeploymentBuilder {
        DeploymentBuilder(MCPDeployment {
            metadata: meta(name, Some(NAMESPACE)),
            spec: MCPDeploymentSpec {
                template_ref: LocalObjectReference {
                    name: name.to_owned(),
                },
                ..MCPDeploymentSpec::default()
            },
            status: None,
        })
    }
}

/// Builds an [`MCPDeployment`]; start with [`MCPDeployment::test`].
#[derive(Debug, Clone)]
#[must_use = "call .build() to get the object"]
pub struct DeploymentBuilder(MCPDeployment);

impl DeploymentBuilder {
    /// The finished object.
    pub fn build(self) -> MCPDeployment {
        self.0
    }

    /// Puts it in `namespace`.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.0.metadata.namespace = Some(namespace.to_owned());
        self
    }

    /// Adds a label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        insert(&mut self.0.metadata.labels, key, value);
        self
    }

    /// Adds an annotation.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        insert(&mut self.0.metadata.annotations, key, value);
        self
    }

    /// Marks it `mcp.agentopia.io/do-not-disrupt: "true"` (consolidation never moves it).
    pub fn do_not_disrupt(self) -> Self {
        self.annotation(DO_NOT_DISRUPT_ANNOTATION, "true")
    }

    /// Sets `metadata.generation` (what `status.observedGeneration` is compared with).
    pub fn generation(mut self, generation: i64) -> Self {
        self.0.metadata.generation = Some(generation);
        self
    }

    /// Runs the MCPTemplate `name`.
    pub fn template(mut self, name: &str) -> Self {
        self.0.spec.template_ref.name = name.to_owned();
        self
    }

    /// Adds a literal env value.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.0.spec.env.push(EnvVar {
            name: name.to_owned(),
            value: Some(value.to_owned()),
            value_from: None,
        });
        self
    }

    /// Adds an env value read from key `key` of Secret `secret`.
    pub fn env_from_secret(mut self, name: &str, secret: &str, key: &str) -> Self {
        self.0.spec.env.push(EnvVar {
            name: name.to_owned(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(KeySelector {
                    name: secret.to_owned(),
                    key: key.to_owned(),
                    optional: None,
                }),
                config_map_key_ref: None,
            }),
        });
        self
    }

    fn resources(&mut self) -> &mut ResourceRequests {
        self.0
            .spec
            .resources
            .get_or_insert_with(ResourceRequests::default)
    }

    /// Overrides the template's memory request, as written in a manifest (`512Mi`).
    pub fn memory(mut self, quantity: &str) -> Self {
        self.resources().memory = Some(quantity.to_owned());
        self
    }

    /// Overrides the template's CPU request (`250m`, `1`, or a class such as `low`).
    pub fn cpu(mut self, quantity: &str) -> Self {
        self.resources().cpu = Some(quantity.to_owned());
        self
    }

    /// Overrides the template's disk request.
    pub fn disk(mut self, quantity: &str) -> Self {
        self.resources().disk = Some(quantity.to_owned());
        self
    }

    /// Pins it to the Droplet object `droplet` (`placement.dropletName`).
    pub fn pinned_to(mut self, droplet: &str) -> Self {
        self.0.spec.placement.droplet_name = Some(droplet.to_owned());
        self
    }

    /// Only droplets labelled `key=value` (adds to `placement.dropletSelector.matchLabels`).
    pub fn selector(mut self, key: &str, value: &str) -> Self {
        let selector = self
            .0
            .spec
            .placement
            .droplet_selector
            .get_or_insert_with(LabelSelector::default);
        insert(&mut selector.match_labels, key, value);
        self
    }

    /// Preferred regions, best first.
    pub fn regions(mut self, regions: &[&str]) -> Self {
        self.0.spec.placement.regions = strings(regions);
        self
    }

    /// Uses the DropletPool `pool` instead of the namespace's `default`.
    pub fn pool(mut self, pool: &str) -> Self {
        self.0.spec.placement.pool = Some(pool.to_owned());
        self
    }

    /// Scoring weights (resources, load, latency, cost, health).
    pub fn weights(mut self, weights: [u32; 5]) -> Self {
        let [resources, load, latency, cost, health] = weights;
        self.0.spec.placement.weights = Some(Weights {
            resources: Some(resources),
            load: Some(load),
            latency: Some(latency),
            cost: Some(cost),
            health: Some(health),
        });
        self
    }

    /// Whether a droplet may be provisioned when none fits (on by default).
    pub fn auto_provision(mut self, on: bool) -> Self {
        self.0.spec.placement.auto_provision = on;
        self
    }

    fn status(&mut self) -> &mut MCPDeploymentStatus {
        self.0
            .status
            .get_or_insert_with(MCPDeploymentStatus::default)
    }

    /// Sets `status.phase`.
    pub fn phase(mut self, phase: DeploymentPhase) -> Self {
        self.status().phase = phase;
        self
    }

    /// Records a placement on `droplet` in `region` (`status.placement`).
    pub fn placed_on(mut self, droplet: &str, region: &str) -> Self {
        self.status().placement = Some(PlacementStatus {
            droplet: Some(droplet.to_owned()),
            region: Some(region.to_owned()),
            ..PlacementStatus::default()
        });
        self
    }

    /// Adds a status condition (see [`crate::api::conditions::condition`]).
    pub fn condition(mut self, condition: Condition) -> Self {
        self.status().conditions.push(condition);
        self
    }
}
