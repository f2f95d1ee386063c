//! Fluent builders for the four kinds, for scenario tests.
//!
//! Every builder starts from an object that passes the offline validator
//! ([`crate::api::validation::validate_manifest`]); each method changes one thing. Quantities
//! and slugs are taken as written in manifests, so a test can also build an invalid object on
//! purpose (`.memory("lots")`) and check that it is rejected.
//!
//! ```
//! use mcp_droplet_operator::api::{Droplet, MCPDeployment};
//!
//! let github = MCPDeployment::test("github").pinned_to("d1").build();
//! let d1 = Droplet::test("d1").ready().size("s-2vcpu-4gb").build();
//! assert_eq!(github.spec.placement.droplet_name.as_deref(), Some("d1"));
//! assert_eq!(d1.spec.size.as_deref(), Some("s-2vcpu-4gb"));
//! ```

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::api::ObjectMeta;
use serde::Serialize;

use crate::api::common::{EnvVar, EnvVarSource, KeySelector, LocalObjectReference};
use crate::api::deployment::{
    DeploymentPhase, MCPDeployment, MCPDeploymentSpec, MCPDeploymentStatus, PlacementStatus,
};
use crate::api::droplet::{
    Adopt, AgentKind, DeletionPolicy, Droplet, DropletPhase, DropletSpec, DropletStatus,
    Utilization,
};
use crate::api::pool::{
    Budget, ConsolidationPolicy, Disruption, DropletPool, DropletPoolSpec, PoolLimits,
};
use crate::api::quantity::{format_bytes, format_cpu_millis};
use crate::api::template::{
    EnvSchema, MCPTemplate, MCPTemplateSpec, MCPTemplateStatus, NetworkPolicy, TemplatePhase,
    Transport, VolumeSpec,
};
use crate::api::validation::{FieldError, validate_manifest};
use crate::api::{DO_NOT_DISRUPT_ANNOTATION, ResourceList, ResourceRequests, Weights};
use crate::catalog;

/// Namespace of every namespaced object a builder makes unless `.namespace(..)` says otherwise.
pub const NAMESPACE: &str = "team-a";
/// Region of a new Droplet or DropletPool.
pub const REGION: &str = "nyc3";
/// Size of a new Droplet and the only size of a new DropletPool.
pub const SIZE: &str = "s-2vcpu-4gb";

/// Checks `object` with the offline validator (schema and CEL) as `kubectl apply` would.
///
/// ```
/// use mcp_droplet_operator::api::MCPDeployment;
/// use mcp_droplet_operator::testing::validate;
///
/// assert!(validate(&MCPDeployment::test("time").build()).is_ok());
/// assert!(validate(&MCPDeployment::test("time").memory("lots").build()).is_err());
/// ```
pub fn validate<K: Serialize>(object: &K) -> Result<(), Vec<FieldError>> {
    let value = serde_json::to_value(object).map_err(|e| {
        vec![FieldError {
            field: String::new(),
            message: format!("does not serialize: {e}"),
        }]
    })?;
    match validate_manifest(&value, None)? {
        true => Ok(()),
        false => Err(vec![FieldError {
            field: "apiVersion".into(),
            message: "not one of the operator's kinds".into(),
        }]),
    }
}

/// Renders objects as one multi-document YAML manifest (each document starts with `---`), for
/// tests of commands that read files.
///
/// ```
/// use mcp_droplet_operator::api::MCPDeployment;
/// use mcp_droplet_operator::testing::manifest_yaml;
///
/// let yaml = manifest_yaml(&[MCPDeployment::test("time").build()]).unwrap();
/// assert!(yaml.starts_with("---\napiVersion: mcp.agentopia.io/v1alpha1\nkind: MCPDeployment"));
/// ```
pub fn manifest_yaml<K: Serialize>(objects: &[K]) -> Result<String, serde_yaml_ng::Error> {
    let mut out = String::new();
    for object in objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(object)?);
    }
    Ok(out)
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        ..ObjectMeta::default()
    }
}

