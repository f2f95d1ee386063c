//! `mcp-droplet-operator plan -f PATH... [-o table|json]`: an offline placement plan.
//!
//! Reads MCPTemplates, DropletPools, Droplets and MCPDeployments from YAML files or folders
//! (multi-document; other kinds are skipped), converts them at this edge into the scheduler's
//! model, packs the pending deployments and prints where each goes, which droplets would be
//! created, what the fleet costs and how tight the packing is. See docs/scheduler.md for the
//! JSON fields.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::deployment::MCPDeployment;
use crate::api::droplet::{self as api_droplet, Droplet as ApiDroplet};
use crate::api::pool::{self as api_pool, DropletPool};
use crate::api::quantity::{CPU_TIER_LOW_MILLIS, parse_bytes, parse_cpu_millis};
use crate::api::shared_fields::parse_duration;
use crate::api::template::MCPTemplate;
use crate::api::{self, DO_NOT_DISRUPT_ANNOTATION, ResourceList, ResourceRequests};
use crate::catalog;
use crate::scheduler::{
    self, BatchPlan, Budget, BudgetLimit, ConsolidationPolicy, DEFAULT_SYSTEM_RESERVE, Disruption,
    DisruptionReason, DropletPhase, Location, PendingDeployment, PlacedDeployment, Pool,
    PoolLimits, Region, Resources, Size, Snapshot, Target, Weights,
};

/// Memory a template asks for when it names none.
pub const DEFAULT_MEMORY: u64 = 256 * scheduler::MIB;
/// Regions of the implicit pool of a namespace without a DropletPool.
pub const DEFAULT_POOL_REGIONS: [&str; 3] = ["nyc3", "sfo3", "ams3"];

/// Arguments of `plan`.
#[derive(clap::Args, Debug, Clone)]
pub struct PlanArgs {
    /// YAML files or folders (not recursive) with templates, pools, droplets and deployments.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// The time heartbeat ages are measured from (RFC 3339); defaults to now. Fix it for a
    /// reproducible plan from manifests with status.
    #[arg(long)]
    pub now: Option<jiff::Timestamp>,
    /// What the packing of new droplets optimises first (docs/decisions/0507).
    #[arg(long, value_enum, default_value_t = Packing::FewestDroplets)]
    pub packing: Packing,
}

/// The `--packing` choices of `plan`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    /// Fewest new droplets, then the lowest cost (the default).
    FewestDroplets,
    /// Lowest monthly cost, then fewest droplets (may open many small droplets).
    LowestCost,
}

impl From<Packing> for scheduler::PackingObjective {
    fn from(p: Packing) -> Self {
        match p {
            Packing::FewestDroplets => scheduler::PackingObjective::FewestDroplets,
            Packing::LowestCost => scheduler::PackingObjective::LowestCost,
        }
    }
}

/// How `plan` prints.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Aligned tables for people.
    Table,
    /// The stable JSON document described in docs/scheduler.md.
    Json,
}

