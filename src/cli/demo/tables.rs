//! The two tables the demo ends with (pure): the deployments (where each runs, its score,
//! endpoint, tools and time to Ready) and the fleet (droplets, sizes, utilization, monthly
//! cost and a total), and the reasons of the deployments that are not Ready.

use crate::api::deployment::MCPDeployment;
use crate::api::droplet::Droplet;
use crate::api::quantity::{parse_bytes, parse_cpu_millis};
use crate::api::shared_fields::ResourceList;
use crate::catalog;
use crate::cli::demo::progress::{RowState, failure_reason, is_ready, progress_row};
use crate::cli::text_table::render;
use crate::fleet::key_of as key;

fn dash_if_empty(text: String) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text
    }
}

fn sorted<K, F>(items: &[K], meta: F) -> Vec<&K>
where
    F: Fn(&K) -> &kube::api::ObjectMeta,
{
    let mut out: Vec<&K> = items.iter().collect();
    out.sort_by_key(|k| key(meta(k)));
    out
}

/// The deployments table: one row per deployment, sorted by `namespace/name`.
pub fn deployments_table(deployments: &[MCPDeployment]) -> String {
    let mut rows = vec![
        [
            "DEPLOYMENT",
            "STATUS",
            "DROPLET",
            "SCORE",
            "ENDPOINT",
            "TOOLS",
            "TIME TO READY",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for d in sorted(deployments, |d| &d.metadata) {
        let status = d.status.clone().unwrap_or_default();
        let placement = status.placement.clone().unwrap_or_default();
        let state = match progress_row(d).state {
            RowState::Ready => "Ready".to_owned(),
            RowState::Stalled => "Stalled".to_owned(),
            RowState::Failed => "Failed".to_owned(),
            RowState::Waiting | RowState::Working => progress_row(d).step,
        };
        rows.push(vec![
            key(&d.metadata),
            state,
            dash_if_empty(placement.droplet.unwrap_or_default()),
            placement
                .score
                .map_or_else(|| "-".to_owned(), |s| format!("{s:.1}")),
            dash_if_empty(status.endpoint.unwrap_or_default()),
            status
                .mcp
                .filter(|_| is_ready(d))
                .map_or_else(|| "-".to_owned(), |m| m.tools.to_string()),
            status
                .time_to_ready_seconds
                .map_or_else(|| "-".to_owned(), |s| format!("{s:.1} s")),
        ]);
    }
    let ready = deployments.iter().filter(|d| is_ready(d)).count();
    let mut out = render(&rows);
    out.push_str(&format!(
        "{ready} of {} deployments Ready\n",
        deployments.len()
    ));
    out
}

/// Requested share of a resource as a whole percentage, when both quantities parse.
fn percent(used: Option<&str>, total: Option<&str>, parse: fn(&str) -> Option<u64>) -> Option<u64> {
    let total = parse(total?)?;
    let used = used.map_or(Some(0), parse)?;
    (total > 0).then(|| (used.saturating_mul(100) + total / 2) / total)
}

/// `mem 45 % cpu 60 %` from what is allocated of what is allocatable, else the droplet's own
/// summary.
fn utilization(droplet: &Droplet) -> String {
    let Some(status) = &droplet.status else {
        return "-".to_owned();
    };
    let (allocated, allocatable): (&ResourceList, &ResourceList) =
        (&status.allocated, &status.allocatable);
    let memory = percent(
        allocated.memory.as_deref(),
        allocatable.memory.as_deref(),
        |q| parse_bytes(q).ok(),
    );
    let cpu = percent(allocated.cpu.as_deref(), allocatable.cpu.as_deref(), |q| {
        parse_cpu_millis(q).ok()
    });
    match (memory, cpu) {
        (Some(m), Some(c)) => format!("mem {m} % cpu {c} %"),
        _ => dash_if_empty(status.utilization_summary.clone().unwrap_or_default()),
    }
}

/// Monthly price from the droplet's status, else from the catalogue by its size.
fn monthly_usd(droplet: &Droplet) -> Option<f64> {
    let status = droplet.status.as_ref();
    status
        .map(|s| s.price.monthly_usd)
        .filter(|p| *p > 0.0)
        .or_else(|| {
            let size = status
                .and_then(|s| s.size.clone())
                .or_else(|| droplet.spec.size.clone())?;
            catalog::size(&size).map(|s| s.price_monthly)
        })
}

/// The fleet table: one row per droplet, sorted by `namespace/name`, and a total.
pub fn fleet_table(droplets: &[Droplet]) -> String {
    let mut rows = vec![
        [
            "DROPLET",
            "PHASE",
            "SIZE",
            "REGION",
            "DEPLOYMENTS",
            "UTILIZATION",
            "MONTHLY USD",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    let mut total = 0.0;
    for d in sorted(droplets, |d| &d.metadata) {
        let status = d.status.clone().unwrap_or_default();
        let monthly = monthly_usd(d);
        total += monthly.unwrap_or(0.0);
        rows.push(vec![
            key(&d.metadata),
            format!("{:?}", status.phase),
            dash_if_empty(
                status
                    .size
                    .or_else(|| d.spec.size.clone())
                    .unwrap_or_default(),
            ),
            dash_if_empty(
                status
                    .region
                    .or_else(|| d.spec.region.clone())
                    .unwrap_or_default(),
            ),
            status.deployments.len().to_string(),
            utilization(d),
            monthly.map_or_else(|| "-".to_owned(), |m| format!("{m:.2}")),
        ]);
    }
    rows.push(vec![
        match droplets.len() {
            1 => "TOTAL: 1 droplet".to_owned(),
            n => format!("TOTAL: {n} droplets"),
        },
        String::new(),
        String::new(),
        String::new(),
        droplets
            .iter()
            .map(|d| d.status.as_ref().map_or(0, |s| s.deployments.len()))
            .sum::<usize>()
            .to_string(),
        String::new(),
        format!("{total:.2}"),
    ]);
    render(&rows)
}

/// `namespace/name: reason` of every deployment that is not Ready, sorted.
pub fn failures(deployments: &[MCPDeployment]) -> Vec<String> {
    sorted(deployments, |d| &d.metadata)
        .into_iter()
        .filter(|d| !is_ready(d))
        .map(|d| format!("{}: {}", key(&d.metadata), failure_reason(d)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::{READY, STALLED, condition};
    use crate::api::deployment::{DeploymentPhase, McpStatus};

    fn at() -> jiff::Timestamp {
        "2026-12-02T12:00:00Z".parse().unwrap()
    }

    fn ready(name: &str, droplet: &str, score: f64, tools: u32, seconds: f64) -> MCPDeployment {
        let mut d = MCPDeployment::test(name)
            .phase(DeploymentPhase::Ready)
            .placed_on(droplet, "nyc3")
            .condition(condition(READY, true, "Verified", "", Some(1), at()))
            .build();
        let status = d.status.as_mut().unwrap();
        if let Some(p) = status.placement.as_mut() {
            p.score = Some(score);
        }
        status.endpoint = Some(format!("https://127.10.0.1:9443/servers/{name}/mcp"));
        status.mcp = Some(McpStatus {
            tools,
            ..McpStatus::default()
        });
        status.time_to_ready_seconds = Some(seconds);
        d
    }

    fn stalled(name: &str) -> MCPDeployment {
        MCPDeployment::test(name)
            .phase(DeploymentPhase::Validating)
            .condition(condition(
                STALLED,
                true,
                "TemplateMissing",
                "MCPTemplate nope not found",
                Some(1),
                at(),
            ))
            .build()
    }

    #[test]
    fn deployments_table_has_a_row_per_deployment_sorted_with_a_count() {
        let table = deployments_table(&[
            ready("time", "d1", 81.44, 2, 41.25),
            stalled("broken"),
            ready("fetch", "default-new-1", 59.6, 1, 95.0),
        ]);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("DEPLOYMENT"), "{table}");
        for header in ["DROPLET", "SCORE", "ENDPOINT", "TOOLS", "TIME TO READY"] {
            assert!(lines[0].contains(header), "{table}");
        }
        assert!(lines[1].starts_with("team-a/broken  Stalled"), "{table}");
        assert!(lines[2].starts_with("team-a/fetch"), "{table}");
        let time = lines[3];
        assert!(time.starts_with("team-a/time"), "{table}");
        for cell in [
            "Ready",
            "d1",
            "81.4",
            "https://127.10.0.1:9443/servers/time/mcp",
            " 2 ",
            "41.2 s",
        ] {
            assert!(time.contains(cell), "{cell:?} missing in {time:?}");
        }
        assert_eq!(lines[4], "2 of 3 deployments Ready");
    }

    #[test]
    fn fleet_table_shows_size_utilization_cost_and_a_total() {
        let mut d1 = Droplet::test("d1")
            .size("s-2vcpu-4gb")
            .region("nyc3")
            .ready()
            .allocatable("3584Mi", "1750m")
            .allocated("1792Mi", "875m")
            .deployments(&["team-a/time", "team-a/github"])
            .build();
        d1.status.as_mut().unwrap().price.monthly_usd = 24.0;
        // No price in status yet: the catalogue's, by size.
        let new = Droplet::test("default-new-1")
            .size("s-1vcpu-2gb")
            .region("sfo3")
            .ready()
            .build();
        let table = fleet_table(&[new, d1]);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("DROPLET"), "{table}");
        for header in ["SIZE", "REGION", "UTILIZATION", "MONTHLY USD"] {
            assert!(lines[0].contains(header), "{table}");
        }
        assert!(lines[1].starts_with("team-a/d1 "), "{table}");
        for cell in ["Ready", "s-2vcpu-4gb", "nyc3", "mem 50 % cpu 50 %", "24.00"] {
            assert!(lines[1].contains(cell), "{cell:?} missing in {table}");
        }
        assert!(lines[2].contains("mem 0 % cpu 0 %"), "{table}");
        assert!(lines[2].contains("12.00"), "{table}");
        assert!(lines[3].starts_with("TOTAL: 2 droplets"), "{table}");
        assert!(lines[3].ends_with("36.00"), "{table}");
    }

    #[test]
    fn an_unobserved_droplet_still_gets_a_row() {
        let table = fleet_table(&[Droplet::test("d9").size("s-1vcpu-2gb").build()]);
        assert!(table.lines().nth(1).unwrap().contains("Pending"), "{table}");
        assert!(table.contains("12.00"), "{table}");
    }

    #[test]
    fn failures_name_each_deployment_that_is_not_ready_with_its_reason() {
        let waiting = MCPDeployment::test("new").build();
        let failures = failures(&[
            ready("time", "d1", 80.0, 2, 30.0),
            stalled("broken"),
            waiting,
        ]);
        assert_eq!(
            failures,
            [
                "team-a/broken: Stalled: TemplateMissing: MCPTemplate nope not found",
                "team-a/new: no status: the operator never acted on it",
            ]
        );
    }
}
