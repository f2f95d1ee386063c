//! `catalog import`: MCP registry server.json documents (current camelCase and mid-2025
//! snake_case) to MCPTemplates, with what could not be mapped reported per document and field,
//! and the CLI's exit codes. Fixtures: tests/fixtures/registry/.

use std::path::{Path, PathBuf};
use std::process::Command;

use kube::ResourceExt;
use mcp_droplet_operator::api::template::Transport;
use mcp_droplet_operator::api::validation::validate_manifest;
use mcp_droplet_operator::registry_import::{
    self, DocumentOutcome, REGISTRY_NAME_ANNOTATION, REGISTRY_VERSION_ANNOTATION,
};
use serde::Deserialize;
use serde_json::{Value, json};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/registry")
        .join(name)
}

fn import(name: &str) -> Vec<DocumentOutcome> {
    let path = fixture(name);
    registry_import::import_text(name, &std::fs::read_to_string(path).unwrap())
}

fn one(name: &str) -> DocumentOutcome {
    let mut outcomes = import(name);
    assert_eq!(outcomes.len(), 1, "{name}");
    outcomes.remove(0)
}

fn has_issue(outcome: &DocumentOutcome, field: &str, words: &str) -> bool {
    outcome
        .issues
        .iter()
        .any(|i| i.field == field && i.message.contains(words))
}

#[test]
fn camel_case_oci_package_over_http_maps_image_port_path_args_and_env() {
    let outcome = one("camel-oci-http.json");
    let t = outcome.template.as_ref().expect("mapped");
    assert_eq!(t.name_any(), "playwright-mcp");
    assert_eq!(
        t.annotations()
            .get(REGISTRY_NAME_ANNOTATION)
            .map(String::as_str),
        Some("com.microsoft/playwright-mcp")
    );
    assert_eq!(
        t.annotations()
            .get(REGISTRY_VERSION_ANNOTATION)
            .map(String::as_str),
        Some("0.0.35")
    );
    let s = &t.spec;
    assert_eq!(s.display_name.as_deref(), Some("Playwright"));
    // registryBaseUrl host + identifier + package version as the tag.
    assert_eq!(s.image, "mcr.microsoft.com/playwright/mcp:v0.0.35");
    assert_eq!(s.transport, Transport::StreamableHttp);
    // {port} in the transport URL resolves to the --port argument's default.
    assert_eq!(s.port, Some(8931));
    assert_eq!(s.path, "/mcp");
    assert_eq!(s.args, ["--port", "8931", "--host", "0.0.0.0"]);
    let links = s.links.as_ref().unwrap();
    assert_eq!(
        links.source.as_deref(),
        Some("https://github.com/microsoft/playwright-mcp")
    );
    assert_eq!(links.docs.as_deref(), Some("https://playwright.dev"));

    let env = |n: &str| s.env.iter().find(|e| e.name == n).unwrap();
    assert_eq!(
        env("PLAYWRIGHT_MCP_BROWSER").default.as_deref(),
        Some("chromium")
    );
    assert_eq!(
        env("PLAYWRIGHT_MCP_BROWSER").choices,
        ["chromium", "firefox", "webkit"]
    );
    assert_eq!(env("PLAYWRIGHT_MCP_HEADLESS").choices, ["true", "false"]);
    let password = env("PLAYWRIGHT_MCP_PROXY_PASSWORD");
    assert!(password.secret);
    assert_eq!(password.default, None, "a secret's default is never copied");
    assert_eq!(env("PLAYWRIGHT_MCP_MODE").default, None);

    assert!(has_issue(
        &outcome,
        "packages[0].environmentVariables[2].default",
        "secret"
    ));
    assert!(has_issue(
        &outcome,
        "packages[0].environmentVariables[3].default",
        "not one of the choices"
    ));
    assert!(has_issue(
        &outcome,
        "packages[0].packageArguments[2]",
        "--user-data-dir"
    ));
    assert!(has_issue(
        &outcome,
        "packages[0].runtimeArguments[0]",
        "not mapped"
    ));
    assert!(has_issue(&outcome, "packages[1]", "not used"));
    assert!(has_issue(&outcome, "remotes[0]", "not deployable"));
    // The secret's value never reaches the report either.
    assert!(
        outcome
            .issues
            .iter()
            .all(|i| !i.to_string().contains("hunter2"))
    );
}