/// Everything that can stop a plan.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A file or folder could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A document is not valid YAML.
    #[error("{path}: document {document}: {message}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// 1-based document number in the file.
        document: usize,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A field of one of our objects is wrong.
    #[error("{path}: {kind} {name}: {field}: {message}")]
    Field {
        /// The file.
        path: PathBuf,
        /// Kind of the object.
        kind: String,
        /// `namespace/name` or name.
        name: String,
        /// Dotted field path.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The inputs contradict each other (duplicate names and the like).
    #[error("{0}")]
    Scheduler(#[from] scheduler::SchedulerError),
    /// JSON output failed.
    #[error("cannot render JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The objects read from the inputs, each with the file it came from.
#[derive(Debug, Default)]
pub struct Inputs {
    /// Templates.
    pub templates: Vec<(PathBuf, MCPTemplate)>,
    /// Pools.
    pub pools: Vec<(PathBuf, DropletPool)>,
    /// Droplets.
    pub droplets: Vec<(PathBuf, ApiDroplet)>,
    /// Deployments.
    pub deployments: Vec<(PathBuf, MCPDeployment)>,
}

fn yaml_files(path: &Path) -> Result<Vec<PathBuf>, PlanError> {
    let read = |source| PlanError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read)?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(read)? {
        let p = entry.map_err(read)?.path();
        if p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

fn object_name(doc: &Value) -> String {
    let meta = &doc["metadata"];
    match (meta["namespace"].as_str(), meta["name"].as_str()) {
        (Some(ns), Some(n)) => format!("{ns}/{n}"),
        (None, Some(n)) => n.to_string(),
        _ => "(unnamed)".to_string(),
    }
}

/// Reads every YAML document of the given files and folders; our kinds are validated
/// against the CRD schemas and deserialized, other kinds skipped.
pub fn read_inputs(paths: &[PathBuf]) -> Result<Inputs, PlanError> {
    let mut inputs = Inputs::default();
    for path in paths {
        for file in yaml_files(path)? {
            let text = std::fs::read_to_string(&file).map_err(|source| PlanError::Read {
                path: file.clone(),
                source,
            })?;
            for (n, doc) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
                let value = Value::deserialize(doc).map_err(|e| PlanError::Yaml {
                    path: file.clone(),
                    document: n + 1,
                    message: e.to_string(),
                })?;
                if value.is_null() {
                    continue;
                }
                let kind = value["kind"].as_str().unwrap_or("").to_string();
                let field_error = |field: String, message: String| PlanError::Field {
                    path: file.clone(),
                    kind: if kind.is_empty() {
                        "object".into()
                    } else {
                        kind.clone()
                    },
                    name: object_name(&value),
                    field,
                    message,
                };
                match api::validation::validate_manifest(&value, None) {
                    Ok(false) => continue,
                    Ok(true) => {}
                    Err(errors) => {
                        let first =
                            errors
                                .first()
                                .cloned()
                                .unwrap_or(api::validation::FieldError {
                                    field: String::new(),
                                    message: "invalid".into(),
                                });
                        let rest = if errors.len() > 1 {
                            format!(" (and {} more)", errors.len() - 1)
                        } else {
                            String::new()
                        };
                        return Err(field_error(first.field, format!("{}{rest}", first.message)));
                    }
                }
                let typed = |e: serde_json::Error| field_error(String::new(), e.to_string());
                match kind.as_str() {
                    "MCPTemplate" => inputs.templates.push((
                        file.clone(),
                        serde_json::from_value(value.clone()).map_err(typed)?,
                    )),
                    "DropletPool" => inputs.pools.push((
                        file.clone(),
                        serde_json::from_value(value.clone()).map_err(typed)?,
                    )),
                    "Droplet" => inputs.droplets.push((
                        file.clone(),
                        serde_json::from_value(value.clone()).map_err(typed)?,
                    )),
                    "MCPDeployment" => inputs.deployments.push((
                        file.clone(),
                        serde_json::from_value(value.clone()).map_err(typed)?,
                    )),
                    _ => {}
                }
            }
        }
    }
    Ok(inputs)
}

/// The catalogue's sizes in the scheduler's model.
pub fn catalog_sizes() -> Vec<Size> {
    let regions: Vec<&str> = catalog::regions()
        .iter()
        .filter(|r| r.available)
        .map(|r| r.slug)
        .collect();
    catalog::sizes()
        .iter()
        .map(|s| Size {
            slug: s.slug.to_string(),
            capacity: Resources::new(s.memory_bytes(), s.cpu_millis(), s.disk_bytes()),
            hourly_usd: s.price_hourly(),
            monthly_usd: s.price_monthly,
            regions: regions
                .iter()
                .filter(|r| s.sold_in(r))
                .map(|r| r.to_string())
                .collect(),
        })
        .collect()
}

/// The catalogue's regions in the scheduler's model.
pub fn catalog_regions() -> Vec<Region> {
    catalog::regions()
        .iter()
        .map(|r| Region {
            slug: r.slug.to_string(),
            location: Location {
                latitude: r.latitude,
                longitude: r.longitude,
            },
        })
        .collect()
}

struct Ctx<'a> {
    path: &'a Path,
    kind: &'static str,
    name: String,
}

impl Ctx<'_> {
    fn err(&self, field: &str, message: impl std::fmt::Display) -> PlanError {
        PlanError::Field {
            path: self.path.to_path_buf(),
            kind: self.kind.to_string(),
            name: self.name.clone(),
            field: field.to_string(),
            message: message.to_string(),
        }
    }

    fn bytes(&self, field: &str, value: Option<&String>) -> Result<Option<u64>, PlanError> {
        value
            .map(|v| parse_bytes(v).map_err(|e| self.err(field, e)))
            .transpose()
    }

    fn cpu(&self, field: &str, value: Option<&String>) -> Result<Option<u64>, PlanError> {
        value
            .map(|v| parse_cpu_millis(v).map_err(|e| self.err(field, e)))
            .transpose()
    }

    fn list(&self, field: &str, list: &ResourceList) -> Result<Option<Resources>, PlanError> {
        let memory = self.bytes(&format!("{field}.memory"), list.memory.as_ref())?;
        let cpu = self.cpu(&format!("{field}.cpu"), list.cpu.as_ref())?;
        let disk = self.bytes(&format!("{field}.disk"), list.disk.as_ref())?;
        if memory.is_none() && cpu.is_none() {
            return Ok(None);
        }
        Ok(Some(Resources::new(
            memory.unwrap_or(0),
            cpu.unwrap_or(0),
            disk.unwrap_or(0),
        )))
    }
}

