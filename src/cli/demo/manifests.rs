//! What the demo applies: the manifests of `examples/` (the top-level files, in file order, not
//! `invalid/`, `catalog/` or `gitops/`), namespaces first, with the number of deployments the
//! user asked for. Reading the files is the only I/O here; choosing and generating is pure.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};
use thiserror::Error;

/// Failures reading the examples.
#[derive(Debug, Error)]
pub enum ManifestError {
    /// The folder or a file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// File or folder.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A document is not YAML.
    #[error("{path}: {source}")]
    Yaml {
        /// File.
        path: String,
        /// Cause.
        source: serde_yaml_ng::Error,
    },
    /// The examples hold no MCPDeployment to copy from.
    #[error("the examples hold no MCPDeployment, so no deployment can be generated")]
    NoDeployment,
}

/// An object the demo does not apply, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// `Kind namespace/name`.
    pub object: String,
    /// Why it is left out.
    pub reason: String,
}

/// The objects to apply, in order, and the deployments to wait for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DemoManifests {
    /// Objects to server-side apply, namespaces first, then in file order.
    pub objects: Vec<Value>,
    /// `namespace/name` of every MCPDeployment among them.
    pub deployments: Vec<String>,
    /// What was left out.
    pub skipped: Vec<Skipped>,
}