#[test]
fn snake_case_document_maps_like_the_current_schema() {
    let outcome = one("snake-oci-stdio.json");
    let t = outcome.template.as_ref().expect("mapped");
    assert_eq!(t.name_any(), "time");
    // version_detail.version of the 2025-07 schema.
    assert_eq!(
        t.annotations()
            .get(REGISTRY_VERSION_ANNOTATION)
            .map(String::as_str),
        Some("2025.7.1")
    );
    assert_eq!(t.spec.image, "mcp/time:2025.7.1");
    assert_eq!(t.spec.transport, Transport::Stdio);
    assert_eq!(t.spec.port, None);
    // {tz} resolved from the argument's own variables.
    assert_eq!(t.spec.args, ["--local-timezone", "UTC"]);
    let names: Vec<_> = t.spec.env.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["LOCAL_TIMEZONE", "TIME_API_TOKEN"]);
    assert!(t.spec.env[0].required && !t.spec.env[0].secret);
    assert!(t.spec.env[1].required && t.spec.env[1].secret);
    assert_eq!(
        t.spec.links.as_ref().and_then(|l| l.source.as_deref()),
        Some("https://github.com/modelcontextprotocol/servers/tree/HEAD/src/time")
    );
    assert!(has_issue(
        &outcome,
        "packages[0].environment_variables[2].name",
        "bad-name"
    ));
    assert!(has_issue(
        &outcome,
        "packages[0].transport",
        "assumed stdio"
    ));
    assert!(has_issue(&outcome, "remotes[0]", "not deployable"));
}

#[test]
fn npm_and_pypi_packages_are_reported_not_guessed() {
    for (file, registry) in [("npm-only.json", "npm"), ("pypi-only.json", "pypi")] {
        let outcome = one(file);
        assert!(outcome.template.is_none(), "{file}");
        assert!(
            has_issue(&outcome, "packages[0]", &format!("{registry} package")),
            "{file}: {:?}",
            outcome.issues
        );
        assert!(has_issue(&outcome, "packages", "no oci package"), "{file}");
    }
}

#[test]
fn broken_json_is_one_failed_document() {
    let outcome = one("broken.json");
    assert!(outcome.template.is_none());
    assert_eq!(outcome.issues.len(), 1);
    assert!(outcome.issues[0].message.starts_with("not valid JSON"));
}

#[test]
fn registry_list_responses_keep_only_current_versions() {
    let outcomes = import("dir/registry-list.json");
    assert_eq!(outcomes.len(), 3);
    assert_eq!(outcomes[0].source, "dir/registry-list.json#servers[0]");
    let grafana = outcomes[0]
        .template
        .as_ref()
        .expect("the latest grafana maps");
    assert_eq!(grafana.spec.transport, Transport::Sse);
    assert_eq!(
        (grafana.spec.port, grafana.spec.path.as_str()),
        (Some(8000), "/sse")
    );
    assert!(outcomes[1].template.is_none());
    assert!(
        outcomes[1]
            .issues
            .iter()
            .any(|i| i.field.ends_with("isLatest"))
    );
    assert!(outcomes[2].template.is_none());
    assert!(has_issue(
        &outcomes[2],
        "packages[0].transport.type",
        "websocket"
    ));
}

fn map(doc: Value) -> DocumentOutcome {
    registry_import::import_value("inline", &doc)
}

fn oci(transport: Value) -> Value {
    json!({"name": "io.example/srv", "description": "x", "version": "1.0.0",
           "repository": {"url": "https://github.com/example/srv", "source": "github"},
           "packages": [{"registryType": "oci", "identifier": "ghcr.io/example/srv", "version": "1.0.0",
                         "transport": transport}]})
}