fn weights_from(w: &api::Weights) -> Weights {
    let [resources, load, latency, cost, health] = w.values().map(f64::from);
    Weights {
        resources,
        load,
        latency,
        cost,
        health,
    }
}

fn namespace_of(meta: &kube::api::ObjectMeta) -> String {
    meta.namespace.clone().unwrap_or_else(|| "default".into())
}

/// Converts a DropletPool into the scheduler's pool (named `namespace/name`).
pub fn pool_from_api(path: &Path, pool: &DropletPool) -> Result<Pool, PlanError> {
    let ns = namespace_of(&pool.metadata);
    let name = format!("{ns}/{}", pool.metadata.name.clone().unwrap_or_default());
    let ctx = Ctx {
        path,
        kind: "DropletPool",
        name: name.clone(),
    };
    let spec = &pool.spec;
    let sizes = if spec.sizes.is_empty() {
        catalog::default_pool_sizes()
            .into_iter()
            .map(String::from)
            .collect()
    } else {
        for (i, s) in spec.sizes.iter().enumerate() {
            if catalog::size(s).is_none() {
                return Err(ctx.err(&format!("spec.sizes[{i}]"), format!("unknown size {s:?}")));
            }
        }
        spec.sizes.clone()
    };
    for (i, r) in spec.regions.iter().enumerate() {
        if catalog::region(r).is_none() {
            return Err(ctx.err(
                &format!("spec.regions[{i}]"),
                format!("unknown region {r:?}"),
            ));
        }
    }
    let mut out = Pool::new(name, spec.regions.clone(), sizes);
    out.target_utilization = f64::from(spec.target_utilization.clamp(1, 100)) / 100.0;
    out.min_score = f64::from(spec.min_score.unwrap_or(0));
    out.weights = spec.weights.as_ref().map(weights_from);
    if let Some(l) = &spec.limits {
        out.limits = PoolLimits {
            max_droplets: l.max_droplets,
            max_monthly_usd: l.max_monthly_cost_usd,
        };
    }
    if let Some(d) = &spec.disruption {
        out.disruption = disruption_from_api(&ctx, d)?;
    }
    Ok(out)
}

fn disruption_from_api(ctx: &Ctx<'_>, d: &api_pool::Disruption) -> Result<Disruption, PlanError> {
    let policy = match d.consolidation_policy {
        api_pool::ConsolidationPolicy::Never => ConsolidationPolicy::Never,
        api_pool::ConsolidationPolicy::WhenEmpty => ConsolidationPolicy::WhenEmpty,
        api_pool::ConsolidationPolicy::WhenUnderutilized => ConsolidationPolicy::WhenUnderutilized,
    };
    let consolidate_after = parse_duration(&d.consolidate_after)
        .map_err(|e| ctx.err("spec.disruption.consolidateAfter", e))?
        .unwrap_or(Duration::MAX);
    let mut budgets = Vec::new();
    for (i, b) in d.budgets.iter().enumerate() {
        let field = format!("spec.disruption.budgets[{i}]");
        let limit = match b.droplets.strip_suffix('%') {
            Some(p) => BudgetLimit::Percent(
                p.parse()
                    .map_err(|_| ctx.err(&format!("{field}.droplets"), "not a percentage"))?,
            ),
            None => BudgetLimit::Count(
                b.droplets
                    .parse()
                    .map_err(|_| ctx.err(&format!("{field}.droplets"), "not a count"))?,
            ),
        };
        if let Some(s) = &b.schedule {
            scheduler::cron::Schedule::parse(s)
                .map_err(|e| ctx.err(&format!("{field}.schedule"), e))?;
        }
        let duration = match &b.duration {
            Some(text) => parse_duration(text)
                .map_err(|e| ctx.err(&format!("{field}.duration"), e))?
                .unwrap_or(Duration::ZERO),
            None => Duration::ZERO,
        };
        budgets.push(Budget {
            limit,
            schedule: b.schedule.clone(),
            duration,
            reasons: b
                .reasons
                .iter()
                .map(|r| match r {
                    api_pool::DisruptionReason::Empty => DisruptionReason::Empty,
                    api_pool::DisruptionReason::Underutilized => DisruptionReason::Underutilized,
                    api_pool::DisruptionReason::Drifted => DisruptionReason::Drifted,
                })
                .collect(),
        });
    }
    Ok(Disruption {
        policy,
        consolidate_after,
        budgets,
        ..Disruption::default()
    })
}