fn insert(map: &mut Option<BTreeMap<String, String>>, key: &str, value: &str) {
    map.get_or_insert_with(BTreeMap::new)
        .insert(key.to_owned(), value.to_owned());
}

fn list(memory: &str, cpu: &str) -> ResourceList {
    ResourceList {
        memory: Some(memory.to_owned()),
        cpu: Some(cpu.to_owned()),
        disk: None,
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

// ---------------------------------------------------------------------------------------------
// MCPDeployment

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

// ---------------------------------------------------------------------------------------------
// Droplet

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

// ---------------------------------------------------------------------------------------------
// DropletPool

impl DropletPool {
    /// A builder for a pool named `name` in [`NAMESPACE`]: [`REGION`], [`SIZE`], target
    /// utilization 80, no limits, default disruption.
    ///
    /// ```
    /// use mcp_droplet_operator::api::DropletPool;
    ///
    /// let p = DropletPool::test("default").sizes(&["s-1vcpu-2gb"]).max_droplets(3).build();
    /// assert_eq!(p.spec.limits.unwrap().max_droplets, Some(3));
    /// ```
    pub fn test(name: &str) -> PoolBuilder {
        PoolBuilder(DropletPool {
            metadata: meta(name, Some(NAMESPACE)),
            spec: DropletPoolSpec {
                regions: vec![REGION.to_owned()],
                sizes: vec![SIZE.to_owned()],
                target_utilization: 80,
                ..DropletPoolSpec::default()
            },
            status: None,
        })
    }
}

/// Builds a [`DropletPool`]; start with [`DropletPool::test`].
#[derive(Debug, Clone)]
#[must_use = "call .build() to get the object"]
pub struct PoolBuilder(DropletPool);

impl PoolBuilder {
    /// The finished object.
    pub fn build(self) -> DropletPool {
        self.0
    }

    /// Puts it in `namespace`.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.0.metadata.namespace = Some(namespace.to_owned());
        self
    }

    /// Regions, preferred first.
    pub fn regions(mut self, regions: &[&str]) -> Self {
        self.0.spec.regions = strings(regions);
        self
    }

    /// Allowed sizes.
    pub fn sizes(mut self, sizes: &[&str]) -> Self {
        self.0.spec.sizes = strings(sizes);
        self
    }

    fn limits(&mut self) -> &mut PoolLimits {
        self.0.spec.limits.get_or_insert_with(PoolLimits::default)
    }

    /// At most `n` droplets.
    pub fn max_droplets(mut self, n: u32) -> Self {
        self.limits().max_droplets = Some(n);
        self
    }

    /// At most `usd` per month.
    pub fn max_monthly_cost(mut self, usd: f64) -> Self {
        self.limits().max_monthly_cost_usd = Some(usd);
        self
    }

    /// Target utilization in percent (1-100).
    pub fn target_utilization(mut self, percent: u32) -> Self {
        self.0.spec.target_utilization = percent;
        self
    }

    /// Scoring weights (resources, load, latency, cost, health).
    pub fn weights(mut self, weights: [u32; 5]) -> Self {
        let [resources, load, latency, cost, health] = weights;
        self.0.spec.weights = Some(Weights {
            resources: Some(resources),
            load: Some(load),
            latency: Some(latency),
            cost: Some(cost),
            health: Some(health),
        });
        self
    }

    fn disruption(&mut self) -> &mut Disruption {
        self.0.spec.disruption.get_or_insert_with(|| Disruption {
            consolidation_policy: ConsolidationPolicy::default(),
            consolidate_after: "5m".to_owned(),
            budgets: Vec::new(),
        })
    }

    /// The consolidation policy.
    pub fn consolidation(mut self, policy: ConsolidationPolicy) -> Self {
        self.disruption().consolidation_policy = policy;
        self
    }

    /// How long a droplet must stay consolidatable first (`30s`, `5m`, `Never`).
    pub fn consolidate_after(mut self, duration: &str) -> Self {
        self.disruption().consolidate_after = duration.to_owned();
        self
    }

    /// Adds an always-active budget: at most `droplets` (`2` or `10%`) disrupted at once.
    pub fn budget(self, droplets: &str) -> Self {
        self.budget_with(Budget {
            droplets: droplets.to_owned(),
            ..Budget::default()
        })
    }

    /// Adds a budget as given (schedule, duration, reasons).
    pub fn budget_with(mut self, budget: Budget) -> Self {
        self.disruption().budgets.push(budget);
        self
    }
}

// ---------------------------------------------------------------------------------------------
// MCPTemplate

impl MCPTemplate {
    /// A builder for a cluster-scoped template named `name`: image
    /// `ghcr.io/example/<name>:1.0`, stdio, 256Mi and 250m, no env, default network.
    ///
    /// ```
    /// use mcp_droplet_operator::api::MCPTemplate;
    ///
    /// let t = MCPTemplate::test("github").streamable_http(8080).secret_env("TOKEN").build();
    /// assert_eq!(t.spec.port, Some(8080));
    /// ```
    pub fn test(name: &str) -> TemplateBuilder {
        TemplateBuilder(MCPTemplate {
            metadata: meta(name, None),
            spec: MCPTemplateSpec {
                display_name: None,
                description: None,
                category: Default::default(),
                official: false,
                image: format!("ghcr.io/example/{name}:1.0"),
                transport: Transport::Stdio,
                port: None,
                path: "/mcp".to_owned(),
                command: Vec::new(),
                args: Vec::new(),
                resources: ResourceRequests {
                    memory: Some("256Mi".to_owned()),
                    cpu: Some("250m".to_owned()),
                    disk: None,
                },
                env: Vec::new(),
                capabilities: Vec::new(),
                network: None,
                volumes: Vec::new(),
                links: None,
            },
            status: None,
        })
    }
}

/// Builds an [`MCPTemplate`]; start with [`MCPTemplate::test`].
#[derive(Debug, Clone)]
#[must_use = "call .build() to get the object"]
pub struct TemplateBuilder(MCPTemplate);

impl TemplateBuilder {
    /// The finished object.
    pub fn build(self) -> MCPTemplate {
        self.0
    }

    /// Sets the image reference.
    pub fn image(mut self, image: &str) -> Self {
        self.0.spec.image = image.to_owned();
        self
    }

    /// Serves streamable HTTP on `port` (at the path, `/mcp` unless set).
    pub fn streamable_http(mut self, port: i32) -> Self {
        self.0.spec.transport = Transport::StreamableHttp;
        self.0.spec.port = Some(port);
        self
    }

    /// Serves legacy SSE on `port`.
    pub fn sse(mut self, port: i32) -> Self {
        self.0.spec.transport = Transport::Sse;
        self.0.spec.port = Some(port);
        self
    }

    /// Sets the HTTP path of the MCP endpoint.
    pub fn path(mut self, path: &str) -> Self {
        self.0.spec.path = path.to_owned();
        self
    }

    /// Sets the memory request, as written in a manifest.
    pub fn memory(mut self, quantity: &str) -> Self {
        self.0.spec.resources.memory = Some(quantity.to_owned());
        self
    }

    /// Sets the CPU request (`250m`, `1`, or a class such as `low`).
    pub fn cpu(mut self, quantity: &str) -> Self {
        self.0.spec.resources.cpu = Some(quantity.to_owned());
        self
    }

    /// Sets the disk request.
    pub fn disk(mut self, quantity: &str) -> Self {
        self.0.spec.resources.disk = Some(quantity.to_owned());
        self
    }

    /// Adds an env schema entry as given.
    pub fn env(mut self, entry: EnvSchema) -> Self {
        self.0.spec.env.push(entry);
        self
    }

    /// Adds an optional, non-secret env variable.
    pub fn optional_env(self, name: &str) -> Self {
        self.env(EnvSchema {
            name: name.to_owned(),
            ..EnvSchema::default()
        })
    }

    /// Adds a required, non-secret env variable.
    pub fn required_env(self, name: &str) -> Self {
        self.env(EnvSchema {
            name: name.to_owned(),
            required: true,
            ..EnvSchema::default()
        })
    }

    /// Adds a required secret env variable (deployments must use a `secretKeyRef`).
    pub fn secret_env(self, name: &str) -> Self {
        self.env(EnvSchema {
            name: name.to_owned(),
            required: true,
            secret: true,
            ..EnvSchema::default()
        })
    }

    /// Adds an env variable with a default, limited to `choices` when not empty.
    pub fn env_default(self, name: &str, default: &str, choices: &[&str]) -> Self {
        self.env(EnvSchema {
            name: name.to_owned(),
            default: Some(default.to_owned()),
            choices: strings(choices),
            ..EnvSchema::default()
        })
    }

    /// Allows outbound connections to these hosts only.
    pub fn allow_hosts(mut self, hosts: &[&str]) -> Self {
        self.0.spec.network = Some(NetworkPolicy {
            allow_hosts: Some(strings(hosts)),
            none: None,
        });
        self
    }

    /// Runs without network.
    pub fn no_network(mut self) -> Self {
        self.0.spec.network = Some(NetworkPolicy {
            allow_hosts: None,
            none: Some(true),
        });
        self
    }

    /// Adds a volume `name` mounted at `mount_path`, of `size` when given.
    pub fn volume(mut self, name: &str, mount_path: &str, size: Option<&str>) -> Self {
        self.0.spec.volumes.push(VolumeSpec {
            name: name.to_owned(),
            mount_path: mount_path.to_owned(),
            size: size.map(str::to_owned),
        });
        self
    }

    fn status(&mut self) -> &mut MCPTemplateStatus {
        self.0.status.get_or_insert_with(MCPTemplateStatus::default)
    }

    /// Marks it `Accepted` by the template controller.
    pub fn accepted(mut self) -> Self {
        self.status().phase = Some(TemplatePhase::Accepted);
        self
    }

    /// Marks it `Rejected` by the template controller.
    pub fn rejected(mut self) -> Self {
        self.status().phase = Some(TemplatePhase::Rejected);
        self
    }

    /// Adds a status condition (see [`crate::api::conditions::condition`]).
    pub fn condition(mut self, condition: Condition) -> Self {
        self.status().conditions.push(condition);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::condition;

    fn now() -> jiff::Timestamp {
        "2026-11-25T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn every_builder_default_validates() {
        validate(&MCPDeployment::test("time").build()).unwrap();
        validate(&Droplet::test("d1").build()).unwrap();
        validate(&Droplet::test("d1").ready().build()).unwrap();
        validate(&DropletPool::test("default").build()).unwrap();
        validate(&MCPTemplate::test("time").build()).unwrap();
    }

    #[test]
    fn every_setter_keeps_the_objects_valid() {
        let d = MCPDeployment::test("github")
            .namespace("team-b")
            .template("github-v2")
            .label("app", "gh")
            .do_not_disrupt()
            .generation(3)
            .env("LOG_LEVEL", "debug")
            .env_from_secret("GITHUB_TOKEN", "gh", "token")
            .memory("512Mi")
            .cpu("low")
            .disk("1Gi")
            .selector("tier", "gold")
            .regions(&["sfo3", "nyc3"])
            .pool("fast")
            .weights([10, 20, 30, 20, 20])
            .auto_provision(false)
            .phase(DeploymentPhase::Ready)
            .placed_on("d1", "nyc3")
            .condition(condition("Ready", true, "Verified", "ok", Some(3), now()))
            .build();
        validate(&d).unwrap();
        assert_eq!(
            crate::fleet::key_of(&d.metadata),
            "team-b/github",
            "namespace"
        );
        assert_eq!(
            crate::fleet::deployment::recorded_droplet(&d).as_deref(),
            Some("d1")
        );
        let pinned = MCPDeployment::test("github").pinned_to("d1").build();
        validate(&pinned).unwrap();
        assert_eq!(
            crate::fleet::deployment::pinned_droplet(&pinned).as_deref(),
            Some("d1")
        );

        let droplet = Droplet::test("d1")
            .namespace("team-b")
            .region("sfo3")
            .size("s-4vcpu-8gb")
            .pool("default")
            .label("tier", "gold")
            .dtma()
            .adopt(42)
            .retain()
            .unschedulable()
            .ready()
            .droplet_id(42)
            .ips("203.0.113.7", "10.0.0.7")
            .allocated("1Gi", "500m")
            .deployments(&["team-b/github"])
            .utilization(0.25, 0.5, now())
            .health(70)
            .heartbeat(now())
            .failures(1)
            .condition(condition("Ready", true, "AgentReady", "ok", None, now()))
            .build();
        validate(&droplet).unwrap();
        let status = droplet.status.as_ref().unwrap();
        assert_eq!(status.size.as_deref(), Some("s-4vcpu-8gb"));
        assert_eq!(status.region.as_deref(), Some("sfo3"));
        assert_eq!(status.capacity.memory.as_deref(), Some("8Gi"));
        assert_eq!(status.capacity.cpu.as_deref(), Some("4"));

        let pool = DropletPool::test("default")
            .namespace("team-b")
            .regions(&["sfo3"])
            .sizes(&["s-1vcpu-2gb", "s-4vcpu-8gb"])
            .max_droplets(3)
            .max_monthly_cost(100.0)
            .target_utilization(70)
            .weights([40, 25, 15, 10, 10])
            .consolidation(ConsolidationPolicy::WhenEmpty)
            .consolidate_after("10m")
            .budget("1")
            .budget_with(Budget {
                droplets: "0".into(),
                schedule: Some("0 9 * * 1-5".into()),
                duration: Some("8h".into()),
                reasons: Vec::new(),
            })
            .build();
        validate(&pool).unwrap();

        let template = MCPTemplate::test("github")
            .image("ghcr.io/github/github-mcp-server:1.2")
            .streamable_http(8080)
            .path("/api/mcp")
            .memory("512Mi")
            .cpu("500m")
            .disk("1Gi")
            .optional_env("DEBUG")
            .required_env("ORG")
            .secret_env("GITHUB_TOKEN")
            .env_default("MODE", "read", &["read", "write"])
            .allow_hosts(&["api.github.com"])
            .volume("cache", "/cache", Some("1Gi"))
            .accepted()
            .build();
        validate(&template).unwrap();
        validate(
            &MCPTemplate::test("t")
                .sse(9000)
                .no_network()
                .rejected()
                .build(),
        )
        .unwrap();
    }

    #[test]
    fn ready_droplets_feed_the_fleet_view_as_ready_with_the_catalogue_allocatable() {
        let d = Droplet::test("d1").size("s-2vcpu-4gb").ready().build();
        let fleet = crate::fleet::droplet_from_api(&d, now()).unwrap().unwrap();
        assert_eq!(fleet.phase, scheduler::DropletPhase::Ready);
        assert!(fleet.healthy);
        let expected = catalog::size("s-2vcpu-4gb")
            .unwrap()
            .capacity()
            .minus(scheduler::DEFAULT_SYSTEM_RESERVE);
        assert_eq!(fleet.allocatable, expected);
    }

    #[test]
    fn deliberately_invalid_objects_are_rejected_naming_the_field() {
        let errors = validate(&MCPDeployment::test("x").memory("lots").build()).unwrap_err();
        assert!(
            errors.iter().any(|e| e.field == "spec.resources.memory"),
            "{errors:?}"
        );
        let both = MCPDeployment::test("x")
            .pinned_to("d1")
            .selector("a", "b")
            .build();
        assert!(validate(&both).is_err());
        let mut bad = MCPTemplate::test("t").no_network().build();
        bad.spec.network = Some(NetworkPolicy {
            allow_hosts: Some(vec!["a.example".into()]),
            none: Some(true),
        });
        assert!(validate(&bad).is_err());
        assert!(validate(&DropletPool::test("p").target_utilization(0).build()).is_err());
    }
}
