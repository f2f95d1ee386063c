//! The CRDs against an API server: installed, every valid example accepted and every invalid one
//! rejected with the server's own message (`# server:` lines of examples/invalid/).
//!
//! Runs against kube-sim always, and against a real cluster when `MCP_E2E_KUBECONFIG` names a
//! kubeconfig (it prints that it skipped otherwise). Against a real cluster it writes nothing but
//! the CRDs and one namespace: every example is created with `dryRun=All`, so the full admission
//! chain (schema, defaults, CEL) runs without persisting anything; the namespace and the CRDs it
//! installed are deleted at the end. CEL messages are compared in either server form.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, ValidationDirective,
};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Config, ResourceExt};
use mcp_droplet_operator::api;
use serde::Deserialize;
use serde_json::{Value, json};

const MANAGER: &str = "mcp-droplet-operator-e2e";

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn api_for(client: &Client, doc: &Value, namespace: &str) -> (Api<DynamicObject>, bool) {
    let kind = doc["kind"].as_str().unwrap();
    let crd = api::all_crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap();
    let gvk = GroupVersionKind::gvk(api::GROUP, api::VERSION, kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, &crd.spec.names.plural);
    if crd.spec.scope == "Namespaced" {
        (
            Api::namespaced_with(client.clone(), namespace, &resource),
            true,
        )
    } else {
        (Api::all_with(client.clone(), &resource), false)
    }
}

/// Server-side apply with `dryRun=All` and strict field validation, as `kubectl apply
/// --server-side --dry-run=server` sends it: full admission, nothing persisted.
fn dry_run() -> PatchParams {
    PatchParams {
        dry_run: true,
        force: true,
        field_manager: Some(MANAGER.into()),
        field_validation: Some(ValidationDirective::Strict),
    }
}

type CrdApi = Api<
    k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
>;