/// Converts a Droplet. A Droplet without status is planned as a Ready, empty droplet of
/// its size (the plan is a what-if over manifests). Returns `None` for droplets whose size
/// is unknown (adopted and never observed).
pub fn droplet_from_api(
    path: &Path,
    droplet: &ApiDroplet,
    now: jiff::Timestamp,
) -> Result<Option<scheduler::Droplet>, PlanError> {
    let ns = namespace_of(&droplet.metadata);
    let name = droplet.metadata.name.clone().unwrap_or_default();
    let ctx = Ctx {
        path,
        kind: "Droplet",
        name: format!("{ns}/{name}"),
    };
    let status = droplet.status.as_ref();
    let size_slug = droplet
        .spec
        .size
        .clone()
        .or_else(|| status.and_then(|s| s.size.clone()));
    let region = droplet
        .spec
        .region
        .clone()
        .or_else(|| status.and_then(|s| s.region.clone()));
    let (Some(size_slug), Some(region)) = (size_slug, region) else {
        return Ok(None);
    };
    let size = catalog::size(&size_slug);
    let reserve = match &droplet.spec.reserved {
        Some(r) => Resources::new(
            ctx.bytes("spec.reserved.memory", r.memory.as_ref())?
                .unwrap_or(DEFAULT_SYSTEM_RESERVE.memory),
            ctx.cpu("spec.reserved.cpu", r.cpu.as_ref())?
                .unwrap_or(DEFAULT_SYSTEM_RESERVE.cpu_millis),
            ctx.bytes("spec.reserved.disk", r.disk.as_ref())?
                .unwrap_or(DEFAULT_SYSTEM_RESERVE.disk),
        ),
        None => DEFAULT_SYSTEM_RESERVE,
    };
    let from_size = size
        .map(|s| Resources::new(s.memory_bytes(), s.cpu_millis(), s.disk_bytes()).minus(reserve));
    let observed_allocatable = match status {
        Some(s) => ctx.list("status.allocatable", &s.allocatable)?,
        None => None,
    };
    let Some(allocatable) = observed_allocatable.or(from_size) else {
        return Err(ctx.err("spec.size", format!("unknown size {size_slug:?}")));
    };
    let allocated = match status {
        Some(s) => ctx
            .list("status.allocated", &s.allocated)?
            .unwrap_or_default(),
        None => Resources::ZERO,
    };
    let (phase, healthy, heartbeat_age, failures, observed_load) = match status {
        None => (DropletPhase::Ready, true, Some(Duration::ZERO), 0, None),
        Some(s) => {
            let phase = match s.phase {
                api_droplet::DropletPhase::Ready => DropletPhase::Ready,
                api_droplet::DropletPhase::Pending
                | api_droplet::DropletPhase::Provisioning
                | api_droplet::DropletPhase::Booting
                | api_droplet::DropletPhase::Enrolling => DropletPhase::Provisioning,
                api_droplet::DropletPhase::NotReady | api_droplet::DropletPhase::Failed => {
                    DropletPhase::NotReady
                }
                api_droplet::DropletPhase::Draining => DropletPhase::Draining,
                api_droplet::DropletPhase::Terminating => DropletPhase::Terminating,
            };
            let age = s.health.last_heartbeat.as_ref().map(|t| {
                let seen = t.0;
                Duration::from_secs(now.duration_since(seen).as_secs().max(0) as u64)
            });
            let load = s
                .utilization
                .sampled_at
                .as_ref()
                .map(|_| s.utilization.cpu.max(s.utilization.memory));
            (
                phase,
                s.health.score >= 50,
                age,
                s.health.consecutive_failures,
                load,
            )
        }
    };
    let price = status.map(|s| &s.price).filter(|p| p.monthly_usd > 0.0);
    let (hourly_usd, monthly_usd) = match (price, size) {
        (Some(p), _) => (p.hourly_usd, p.monthly_usd),
        (None, Some(s)) => (s.price_hourly(), s.price_monthly),
        (None, None) => (0.0, 0.0),
    };
    Ok(Some(scheduler::Droplet {
        namespace: ns.clone(),
        name,
        pool: droplet
            .spec
            .pool
            .as_ref()
            .map(|p| format!("{ns}/{p}"))
            .unwrap_or_default(),
        region,
        size: size_slug,
        labels: droplet.metadata.labels.clone().unwrap_or_default(),
        allocatable,
        allocated,
        deployments: Vec::new(),
        phase,
        healthy,
        cordoned: droplet.spec.unschedulable,
        observed_load,
        heartbeat_age,
        recent_failures: failures,
        hourly_usd,
        monthly_usd,
        since_last_change: None,
        do_not_disrupt: droplet
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DO_NOT_DISRUPT_ANNOTATION))
            .is_some_and(|v| v == "true"),
    }))
}