/// The top-level `*.yaml`/`*.yml` files of `dir`, sorted by name.
pub fn example_files(dir: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let read_error = |source| ManifestError::Read {
        path: dir.display().to_string(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let path = entry.map_err(read_error)?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Every non-empty document of `files`, in order.
pub fn read_documents(files: &[PathBuf]) -> Result<Vec<Value>, ManifestError> {
    let mut documents = Vec::new();
    for file in files {
        let path = file.display().to_string();
        let text = std::fs::read_to_string(file).map_err(|source| ManifestError::Read {
            path: path.clone(),
            source,
        })?;
        documents.extend(
            parse_documents(&text).map_err(|source| ManifestError::Yaml {
                path: path.clone(),
                source,
            })?,
        );
    }
    Ok(documents)
}

/// The non-empty YAML documents of `text`.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, serde_yaml_ng::Error> {
    let mut out = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value = Value::deserialize(document)?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or_default()
}

fn name(doc: &Value) -> &str {
    doc.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn key(doc: &Value) -> String {
    match doc.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) => format!("{ns}/{}", name(doc)),
        None => name(doc).to_owned(),
    }
}

fn is_deployment(doc: &Value) -> bool {
    kind(doc) == "MCPDeployment"
}

/// Chooses what the demo applies from the examples' `documents`: namespaces first, droplets
/// that adopt an existing DigitalOcean droplet left out (the simulated cloud has none of
/// them), and exactly `deployments` MCPDeployments when given: the first ones, or all of them
/// plus copies cycling through them (unpinned, with distinct names) when more are asked for.
/// With copies, every pool's limits grow by the same factor so they still fit.
pub fn choose(
    documents: Vec<Value>,
    deployments: Option<usize>,
) -> Result<DemoManifests, ManifestError> {
    let mut out = DemoManifests::default();
    let (namespaces, rest): (Vec<Value>, Vec<Value>) =
        documents.into_iter().partition(|d| kind(d) == "Namespace");
    let mut objects = namespaces;
    let mut prototypes = Vec::new();
    for doc in rest {
        if kind(&doc) == "Droplet"
            && let Some(id) = doc.pointer("/spec/adopt/dropletID")
        {
            out.skipped.push(Skipped {
                object: format!("Droplet {}", key(&doc)),
                reason: format!(
                    "it adopts the existing DigitalOcean droplet {id}, which the simulated cloud does not have"
                ),
            });
            continue;
        }
        if is_deployment(&doc) {
            prototypes.push(doc.clone());
        }
        objects.push(doc);
    }
    let wanted = deployments.unwrap_or(prototypes.len());
    if wanted > prototypes.len() {
        if prototypes.is_empty() {
            return Err(ManifestError::NoDeployment);
        }
        let factor = wanted.div_ceil(prototypes.len());
        for doc in objects.iter_mut().filter(|d| kind(d) == "DropletPool") {
            scale_pool_limits(doc, factor);
        }
        let copies = (prototypes.len()..wanted).map(|i| {
            let round = i / prototypes.len() + 1;
            copy_of(&prototypes[i % prototypes.len()], round)
        });
        objects.extend(copies.collect::<Vec<_>>());
    } else {
        let mut kept = 0;
        objects.retain(|d| {
            if !is_deployment(d) {
                return true;
            }
            kept += 1;
            kept <= wanted
        });
    }
    out.deployments = objects
        .iter()
        .filter(|d| is_deployment(d))
        .map(key)
        .collect();
    out.objects = objects;
    Ok(out)
}

/// A copy of a deployment named `<name>-<round, 3 digits>`, free to go anywhere in its
/// namespace (a pin or a selector would crowd the copies onto one droplet).
fn copy_of(prototype: &Value, round: usize) -> Value {
    let mut doc = prototype.clone();
    doc["metadata"]["name"] = json!(format!("{}-{round:03}", name(prototype)));
    if let Some(metadata) = doc["metadata"].as_object_mut() {
        metadata.remove("annotations");
    }
    if let Some(placement) = doc
        .pointer_mut("/spec/placement")
        .and_then(Value::as_object_mut)
    {
        placement.remove("dropletName");
        placement.remove("dropletSelector");
    }
    doc
}

fn scale_pool_limits(pool: &mut Value, factor: usize) {
    let Some(limits) = pool
        .pointer_mut("/spec/limits")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if let Some(max) = limits.get("maxDroplets").and_then(Value::as_u64) {
        let scaled = max.saturating_mul(factor as u64).min(10_000);
        limits.insert("maxDroplets".into(), json!(scaled));
    }
    if let Some(max) = limits.get("maxMonthlyCostUSD").and_then(Value::as_f64) {
        limits.insert("maxMonthlyCostUSD".into(), json!(max * factor as f64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLES: &str = r#"
apiVersion: mcp.agentopia.io/v1alpha1
kind: MCPTemplate
metadata: {name: time}
spec: {image: mcp/time:latest, transport: stdio}
---
apiVersion: mcp.agentopia.io/v1alpha1
kind: DropletPool
metadata: {name: default, namespace: a}
spec: {limits: {maxDroplets: 3, maxMonthlyCostUSD: 50}}
---
apiVersion: v1
kind: Namespace
metadata: {name: a}
---
apiVersion: mcp.agentopia.io/v1alpha1
kind: Droplet
metadata: {name: d1, namespace: a}
spec: {region: nyc3, size: s-1vcpu-2gb}
---
apiVersion: mcp.agentopia.io/v1alpha1
kind: Droplet
metadata: {name: legacy, namespace: a}
spec: {adopt: {dropletID: 412345678}, agent: {kind: dtma}}
---
apiVersion: mcp.agentopia.io/v1alpha1
kind: MCPDeployment
metadata: {name: pinned, namespace: a, annotations: {mcp.agentopia.io/do-not-disrupt: "true"}}
spec: {templateRef: {name: time}, placement: {dropletName: d1}}
---
apiVersion: mcp.agentopia.io/v1alpha1
kind: MCPDeployment
metadata: {name: free, namespace: a}
spec: {templateRef: {name: time}}
"#;

    fn docs() -> Vec<Value> {
        parse_documents(EXAMPLES).unwrap()
    }

    fn kinds(m: &DemoManifests) -> Vec<String> {
        m.objects.iter().map(|d| kind(d).to_owned()).collect()
    }

    #[test]
    fn namespaces_come_first_and_adopted_droplets_are_skipped_with_the_reason() {
        let m = choose(docs(), None).unwrap();
        assert_eq!(
            kinds(&m),
            [
                "Namespace",
                "MCPTemplate",
                "DropletPool",
                "Droplet",
                "MCPDeployment",
                "MCPDeployment"
            ]
        );
        assert_eq!(m.deployments, ["a/pinned", "a/free"]);
        assert_eq!(m.skipped.len(), 1);
        assert_eq!(m.skipped[0].object, "Droplet a/legacy");
        assert!(m.skipped[0].reason.contains("412345678"), "{:?}", m.skipped);
    }

    #[test]
    fn fewer_deployments_keep_the_first_ones() {
        let m = choose(docs(), Some(1)).unwrap();
        assert_eq!(m.deployments, ["a/pinned"]);
        assert_eq!(
            kinds(&m).iter().filter(|k| *k == "MCPDeployment").count(),
            1
        );
    }

    #[test]
    fn more_deployments_are_unpinned_copies_with_distinct_names_and_pools_grow() {
        let m = choose(docs(), Some(5)).unwrap();
        assert_eq!(
            m.deployments,
            [
                "a/pinned",
                "a/free",
                "a/pinned-002",
                "a/free-002",
                "a/pinned-003"
            ]
        );
        let copy = m.objects.iter().find(|d| name(d) == "pinned-002").unwrap();
        assert_eq!(copy["spec"]["templateRef"]["name"], "time");
        assert!(copy.pointer("/spec/placement/dropletName").is_none());
        assert!(copy.pointer("/metadata/annotations").is_none());
        let original = m.objects.iter().find(|d| name(d) == "pinned").unwrap();
        assert_eq!(original["spec"]["placement"]["dropletName"], "d1");
        let pool = m.objects.iter().find(|d| kind(d) == "DropletPool").unwrap();
        // 5 deployments from 2: three rounds.
        assert_eq!(pool["spec"]["limits"]["maxDroplets"], 9);
        assert_eq!(pool["spec"]["limits"]["maxMonthlyCostUSD"], 150.0);
    }

    #[test]
    fn copies_need_a_deployment_to_copy() {
        let only_namespace = parse_documents("kind: Namespace\nmetadata: {name: a}\n").unwrap();
        assert!(matches!(
            choose(only_namespace, Some(3)),
            Err(ManifestError::NoDeployment)
        ));
        assert!(
            choose(parse_documents("").unwrap(), None)
                .unwrap()
                .objects
                .is_empty()
        );
    }

    #[test]
    fn the_shipped_examples_give_a_dozen_deployments_some_in_a_namespace_without_droplets() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let files = example_files(&dir).unwrap();
        assert!(files.iter().all(|f| f.parent() == Some(dir.as_path())));
        let m = choose(read_documents(&files).unwrap(), None).unwrap();
        assert_eq!(m.deployments.len(), 12, "{:?}", m.deployments);
        let templates = m
            .objects
            .iter()
            .filter(|d| kind(d) == "MCPTemplate")
            .count();
        assert!(templates >= 3);
        assert!(m.objects.iter().any(|d| kind(d) == "DropletPool"));
        // team-b declares no Droplet: its deployments need new droplets.
        assert!(m.deployments.iter().any(|d| d.starts_with("team-b/")));
        assert!(
            !m.objects
                .iter()
                .any(|d| kind(d) == "Droplet" && key(d).starts_with("team-b/"))
        );
    }
}