/// Installs the CRDs and returns the names of those that were not there before (the suite
/// removes exactly those again, leaving a cluster as it found it).
async fn install_crds(client: &Client) -> Vec<String> {
    let crds: CrdApi = Api::all(client.clone());
    let mut installed = Vec::new();
    for crd in api::all_crds() {
        if crds
            .get_opt(&crd.name_any())
            .await
            .expect("read CRDs")
            .is_none()
        {
            installed.push(crd.name_any());
        }
        crds.patch(
            &crd.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("installing CRD {}: {e}", crd.name_any()));
    }
    // Established: the kinds are served once a list of each answers.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut ready = true;
        for crd in api::all_crds() {
            let gvk = GroupVersionKind::gvk(api::GROUP, api::VERSION, &crd.spec.names.kind);
            let resource = ApiResource::from_gvk_with_plural(&gvk, &crd.spec.names.plural);
            let any: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
            ready &= any.list(&Default::default()).await.is_ok();
        }
        if ready {
            return installed;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "CRDs not served within 60s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A CEL failure message with the printed value removed: 1.28 prints the type
/// (`Invalid value: "object": msg`), newer servers and kube-sim a scalar's value or nothing.
fn without_cel_value_type(message: &str) -> String {
    // 1.28 prints the type (`"object": `, `"string": `); newer servers print a scalar's value
    // (`"small": `) and nothing for objects. What follows `Invalid value: ` up to `": ` goes.
    let mut out = String::new();
    let mut rest = message;
    while let Some(at) = rest.find("Invalid value: \"") {
        let (head, tail) = rest.split_at(at + "Invalid value: ".len());
        out.push_str(head);
        rest = match tail.find("\": ") {
            Some(end) => &tail[end + 3..],
            None => tail,
        };
        if !tail.contains("\": ") {
            break;
        }
    }
    out.push_str(rest);
    out
}

/// `kubectl create --dry-run=server --validate=strict`: a POST with `dryRun=All` and
/// `fieldValidation=Strict`. Server-side apply answers unknown fields differently by version
/// (1.28: 500 "field not declared in schema"); a strict create answers the same everywhere.
async fn strict_dry_run_create(
    client: &Client,
    target: &Api<DynamicObject>,
    doc: &Value,
) -> Result<Value, kube::Error> {
    let url = format!(
        "{}?dryRun=All&fieldValidation=Strict&fieldManager={MANAGER}",
        target.resource_url()
    );
    let body = serde_json::to_vec(doc).expect("example as JSON");
    let request = http::Request::post(url)
        .header("Content-Type", "application/json")
        .body(body)
        .expect("request");
    client.request::<Value>(request).await
}

async fn check_against(client: Client) {
    let installed = install_crds(&client).await;
    let namespace = format!(
        "mcp-e2e-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap(),
        )
        .await
        .expect("create test namespace");

    let mut accepted = 0;
    for file in yaml_files(&examples_dir()) {
        for mut doc in yaml_docs(&file) {
            if doc["apiVersion"] != api::API_VERSION {
                continue;
            }
            let (target, namespaced) = api_for(&client, &doc, &namespace);
            if namespaced {
                doc["metadata"]["namespace"] = json!(namespace);
            }
            let name = doc["metadata"]["name"].as_str().unwrap().to_string();
            target
                .patch(&name, &dry_run(), &Patch::Apply(&doc))
                .await
                .unwrap_or_else(|e| panic!("{} rejected {name}: {e}", file.display()));
            accepted += 1;
        }
    }
    assert!(accepted >= 4);

    for file in yaml_files(&examples_dir().join("invalid")) {
        let text = std::fs::read_to_string(&file).unwrap();
        let expected = text
            .lines()
            .find_map(|l| l.strip_prefix("# server: "))
            .unwrap_or_else(|| panic!("{} has no '# server:' line", file.display()));
        let mut doc = yaml_docs(&file).remove(0);
        let (target, namespaced) = api_for(&client, &doc, &namespace);
        if namespaced {
            doc["metadata"]["namespace"] = json!(namespace);
        }
        match strict_dry_run_create(&client, &target, &doc).await {
            Err(kube::Error::Api(status)) => {
                // 422 Invalid for schema and CEL failures; 400 BadRequest for strict decoding
                // (unknown fields), as a real API server answers.
                assert!(
                    status.code == 422 || status.code == 400,
                    "{}: {status:?}",
                    file.display()
                );
                // Either form of CEL message is the server's own (see above).
                assert!(
                    without_cel_value_type(&status.message)
                        .contains(&without_cel_value_type(expected)),
                    "{}: the server said {:?}, expected it to contain {expected:?}",
                    file.display(),
                    status.message
                );
            }
            other => panic!("{} was not rejected: {other:?}", file.display()),
        }
    }

    namespaces
        .delete(&namespace, &DeleteParams::default())
        .await
        .expect("delete test namespace");
    let crds: CrdApi = Api::all(client.clone());
    for name in installed {
        crds.delete(&name, &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("removing CRD {name}: {e}"));
    }
}

#[tokio::test]
async fn crds_and_examples_against_a_real_cluster() {
    let Some(path) = std::env::var_os("MCP_E2E_KUBECONFIG").filter(|v| !v.is_empty()) else {
        println!(
            "SKIPPED: MCP_E2E_KUBECONFIG is not set; the real-cluster run of this suite is skipped"
        );
        return;
    };
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).expect("read MCP_E2E_KUBECONFIG");
    let config = Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("kubeconfig");
    check_against(Client::try_from(config).expect("client")).await;
}

#[tokio::test]
async fn crds_and_examples_against_kube_sim() {
    let sim = kube_sim::KubeSim::start(kube_sim::Config::default())
        .await
        .expect("start kube-sim");
    let client = mcp_droplet_operator::cli::sim::client_for(&sim).expect("client");
    check_against(client).await;
    sim.shutdown().await;
}