/// What a deployment requests: the template's resources, overridden field by field by the
/// deployment's. Memory defaults to 256Mi and CPU to the low tier when neither names them.
pub fn request_of(
    path: &Path,
    deployment: &MCPDeployment,
    template: Option<&ResourceRequests>,
) -> Result<Resources, PlanError> {
    let ns = namespace_of(&deployment.metadata);
    let ctx = Ctx {
        path,
        kind: "MCPDeployment",
        name: format!(
            "{ns}/{}",
            deployment.metadata.name.clone().unwrap_or_default()
        ),
    };
    let own = deployment.spec.resources.clone().unwrap_or_default();
    let tmpl = template.cloned().unwrap_or_default();
    let memory = match own.memory.as_ref() {
        Some(m) => ctx.bytes("spec.resources.memory", Some(m))?,
        None => ctx.bytes("template spec.resources.memory", tmpl.memory.as_ref())?,
    };
    let cpu = match own.cpu.as_ref() {
        Some(c) => ctx.cpu("spec.resources.cpu", Some(c))?,
        None => ctx.cpu("template spec.resources.cpu", tmpl.cpu.as_ref())?,
    };
    let disk = match own.disk.as_ref() {
        Some(d) => ctx.bytes("spec.resources.disk", Some(d))?,
        None => ctx.bytes("template spec.resources.disk", tmpl.disk.as_ref())?,
    };
    Ok(Resources::new(
        memory.unwrap_or(DEFAULT_MEMORY),
        cpu.unwrap_or(CPU_TIER_LOW_MILLIS),
        disk.unwrap_or(0),
    ))
}

/// The scheduler's decision as an MCPDeployment `status.placement` (for controllers: the
/// breakdown, the reason and the runners-up answer "why this droplet?" in `kubectl describe`).
pub fn placement_status(
    placement: &scheduler::Placement,
    region: &str,
) -> crate::api::deployment::PlacementStatus {
    use crate::api::deployment::{Alternative, PlacementStatus, ScoreBreakdown};
    let b = &placement.breakdown;
    PlacementStatus {
        droplet: Some(placement.droplet.clone()),
        region: Some(region.to_string()),
        score: Some(round2(placement.score)),
        breakdown: Some(ScoreBreakdown {
            resources: round2(b.resources),
            load: round2(b.load),
            latency: round2(b.latency),
            cost: round2(b.cost),
            health: round2(b.health),
        }),
        reason: Some(placement.reason.clone()),
        alternatives: placement
            .runners_up
            .iter()
            .map(|c| Alternative {
                droplet: c.droplet.clone(),
                score: round2(c.score),
            })
            .collect(),
    }
}