#[test]
fn http_transport_without_a_knowable_port_is_not_mapped() {
    let outcome = map(oci(
        json!({"type": "streamable-http", "url": "http://localhost:{port}/mcp"}),
    ));
    assert!(outcome.template.is_none());
    assert!(has_issue(&outcome, "packages[0].transport.url", "{port}"));
    let outcome = map(oci(json!({"type": "sse"})));
    assert!(outcome.template.is_none());
    assert!(has_issue(
        &outcome,
        "packages[0].transport.url",
        "none given"
    ));
    let outcome = map(oci(
        json!({"type": "streamable", "url": "http://0.0.0.0:7000"}),
    ));
    let t = outcome
        .template
        .expect("the 2025-07 name of streamable HTTP");
    assert_eq!(
        (t.spec.transport, t.spec.port, t.spec.path.as_str()),
        (Transport::StreamableHttp, Some(7000), "/mcp")
    );
    assert_eq!(t.spec.image, "ghcr.io/example/srv:1.0.0");
}

#[test]
fn wrong_types_and_missing_names_name_the_field() {
    let mut doc = oci(json!({"type": "stdio"}));
    doc["packages"][0]["environmentVariables"] =
        json!([{"name": "A", "isRequired": "yes"}, {"description": "no name"}, "nonsense"]);
    let outcome = map(doc);
    let t = outcome.template.as_ref().expect("still mapped");
    assert_eq!(t.spec.env.len(), 1);
    assert!(!t.spec.env[0].required);
    assert!(has_issue(
        &outcome,
        "packages[0].environmentVariables[0].isRequired",
        "expected true or false"
    ));
    assert!(has_issue(
        &outcome,
        "packages[0].environmentVariables[1].name",
        "missing"
    ));
    assert!(has_issue(
        &outcome,
        "packages[0].environmentVariables[2]",
        "expected an object"
    ));

    let outcome = map(json!({"description": "no name"}));
    assert!(outcome.template.is_none());
    assert!(has_issue(&outcome, "name", "missing"));
    let outcome = map(json!(["not", "an", "object"]));
    assert!(outcome.template.is_none());
}

#[test]
fn a_mapped_template_the_crd_rejects_is_not_handed_out() {
    let mut doc = oci(json!({"type": "stdio"}));
    doc["packages"][0]["identifier"] = json!("Not A Valid/Image Reference");
    let outcome = map(doc);
    assert!(outcome.template.is_none());
    assert!(
        outcome
            .issues
            .iter()
            .any(|i| i.field.contains("spec.image")),
        "{:?}",
        outcome.issues
    );
}

#[test]
fn deprecated_servers_are_not_imported() {
    let mut doc = oci(json!({"type": "stdio"}));
    doc["status"] = json!("deprecated");
    assert!(map(doc).template.is_none());
    let mut doc = oci(json!({"type": "stdio"}));
    doc["_meta"] = json!({"io.modelcontextprotocol.registry/official": {"status": "deleted"}});
    let outcome = map(doc);
    assert!(outcome.template.is_none());
    assert!(outcome.issues.iter().any(|i| i.message.contains("deleted")));
}

#[test]
fn names_taken_twice_fall_back_to_the_full_registry_name() {
    let a = oci(json!({"type": "stdio"}));
    let mut b = a.clone();
    b["name"] = json!("io.other/srv");
    let mut outcomes = vec![map(a.clone()), map(b), map(a.clone()), map(a)];
    registry_import::deduplicate_names(&mut outcomes);
    let names: Vec<_> = outcomes
        .iter()
        .map(|o| o.template.as_ref().map(|t| t.name_any()))
        .collect();
    assert_eq!(
        names,
        [
            Some("srv".into()),
            Some("io-other-srv".into()),
            Some("io-example-srv".into()),
            None
        ]
    );
    assert!(outcomes[2].issues.iter().any(|i| i.field == "name"));
    assert!(
        outcomes[3]
            .issues
            .iter()
            .any(|i| i.message.contains("not mapped"))
    );
}

