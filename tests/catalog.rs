//! The catalogue in examples/catalog/: every template is valid against the CRD schema and its CEL
//! rules, deserializes into the typed resource, keeps the catalogue's own rules (unique names, no
//! default on a secret, a source link, short strings) and is stored by an API server (kube-sim)
//! through server-side apply, as `kubectl apply --server-side -f examples/catalog/` would.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, ValidationDirective};
use kube::{Client, ResourceExt};
use mcp_droplet_operator::api::template::{MCPTemplate, Transport};
use mcp_droplet_operator::api::{self, validation::validate_manifest};
use serde::Deserialize;
use serde_json::Value;

const MANAGER: &str = "mcp-catalog-test";

/// The servers issue 15 names; the catalogue may hold more.
const REQUIRED: [&str; 16] = [
    "github",
    "filesystem",
    "fetch",
    "time",
    "memory",
    "git",
    "everything",
    "postgres",
    "slack",
    "notion",
    "brave-search",
    "playwright",
    "grafana",
    "redis",
    "sentry",
    "kubernetes",
];

fn catalog_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/catalog")
}

fn catalog_files() -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(catalog_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

/// Every document of the catalogue with the file it came from.
fn documents() -> Vec<(PathBuf, Value)> {
    let mut out = Vec::new();
    for file in catalog_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: not YAML: {e}", file.display()));
            if !value.is_null() {
                out.push((file.clone(), value));
            }
        }
    }
    out
}

fn templates() -> Vec<(PathBuf, MCPTemplate)> {
    documents()
        .into_iter()
        .map(|(file, doc)| {
            let t: MCPTemplate = serde_json::from_value(doc)
                .unwrap_or_else(|e| panic!("{}: not an MCPTemplate: {e}", file.display()));
            (file, t)
        })
        .collect()
}

#[test]
fn every_document_is_a_valid_mcptemplate() {
    let docs = documents();
    assert!(docs.len() >= 15, "only {} templates", docs.len());
    for (file, doc) in &docs {
        assert_eq!(doc["kind"], "MCPTemplate", "{}", file.display());
        match validate_manifest(doc, None) {
            Ok(true) => {}
            Ok(false) => panic!("{}: not of the operator's API group", file.display()),
            Err(errors) => panic!("{} is invalid: {errors:?}", file.display()),
        }
    }
}

#[test]
fn names_are_unique_and_match_the_file_name() {
    let mut names = BTreeSet::new();
    for (file, t) in templates() {
        let name = t.name_any();
        assert!(names.insert(name.clone()), "{name} is defined twice");
        assert_eq!(
            file.file_stem().and_then(|s| s.to_str()),
            Some(name.as_str()),
            "one template per file, named like it"
        );
    }
    for required in REQUIRED {
        assert!(names.contains(required), "the catalogue lacks {required}");
    }
}

#[test]
fn secrets_have_no_default_and_every_template_links_its_source() {
    for (file, t) in templates() {
        let where_ = file.display();
        for env in &t.spec.env {
            if env.secret {
                assert!(
                    env.default.is_none(),
                    "{where_}: secret {} has a default",
                    env.name
                );
            }
            if let Some(default) = &env.default
                && !env.choices.is_empty()
            {
                assert!(env.choices.contains(default), "{where_}: {}", env.name);
            }
        }
        let source = t.spec.links.as_ref().and_then(|l| l.source.as_deref());
        assert!(
            source.is_some_and(|s| s.starts_with("https://")),
            "{where_}: links.source missing or not https"
        );
    }
}

#[test]
fn strings_and_lists_stay_short() {
    // The CRDs are getting maxLength/maxItems bounds (CEL cost budgets); the catalogue keeps far
    // inside any sensible bound so it never breaks when they land.
    for (file, t) in templates() {
        let where_ = file.display();
        let description = t.spec.description.as_deref().unwrap_or("");
        assert!(!description.is_empty(), "{where_}: no description");
        assert!(description.len() < 1000, "{where_}: description too long");
        assert!(t.spec.env.len() < 30, "{where_}: too many env entries");
        for env in &t.spec.env {
            let d = env.description.as_deref().unwrap_or("");
            assert!(d.len() < 256, "{where_}: {} description too long", env.name);
        }
        assert!(t.spec.args.len() < 30, "{where_}: too many args");
    }
}

#[test]
fn http_templates_name_port_and_path_and_stdio_ones_do_not_need_them() {
    let mut transports = BTreeSet::new();
    for (file, t) in templates() {
        transports.insert(t.spec.transport.as_str());
        match t.spec.transport {
            Transport::Stdio => {}
            Transport::StreamableHttp | Transport::Sse => {
                assert!(t.spec.port.is_some(), "{}: no port", file.display());
                assert!(t.spec.path.starts_with('/'), "{}", file.display());
            }
        }
    }
    // The catalogue shows every transport the operator supports.
    assert_eq!(
        transports.into_iter().collect::<Vec<_>>(),
        vec!["sse", "stdio", "streamable-http"]
    );
}

#[test]
fn templates_with_volumes_or_no_network_are_consistent() {
    let mut with_volume = 0;
    let mut without_network = 0;
    for (file, t) in templates() {
        if let Some(network) = &t.spec.network
            && network.none == Some(true)
        {
            without_network += 1;
            assert!(
                network.allow_hosts.as_ref().is_none_or(Vec::is_empty),
                "{}",
                file.display()
            );
        }
        for volume in &t.spec.volumes {
            with_volume += 1;
            assert!(volume.mount_path.starts_with('/'), "{}", file.display());
        }
    }
    assert!(with_volume >= 3, "filesystem, memory and git need volumes");
    assert!(
        without_network >= 3,
        "time, filesystem and others run offline"
    );
}

async fn install_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in api::all_crds() {
        crds.patch(
            &crd.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("installing CRD {}: {e}", crd.name_any()));
    }
}

#[tokio::test]
async fn catalogue_applies_to_kube_sim_and_reads_back() {
    let sim = kube_sim::KubeSim::start(kube_sim::Config::default())
        .await
        .expect("start kube-sim");
    let client = mcp_droplet_operator::cli::sim::client_for(&sim).expect("client");
    install_crds(&client).await;
    let templates: Api<MCPTemplate> = Api::all(client.clone());

    // The kind is served once a list answers (CRD establishment is asynchronous).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while templates.list(&Default::default()).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "MCPTemplate not served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let params = PatchParams {
        field_manager: Some(MANAGER.into()),
        field_validation: Some(ValidationDirective::Strict),
        force: true,
        ..Default::default()
    };
    let expected = templates_by_name();
    for (file, doc) in documents() {
        let name = doc["metadata"]["name"].as_str().unwrap().to_string();
        templates
            .patch(&name, &params, &Patch::Apply(&doc))
            .await
            .unwrap_or_else(|e| panic!("{} rejected: {e}", file.display()));
    }
    let stored = templates.list(&Default::default()).await.unwrap();
    assert_eq!(stored.items.len(), expected.len());
    for t in stored.items {
        let want = &expected[&t.name_any()];
        assert_eq!(&t.spec, want, "{} changed on the way through", t.name_any());
        assert_eq!(
            t.labels()
                .get("mcp.agentopia.io/catalog")
                .map(String::as_str),
            Some("true")
        );
    }
    sim.shutdown().await;
}

fn templates_by_name()
-> std::collections::BTreeMap<String, mcp_droplet_operator::api::MCPTemplateSpec> {
    templates()
        .into_iter()
        .map(|(_, t)| (t.name_any(), t.spec))
        .collect()
}