/// One placement in the JSON output.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlacementOut {
    /// `namespace/name`.
    pub deployment: String,
    /// Droplet name (existing or new).
    pub droplet: String,
    /// True when the droplet is one the plan creates.
    pub new: bool,
    /// Weighted score 0..100.
    pub score: f64,
    /// Region of the droplet.
    pub region: String,
    /// Per-factor scores.
    pub breakdown: BreakdownOut,
    /// Why, for people.
    pub reason: String,
}

/// Per-factor scores in the JSON output.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BreakdownOut {
    /// Fit.
    pub resources: f64,
    /// Load.
    pub load: f64,
    /// Latency.
    pub latency: f64,
    /// Cost.
    pub cost: f64,
    /// Health.
    pub health: f64,
}

/// A new droplet in the JSON output.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NewDropletOut {
    /// Proposed name.
    pub name: String,
    /// Pool (`namespace/name`).
    pub pool: String,
    /// Size slug.
    pub size: String,
    /// Region slug.
    pub region: String,
    /// Price per month.
    #[serde(rename = "monthlyUSD")]
    pub monthly_usd: f64,
    /// Price per hour.
    #[serde(rename = "hourlyUSD")]
    pub hourly_usd: f64,
    /// Deployments packed into it.
    pub deployments: Vec<String>,
}

/// A deployment the plan cannot place.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UnschedulableOut {
    /// `namespace/name`.
    pub deployment: String,
    /// Why.
    pub reason: String,
}

/// The `plan` report; its JSON form is the documented, stable output.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlanReport {
    /// Where each pending deployment goes.
    pub placements: Vec<PlacementOut>,
    /// Droplets to create.
    pub new_droplets: Vec<NewDropletOut>,
    /// Droplets hosting at least one deployment after the plan.
    pub droplets: usize,
    /// Monthly cost of those droplets.
    #[serde(rename = "monthlyCostUSD")]
    pub monthly_cost_usd: f64,
    /// Requested / allocatable of the dominant resource over the droplets used (0..1).
    pub utilization: f64,
    /// max over resources of ceil(total requests / largest allocatable).
    pub lower_bound_droplets: usize,
    /// lowerBoundDroplets / droplets.
    pub packing_efficiency: f64,
    /// Fractional cost lower bound (no packing can cost less).
    #[serde(rename = "costLowerBoundUSD")]
    pub cost_lower_bound_usd: f64,
    /// Deployments that cannot be placed.
    pub unschedulable: Vec<UnschedulableOut>,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// Builds the plan from inputs at `now` (used for heartbeat ages).
pub fn plan_inputs(inputs: &Inputs, now: jiff::Timestamp) -> Result<PlanReport, PlanError> {
    plan_inputs_with(inputs, now, scheduler::PackingObjective::default())
}