// ---- the command line ----

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn cli(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-droplet-operator"))
        .args(["catalog", "import"])
        .args(args)
        .output()
        .expect("run the binary");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn yaml_docs(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

#[test]
fn cli_prints_valid_templates_and_exits_zero() {
    let path = fixture("camel-oci-http.json");
    let run = cli(&[path.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let docs = yaml_docs(&run.stdout);
    assert_eq!(docs.len(), 1);
    assert_eq!(validate_manifest(&docs[0], None), Ok(true));
    assert_eq!(docs[0]["spec"]["port"], 8931);
    // The report names the document and the field.
    assert!(
        run.stderr
            .contains(&format!("{}: packages[1]: npm package", path.display())),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("imported 1 of 1 document(s)"));
}

#[test]
fn cli_exits_non_zero_when_nothing_maps() {
    for file in ["npm-only.json", "pypi-only.json", "broken.json"] {
        let path = fixture(file);
        let run = cli(&[path.to_str().unwrap()]);
        assert_eq!(run.code, Some(1), "{file}");
        assert!(run.stdout.is_empty(), "{file}: {}", run.stdout);
        assert!(
            run.stderr
                .contains(&format!("{}: not mapped", path.display())),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("error: none of the 1 document(s)"),
            "{}",
            run.stderr
        );
    }
    let run = cli(&["/nonexistent/server.json"]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("/nonexistent/server.json"));
}

#[test]
fn cli_imports_a_directory_recursively_as_a_json_list() {
    let dir = fixture("dir");
    let run = cli(&[dir.to_str().unwrap(), "-o", "json"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let list: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    let items = list["items"].as_array().unwrap();
    let names: Vec<_> = items
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["github-mcp-server", "mcp-grafana"]);
    for item in items {
        assert_eq!(validate_manifest(item, None), Ok(true));
    }
    assert!(run.stderr.contains("filesystem/server.json: not mapped"));
    assert!(run.stderr.contains("imported 2 of 5 document(s)"));
    // A broken file among good ones is reported, and the good ones still import.
    let run = cli(&[fixture("").to_str().unwrap()]);
    assert_eq!(run.code, Some(0));
    assert!(run.stderr.contains("broken.json: not valid JSON"));
    assert_eq!(yaml_docs(&run.stdout).len(), 4);
}

#[tokio::test]
async fn imported_templates_are_stored_by_an_api_server() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Api, Patch, PatchParams, ValidationDirective};
    use mcp_droplet_operator::api::{self, MCPTemplate};

    let sim = kube_sim::KubeSim::start(kube_sim::Config::default())
        .await
        .expect("start kube-sim");
    let client = mcp_droplet_operator::cli::sim::client_for(&sim).expect("client");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in api::all_crds() {
        crds.patch(
            &crd.name_any(),
            &PatchParams::apply("import-test").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap();
    }
    let templates: Api<MCPTemplate> = Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while templates.list(&Default::default()).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "MCPTemplate not served"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let run = cli(&[fixture("").to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let params = PatchParams {
        field_manager: Some("import-test".into()),
        field_validation: Some(ValidationDirective::Strict),
        force: true,
        ..Default::default()
    };
    let docs = yaml_docs(&run.stdout);
    for doc in &docs {
        let name = doc["metadata"]["name"].as_str().unwrap();
        templates
            .patch(name, &params, &Patch::Apply(doc))
            .await
            .unwrap_or_else(|e| panic!("{name} rejected: {e}"));
    }
    let stored = templates.list(&Default::default()).await.unwrap();
    let mut names: Vec<_> = stored.items.iter().map(|t| t.name_any()).collect();
    names.sort();
    assert_eq!(
        names,
        ["github-mcp-server", "mcp-grafana", "playwright-mcp", "time"]
    );
    sim.shutdown().await;
}
