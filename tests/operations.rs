//! The operations docs stay true: every metric the Grafana dashboard and the suggested alerts
//! query is one the operator exports (docs/operations/).

use std::collections::BTreeSet;

use mcp_droplet_operator::telemetry::Metrics;

/// Metric names (families) the operator exports, with the suffixes Prometheus queries use.
fn exported() -> BTreeSet<String> {
    let metrics = Metrics::new();
    // Touch every labelled family so it appears in the output.
    metrics.reconciled("x", 0.1);
    metrics.reconcile_failed("x", "y");
    metrics.status_written("x");
    metrics.agent_call("x", 0.1);
    metrics
        .time_to_ready
        .get_or_create(&mcp_droplet_operator::telemetry::metrics::ReadyLabels {
            provisioned: "true".into(),
        })
        .observe(1.0);
    let phase = mcp_droplet_operator::telemetry::metrics::PhaseLabels {
        phase: "Ready".into(),
    };
    metrics.deployments.get_or_create(&phase).set(1);
    metrics.droplets.get_or_create(&phase).set(1);
    let text = metrics.encode().expect("encodes");
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            match kind {
                "counter" => {
                    names.insert(format!("{name}_total"));
                    names.insert(name.to_string());
                }
                "histogram" => {
                    for suffix in ["", "_bucket", "_sum", "_count"] {
                        names.insert(format!("{name}{suffix}"));
                    }
                }
                _ => {
                    names.insert(name.to_string());
                }
            }
        }
    }
    // The DigitalOcean client's counters appear once used; they are registered all the same.
    names.insert("mcp_operator_digitalocean_requests_total".into());
    names.insert("mcp_operator_digitalocean_retries_total".into());
    names
}

fn queried(text: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"mcp_operator_[a-z_]+").expect("regex");
    re.find_iter(text).map(|m| m.as_str().to_string()).collect()
}

#[test]
fn the_dashboard_and_alerts_query_only_exported_metrics() {
    let exported = exported();
    let root = env!("CARGO_MANIFEST_DIR");
    for file in [
        "docs/operations/grafana-dashboard.json",
        "docs/operations/alerts.yaml",
        "docs/operations.md",
    ] {
        let text = std::fs::read_to_string(format!("{root}/{file}")).expect("read");
        let used = queried(&text);
        assert!(!used.is_empty(), "{file} queries no metric");
        let unknown: Vec<_> = used.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{file} uses metrics the operator does not export: {unknown:?}; exported: {exported:?}"
        );
    }
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{root}/docs/operations/grafana-dashboard.json"))
            .expect("read"),
    )
    .expect("the dashboard is JSON");
    assert!(
        dashboard["panels"]
            .as_array()
            .is_some_and(|p| p.len() >= 10)
    );
    let alerts: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(format!("{root}/docs/operations/alerts.yaml")).expect("read"),
    )
    .expect("the alerts are YAML");
    assert_eq!(alerts["kind"].as_str(), Some("PrometheusRule"));
}
