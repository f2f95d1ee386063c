//! `mcp-droplet-operator plan -f PATH... [-o table|json]`: an offline placement plan.
//!
//! Reads MCPTemplates, DropletPools, Droplets and MCPDeployments from YAML files or folders
//! (multi-document; other kinds are skipped), converts them into the scheduler's model through
//! `crate::fleet` (the conversion the controllers share), packs the pending deployments and
//! prints where each goes, which droplets would be created, what the fleet costs and how tight
//! the packing is. See docs/scheduler.md for the JSON fields.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api;
use crate::api::deployment::MCPDeployment;
use crate::api::droplet::Droplet as DropletObject;
use crate::api::pool::DropletPool;
use crate::api::template::MCPTemplate;
use crate::api::template_warnings::template_warnings;
use crate::cli::text_table::render;
use crate::fleet::deployment::round2;
use crate::fleet::{self, FleetError, FleetObjects, FleetView};
use scheduler::{BatchPlan, DropletPhase, PendingDeployment, Snapshot, Target};

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
    pub droplets: Vec<(PathBuf, DropletObject)>,
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
    let objects = FleetObjects {
        templates: inputs.templates.iter().map(|(_, t)| t).collect(),
        pools: inputs.pools.iter().map(|(_, p)| p).collect(),
        droplets: inputs.droplets.iter().map(|(_, d)| d).collect(),
        deployments: inputs.deployments.iter().map(|(_, d)| d).collect(),
    };
    let mut view = FleetView::build(&objects, now).map_err(|e| plan_error(inputs, e))?;
    // The plan is a what-if over manifests: a droplet without status is planned as a
    // Ready, empty droplet of its size (decision 0505). Only `plan` assumes this.
    for &i in &view.unobserved {
        let d = &mut view.droplets[i];
        d.phase = DropletPhase::Ready;
        d.healthy = true;
        d.heartbeat_age = Some(Duration::ZERO);
    }
    let snapshot = view.snapshot().map_err(|e| plan_error(inputs, e))?;
    let plan = scheduler::plan_batch_for(&snapshot, &[], &view.pending, objective);
    let unschedulable = view
        .not_planned
        .into_iter()
        .map(|n| UnschedulableOut {
            deployment: n.deployment,
            reason: n.reason,
        })
        .collect();
    Ok(report(&snapshot, &view.pending, &plan, unschedulable))
}

/// A conversion error with the file the object came from.
fn plan_error(inputs: &Inputs, error: FleetError) -> PlanError {
    match error {
        FleetError::Field {
            kind,
            name,
            field,
            message,
        } => {
            let named = |meta: &kube::api::ObjectMeta| fleet::key_of(meta) == name;
            let path = match kind {
                "DropletPool" => inputs
                    .pools
                    .iter()
                    .find(|(_, o)| named(&o.metadata))
                    .map(|(p, _)| p),
                "Droplet" => inputs
                    .droplets
                    .iter()
                    .find(|(_, o)| named(&o.metadata))
                    .map(|(p, _)| p),
                _ => inputs
                    .deployments
                    .iter()
                    .find(|(_, o)| named(&o.metadata))
                    .map(|(p, _)| p),
            };
            PlanError::Field {
                path: path.cloned().unwrap_or_default(),
                kind: kind.to_string(),
                name,
                field,
                message,
            }
        }
        FleetError::Scheduler(e) => PlanError::Scheduler(e),
    }
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
    let mut out = render(&rows);
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
        out.push_str(&render(&rows));
    }
    if !r.unschedulable.is_empty() {
        let mut rows = vec![vec!["UNSCHEDULABLE".to_string(), "REASON".into()]];
        for u in &r.unschedulable {
            rows.push(vec![u.deployment.clone(), u.reason.clone()]);
        }
        out.push('\n');
        out.push_str(&render(&rows));
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
    for (path, template) in &inputs.templates {
        for warning in template_warnings(&template.spec) {
            eprintln!(
                "warning: {}: MCPTemplate {}: {}",
                path.display(),
                template.metadata.name.as_deref().unwrap_or_default(),
                warning.message
            );
        }
    }
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