/// [`plan_inputs`] with an explicit packing objective for new droplets.
pub fn plan_inputs_with(
    inputs: &Inputs,
    now: jiff::Timestamp,
    objective: scheduler::PackingObjective,
) -> Result<PlanReport, PlanError> {
    let mut pools = Vec::new();
    for (path, p) in &inputs.pools {
        pools.push(pool_from_api(path, p)?);
    }
    let mut droplets = Vec::new();
    for (path, d) in &inputs.droplets {
        if let Some(d) = droplet_from_api(path, d, now)? {
            droplets.push(d);
        }
    }
    let templates: HashMap<String, &ResourceRequests> = inputs
        .templates
        .iter()
        .filter_map(|(_, t)| t.metadata.name.clone().map(|n| (n, &t.spec.resources)))
        .collect();
    let droplet_at: HashMap<(String, String), usize> = droplets
        .iter()
        .enumerate()
        .map(|(i, d)| ((d.namespace.clone(), d.name.clone()), i))
        .collect();

    let mut pending = Vec::new();
    let mut unschedulable = Vec::new();
    for (path, dep) in &inputs.deployments {
        let ns = namespace_of(&dep.metadata);
        let key = format!("{ns}/{}", dep.metadata.name.clone().unwrap_or_default());
        let template_name = &dep.spec.template_ref.name;
        let template = templates.get(template_name).copied();
        if template.is_none() && dep.spec.resources.is_none() {
            unschedulable.push(UnschedulableOut {
                deployment: key,
                reason: format!("template {template_name} is not in the inputs"),
            });
            continue;
        }
        let request = request_of(path, dep, template)?;
        let placement = &dep.spec.placement;
        let do_not_disrupt = dep
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DO_NOT_DISRUPT_ANNOTATION))
            .is_some_and(|v| v == "true");
        let pin = placement.droplet_name.clone().filter(|n| !n.is_empty());
        // Already placed deployments count on their droplet, they are not re-planned.
        let placed_on = dep
            .status
            .as_ref()
            .and_then(|s| s.placement.as_ref())
            .and_then(|p| p.droplet.clone());
        if let Some(on) = placed_on
            && let Some(&i) = droplet_at.get(&(ns.clone(), on))
        {
            droplets[i].deployments.push(PlacedDeployment {
                key,
                request,
                do_not_disrupt,
                pinned: pin.is_some(),
            });
            continue;
        }
        let mut selector = BTreeMap::new();
        if let Some(sel) = &placement.droplet_selector {
            if sel
                .match_expressions
                .as_ref()
                .is_some_and(|e| !e.is_empty())
            {
                return Err(PlanError::Field {
                    path: path.clone(),
                    kind: "MCPDeployment".into(),
                    name: key,
                    field: "spec.placement.dropletSelector.matchExpressions".into(),
                    message: "not supported yet; use matchLabels".into(),
                });
            }
            selector = sel.match_labels.clone().unwrap_or_default();
        }
        pending.push(PendingDeployment {
            key,
            request,
            pin,
            selector,
            regions: placement.regions.clone(),
            location: None,
            weights: placement.weights.as_ref().map(weights_from),
            pool: format!(
                "{ns}/{}",
                placement.pool.clone().unwrap_or_else(|| "default".into())
            ),
            auto_provision: placement.auto_provision,
            do_not_disrupt,
        });
    }
    // Droplets that report no allocation carry the requests of the deployments placed on them.
    for d in &mut droplets {
        if d.allocated.is_zero() {
            d.allocated = d
                .deployments
                .iter()
                .fold(Resources::ZERO, |a, p| a.plus(p.request));
        }
    }
    // A namespace without any DropletPool uses the operator's default pool settings; in a
    // namespace that has pools, naming a missing one leaves the deployment unschedulable.
    let namespaces_with_pools: std::collections::HashSet<String> = pools
        .iter()
        .map(|p| scheduler::snapshot::split_key(&p.name).0.to_string())
        .collect();
    for dep in &pending {
        let (ns, _) = scheduler::snapshot::split_key(&dep.pool);
        if !namespaces_with_pools.contains(ns) && !pools.iter().any(|p| p.name == dep.pool) {
            pools.push(Pool::new(
                dep.pool.clone(),
                DEFAULT_POOL_REGIONS.iter().map(|r| r.to_string()).collect(),
                catalog::default_pool_sizes()
                    .into_iter()
                    .map(String::from)
                    .collect(),
            ));
        }
    }
    let snapshot = Snapshot::new(droplets, pools, catalog_sizes(), catalog_regions())?;
    let plan = scheduler::plan_batch_for(&snapshot, &[], &pending, objective);
    Ok(report(&snapshot, &pending, &plan, unschedulable))
}

