//! The operations docs stay true: every metric the Grafana dashboard and the suggested alerts
//! query is one the operator exports (docs/operations/), every exported metric is described in
//! docs/operations.md, and every condition or event reason the controllers write is in
//! docs/troubleshooting.md.

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

#[test]
fn every_exported_metric_is_described_in_operations_md() {
    let root = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{root}/docs/operations.md")).expect("read");
    let described = queried(&text);
    // Families, without the suffixes Prometheus adds to counters and histograms.
    let missing: Vec<String> = exported()
        .into_iter()
        .filter(|name| {
            !["_bucket", "_sum", "_count"]
                .iter()
                .any(|suffix| name.ends_with(suffix))
        })
        .filter(|name| {
            let family = name.strip_suffix("_total").unwrap_or(name);
            ![name.clone(), family.to_string(), format!("{family}_total")]
                .iter()
                .any(|n| described.contains(n))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "docs/operations.md does not describe: {missing:?}"
    );
}

/// CamelCase string literals in the controllers' sources (and the template checks, the image
/// check and the MCP probe, whose reasons the controllers copy into conditions).
fn reason_literals() -> BTreeSet<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let re = regex::Regex::new(r#""([A-Z][a-z]+(?:[A-Z][A-Za-z]*)*)""#).expect("regex");
    let mut files = vec![
        root.join("src/api/template_checks.rs"),
        root.join("src/api/template_warnings.rs"),
        root.join("src/probe/mod.rs"),
    ];
    let mut dirs = vec![root.join("src/controller"), root.join("src/image_check")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut found = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read source");
        // Unit tests build fixtures with made-up names; only the code counts.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for capture in re.captures_iter(code) {
            found.insert(capture[1].to_string());
        }
    }
    found
}

#[test]
fn every_reason_the_controllers_write_is_in_troubleshooting_md() {
    // Literals that are not reasons: condition statuses, event types, kinds, Secret types,
    // event actions, and names in Debug output.
    const NOT_REASONS: &[&str] = &[
        "Normal",
        "True",
        "False",
        "Unknown",
        "Secret",
        "ConfigMap",
        "Droplet",
        "DropletPool",
        "Opaque",
        "Bearer",
        "Registry",
        "Context",
        "AgentClients",
        "AnnotationIntentStore",
        "SecretCredentialStore",
        "CachedSecret",
        "Provision",
        "Validate",
        "Reconcile",
        "Remove",
        "PhaseChange",
    ];
    let root = env!("CARGO_MANIFEST_DIR");
    let docs = std::fs::read_to_string(format!("{root}/docs/troubleshooting.md")).expect("read");
    let literals = reason_literals();
    assert!(
        literals.contains("TemplateNotFound") && literals.contains("AgentReady"),
        "the scan found the controllers' reasons: {literals:?}"
    );
    let missing: Vec<&String> = literals
        .iter()
        .filter(|r| !NOT_REASONS.contains(&r.as_str()))
        .filter(|r| !docs.contains(&format!("`{r}`")) && !docs.contains(&format!("### {r}\n")))
        .collect();
    assert!(
        missing.is_empty(),
        "reasons written by the operator but not explained in docs/troubleshooting.md: {missing:?}"
    );
}
