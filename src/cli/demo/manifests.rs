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

fn namespace(doc: &Value) -> &str {
    doc.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default")
}

/// Whether a deployment reads a value from another object (a Secret or ConfigMap of its
/// namespace), so a copy in another namespace would miss it.
fn reads_other_objects(deployment: &Value) -> bool {
    deployment
        .pointer("/spec/env")
        .and_then(Value::as_array)
        .is_some_and(|env| env.iter().any(|e| e.get("valueFrom").is_some()))
}

/// Chooses what the demo applies from the examples' `documents`: namespaces first, droplets
/// that adopt an existing DigitalOcean droplet left out (the simulated cloud has none of
/// them), and exactly `deployments` MCPDeployments when given: the first ones, or all of them
/// plus copies when more are asked for (see [`copies`]).
pub fn choose(
    documents: Vec<Value>,
    deployments: Option<usize>,
) -> Result<DemoManifests, ManifestError> {
    let mut out = DemoManifests::default();
    let (namespaces, rest): (Vec<Value>, Vec<Value>) =
        documents.into_iter().partition(|d| kind(d) == "Namespace");
    let mut objects = namespaces;
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
        objects.push(doc);
    }
    let originals = objects.iter().filter(|d| is_deployment(d)).count();
    let wanted = deployments.unwrap_or(originals);
    if wanted > originals {
        let extra = copies(&objects, wanted - originals)?;
        scale_pools(&mut objects, &extra);
        objects.extend(extra);
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

/// `count` copies of the deployments among `objects`, numbered after them
/// (`<name>-0013`, ...), without a pin, a selector or annotations, which would crowd them onto
/// one droplet. They go to the namespaces that declare no Droplet, cycling through the
/// deployments that read no Secret or ConfigMap (those live in their own namespace), so they
/// never take the room of a deployment pinned or selected onto a declared droplet. Without
/// such a namespace, each copy stays in the namespace of the deployment it copies.
fn copies(objects: &[Value], count: usize) -> Result<Vec<Value>, ManifestError> {
    let prototypes: Vec<&Value> = objects.iter().filter(|d| is_deployment(d)).collect();
    if prototypes.is_empty() {
        return Err(ManifestError::NoDeployment);
    }
    let with_droplets: Vec<&str> = objects
        .iter()
        .filter(|d| kind(d) == "Droplet")
        .map(namespace)
        .collect();
    let mut targets: Vec<&str> = Vec::new();
    for p in &prototypes {
        let ns = namespace(p);
        if !with_droplets.contains(&ns) && !targets.contains(&ns) {
            targets.push(ns);
        }
    }
    let movable: Vec<&Value> = prototypes
        .iter()
        .copied()
        .filter(|p| !reads_other_objects(p))
        .collect();
    let moving = !targets.is_empty() && !movable.is_empty();
    let cycle = if moving { &movable } else { &prototypes };
    Ok((0..count)
        .map(|i| {
            let prototype = cycle[i % cycle.len()];
            let target = if moving {
                targets[i % targets.len()]
            } else {
                namespace(prototype)
            };
            copy_of(prototype, prototypes.len() + i + 1, target)
        })
        .collect())
}

/// A copy of a deployment named `<name>-<number, 4 digits>` in `namespace`, free to go
/// anywhere there.
fn copy_of(prototype: &Value, number: usize, namespace: &str) -> Value {
    let mut doc = prototype.clone();
    doc["metadata"]["name"] = json!(format!("{}-{number:04}", name(prototype)));
    doc["metadata"]["namespace"] = json!(namespace);
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

/// Grows the limits of the pools of every namespace that received copies by the factor its
/// number of deployments grew, so the copies still fit.
fn scale_pools(objects: &mut [Value], copies: &[Value]) {
    let count_in = |docs: &[Value], ns: &str| {
        docs.iter()
            .filter(|d| is_deployment(d) && namespace(d) == ns)
            .count()
    };
    let factors: Vec<(String, usize)> = {
        let mut namespaces: Vec<&str> = copies.iter().map(namespace).collect();
        namespaces.sort_unstable();
        namespaces.dedup();
        namespaces
            .into_iter()
            .map(|ns| {
                let before = count_in(objects, ns);
                let after = before + count_in(copies, ns);
                (ns.to_owned(), after.div_ceil(before.max(1)))
            })
            .collect()
    };
    for doc in objects.iter_mut().filter(|d| kind(d) == "DropletPool") {
        if let Some((_, factor)) = factors.iter().find(|(ns, _)| ns == namespace(doc)) {
            scale_pool_limits(doc, *factor);
        }
    }
}

/// Multiplies a pool's `maxDroplets` (capped at the schema's 10,000) and
/// `maxMonthlyCostUSD` by `factor`.
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
apiVersion: mcp.agentopia.io/v1alpha1
kind: DropletPool
metadata: {name: default, namespace: b}
spec: {limits: {maxDroplets: 2, maxMonthlyCostUSD: 40}}
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
metadata: {name: secret, namespace: a}
spec:
  templateRef: {name: time}
  env: [{name: TOKEN, valueFrom: {secretKeyRef: {name: t, key: token}}}]
---
apiVersion: mcp.agentopia.io/v1alpha1
kind: MCPDeployment
metadata: {name: free, namespace: b}
spec: {templateRef: {name: time}}
"#;

    fn docs() -> Vec<Value> {
        parse_documents(EXAMPLES).unwrap()
    }

    fn kinds(m: &DemoManifests) -> Vec<String> {
        m.objects.iter().map(|d| kind(d).to_owned()).collect()
    }

    fn find<'a>(m: &'a DemoManifests, key_: &str) -> &'a Value {
        m.objects
            .iter()
            .find(|d| key(d) == key_)
            .unwrap_or_else(|| panic!("no {key_}"))
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
                "DropletPool",
                "Droplet",
                "MCPDeployment",
                "MCPDeployment",
                "MCPDeployment"
            ]
        );
        assert_eq!(m.deployments, ["a/pinned", "a/secret", "b/free"]);
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
    fn copies_go_unpinned_to_the_namespace_without_droplets_and_its_pool_grows() {
        let m = choose(docs(), Some(7)).unwrap();
        // The deployment reading a Secret is not copied (the Secret is in its namespace).
        assert_eq!(
            m.deployments,
            [
                "a/pinned",
                "a/secret",
                "b/free",
                "b/pinned-0004",
                "b/free-0005",
                "b/pinned-0006",
                "b/free-0007"
            ]
        );
        let copy = find(&m, "b/pinned-0004");
        assert_eq!(copy["spec"]["templateRef"]["name"], "time");
        assert!(copy.pointer("/spec/placement/dropletName").is_none());
        assert!(copy.pointer("/metadata/annotations").is_none());
        assert_eq!(
            find(&m, "a/pinned")["spec"]["placement"]["dropletName"],
            "d1"
        );
        // b went from 1 deployment to 5: its pool's limits grow five times; a's stay.
        let pool_b = find(&m, "b/default");
        assert_eq!(pool_b["spec"]["limits"]["maxDroplets"], 10);
        assert_eq!(pool_b["spec"]["limits"]["maxMonthlyCostUSD"], 200.0);
        assert_eq!(find(&m, "a/default")["spec"]["limits"]["maxDroplets"], 3);
    }

    #[test]
    fn without_a_namespace_free_of_droplets_copies_stay_home_with_distinct_names() {
        let docs: Vec<Value> = docs().into_iter().filter(|d| namespace(d) != "b").collect();
        let m = choose(docs, Some(5)).unwrap();
        assert_eq!(
            m.deployments,
            [
                "a/pinned",
                "a/secret",
                "a/pinned-0003",
                "a/secret-0004",
                "a/pinned-0005"
            ]
        );
        assert_eq!(find(&m, "a/default")["spec"]["limits"]["maxDroplets"], 9);
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
        // Copies go to team-b, so d1 keeps its room for team-a's pinned and selected ones.
        let more = choose(read_documents(&files).unwrap(), Some(40)).unwrap();
        assert_eq!(more.deployments.len(), 40);
        assert!(
            more.deployments[12..]
                .iter()
                .all(|d| d.starts_with("team-b/"))
        );
    }
}