fn report(
    snapshot: &Snapshot,
    pending: &[PendingDeployment],
    plan: &BatchPlan,
    mut unschedulable: Vec<UnschedulableOut>,
) -> PlanReport {
    let by_key: HashMap<&str, &PendingDeployment> =
        pending.iter().map(|d| (d.key.as_str(), d)).collect();
    let breakdown = |f: &scheduler::FactorScores| BreakdownOut {
        resources: round2(f.resources),
        load: round2(f.load),
        latency: round2(f.latency),
        cost: round2(f.cost),
        health: round2(f.health),
    };
    let mut placements: Vec<PlacementOut> = plan
        .placements
        .iter()
        .map(|p| match &p.target {
            Target::Existing(pl) => PlacementOut {
                deployment: p.deployment.clone(),
                droplet: pl.droplet.clone(),
                new: false,
                score: round2(pl.score),
                region: snapshot.droplets()[pl.droplet_index].region.clone(),
                breakdown: breakdown(&pl.breakdown),
                reason: pl.reason.clone(),
            },
            Target::New(i) => {
                let nd = &plan.new_droplets[*i];
                let (score, factors) = match by_key.get(p.deployment.as_str()) {
                    Some(dep) => scheduler::score_new_droplet(
                        snapshot,
                        dep,
                        &nd.region,
                        &nd.allocatable,
                        &nd.used,
                        nd.monthly_usd,
                    ),
                    None => (0.0, scheduler::FactorScores::default()),
                };
                PlacementOut {
                    deployment: p.deployment.clone(),
                    droplet: nd.name.clone(),
                    new: true,
                    score: round2(score),
                    region: nd.region.clone(),
                    breakdown: breakdown(&factors),
                    reason: format!(
                        "no existing droplet fits; new {} in {} packed first-fit decreasing",
                        nd.size, nd.region
                    ),
                }
            }
        })
        .collect();
    placements.sort_by(|a, b| a.deployment.cmp(&b.deployment));
    unschedulable.extend(plan.unschedulable.iter().map(|u| UnschedulableOut {
        deployment: u.deployment.clone(),
        reason: u.reason.clone(),
    }));
    unschedulable.sort_by(|a, b| a.deployment.cmp(&b.deployment));
    let summary = scheduler::summarize(snapshot, plan);
    PlanReport {
        placements,
        new_droplets: plan
            .new_droplets
            .iter()
            .map(|nd| NewDropletOut {
                name: nd.name.clone(),
                pool: nd.pool.clone(),
                size: nd.size.clone(),
                region: nd.region.clone(),
                monthly_usd: round2(nd.monthly_usd),
                hourly_usd: round4(nd.hourly_usd),
                deployments: nd.deployments.clone(),
            })
            .collect(),
        droplets: summary.droplets_used,
        monthly_cost_usd: round2(summary.monthly_cost_usd),
        utilization: round4(summary.utilization),
        lower_bound_droplets: summary.lower_bound_droplets,
        packing_efficiency: round4(summary.packing_efficiency),
        cost_lower_bound_usd: round2(summary.cost_lower_bound_usd),
        unschedulable,
    }
}

fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Renders the report as tables for people.
pub fn render_table(r: &PlanReport) -> String {
    let mut rows = vec![vec![
        "DEPLOYMENT".to_string(),
        "DROPLET".into(),
        "NEW".into(),
        "REGION".into(),
        "SCORE".into(),
    ]];
    for p in &r.placements {
        rows.push(vec![
            p.deployment.clone(),
            p.droplet.clone(),
            if p.new { "yes" } else { "no" }.into(),
            p.region.clone(),
            format!("{:.1}", p.score),
        ]);
    }
    let mut out = table(&rows);
    if !r.new_droplets.is_empty() {
        let mut rows = vec![vec![
            "NEW DROPLET".to_string(),
            "POOL".into(),
            "SIZE".into(),
            "REGION".into(),
            "MONTHLY USD".into(),
            "DEPLOYMENTS".into(),
        ]];
        for d in &r.new_droplets {
            rows.push(vec![
                d.name.clone(),
                d.pool.clone(),
                d.size.clone(),
                d.region.clone(),
                format!("{:.2}", d.monthly_usd),
                d.deployments.len().to_string(),
            ]);
        }
        out.push('\n');
        out.push_str(&table(&rows));
    }
    if !r.unschedulable.is_empty() {
        let mut rows = vec![vec!["UNSCHEDULABLE".to_string(), "REASON".into()]];
        for u in &r.unschedulable {
            rows.push(vec![u.deployment.clone(), u.reason.clone()]);
        }
        out.push('\n');
        out.push_str(&table(&rows));
    }
    out.push_str(&format!(
        "\nDroplets used: {}   Lower bound: {}   Packing efficiency: {:.2}\nMonthly cost: {:.2} USD   Cost lower bound: {:.2} USD   Requested utilization: {:.1} %\n",
        r.droplets,
        r.lower_bound_droplets,
        r.packing_efficiency,
        r.monthly_cost_usd,
        r.cost_lower_bound_usd,
        r.utilization * 100.0
    ));
    out
}

/// Runs `plan`: reads the inputs, plans, prints to stdout.
pub fn run(args: PlanArgs) -> Result<(), PlanError> {
    let inputs = read_inputs(&args.files)?;
    let report = plan_inputs_with(
        &inputs,
        args.now.unwrap_or_else(jiff::Timestamp::now),
        args.packing.into(),
    )?;
    match args.output {
        OutputFormat::Table => print!("{}", render_table(&report)),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(())
}
