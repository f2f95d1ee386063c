//! Schema conformance: every simulated DigitalOcean response the client uses is validated
//! against the response schemas of DigitalOcean's OpenAPI description.
//!
//! The schemas come from `tests/fixtures/digitalocean-openapi-subset.json`, extracted from the
//! bundled document in `../shared/digitalocean-openapi/` by [`extract_subset`] (the generator):
//! regenerate with `MCP_REGENERATE_DO_FIXTURE=1 cargo test -p mcp-droplet-operator --test
//! cloud_schema`. When `../shared` exists, a test fails if the fixture drifted from it.

mod cloud_support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use cloud_support::*;
use serde_json::{Map, Value, json};

/// The operations the client calls: (method, path, status).
const OPERATIONS: &[(&str, &str, &str)] = &[
    ("get", "/v2/account", "200"),
    ("post", "/v2/droplets", "202"),
    ("get", "/v2/droplets", "200"),
    ("delete", "/v2/droplets", "204"),
    ("get", "/v2/droplets/{droplet_id}", "200"),
    ("get", "/v2/droplets/{droplet_id}", "404"),
    ("delete", "/v2/droplets/{droplet_id}", "204"),
    ("post", "/v2/droplets/{droplet_id}/actions", "201"),
    ("get", "/v2/actions/{action_id}", "200"),
    ("get", "/v2/sizes", "200"),
    ("get", "/v2/regions", "200"),
    ("get", "/v2/monitoring/metrics/droplet/cpu", "200"),
    ("get", "/v2/monitoring/metrics/droplet/memory_total", "200"),
    (
        "get",
        "/v2/monitoring/metrics/droplet/memory_available",
        "200",
    ),
    ("get", "/v2/monitoring/metrics/droplet/load_1", "200"),
    ("get", "/v2/account", "401"),
    ("get", "/v2/account", "429"),
    ("get", "/v2/account", "500"),
    ("post", "/v2/droplets", "default"),
];

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/digitalocean-openapi-subset.json")
}

/// `shared/` beside the repository (CI), or in any parent folder (developer worktrees).
fn shared_document() -> Option<Value> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let path = manifest
        .ancestors()
        .skip(1)
        .map(|dir| dir.join("shared/digitalocean-openapi/digitalocean-public-v2.json"))
        .find(|candidate| candidate.is_file())?;
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

fn operation_key(method: &str, path: &str, status: &str) -> String {
    format!("{} {path} {status}", method.to_uppercase())
}

/// Drops documentation keywords (outside `properties` maps, where they could be field names).
fn strip_docs(value: &Value, property_map: bool) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| {
                    property_map || !matches!(k.as_str(), "description" | "example" | "examples")
                })
                .map(|(k, v)| (k.clone(), strip_docs(v, !property_map && k == "properties")))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| strip_docs(v, false)).collect()),
        other => other.clone(),
    }
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// The generator: the responses of [`OPERATIONS`] and every component they reference.
fn extract_subset(full: &Value) -> Value {
    let mut operations = Map::new();
    let mut pending = Vec::new();
    for (method, path, status) in OPERATIONS {
        let response = &full["paths"][*path][*method]["responses"][*status];
        let stripped = strip_docs(response, false);
        collect_refs(&stripped, &mut pending);
        operations.insert(operation_key(method, path, status), stripped);
    }
    let mut seen = BTreeSet::new();
    let mut components: Map<String, Value> = Map::new();
    while let Some(reference) = pending.pop() {
        if !seen.insert(reference.clone()) {
            continue;
        }
        let Some(pointer) = reference.strip_prefix('#') else {
            continue;
        };
        let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
        if parts.len() != 3 || parts[0] != "components" {
            continue;
        }
        let target = strip_docs(&full[parts[0]][parts[1]][parts[2]], false);
        collect_refs(&target, &mut pending);
        let kind = components
            .entry(parts[1].to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(kind) = kind {
            kind.insert(parts[2].to_owned(), target);
        }
    }
    json!({
        "x-source": "digitalocean/openapi commit 7c1300c479fed9c353cda9fc21cd968619552304, \
                     bundled as shared/digitalocean-openapi/digitalocean-public-v2.json; \
                     documentation keywords removed",
        "x-license": "Apache-2.0, Copyright DigitalOcean; full text in \
                      tests/fixtures/digitalocean-openapi-LICENSE",
        "x-generator": "tests/cloud_schema.rs extract_subset \
                        (MCP_REGENERATE_DO_FIXTURE=1 cargo test --test cloud_schema)",
        "operations": operations,
        "components": components,
    })
}

fn load_fixture() -> Value {
    let text = std::fs::read_to_string(fixture_path()).expect("fixture exists");
    serde_json::from_str(&text).expect("fixture is JSON")
}

#[test]
fn fixture_matches_the_shared_openapi_document() {
    let Some(full) = shared_document() else {
        println!("skipped: ../shared/digitalocean-openapi is not beside the repository");
        return;
    };
    let generated = extract_subset(&full);
    if std::env::var("MCP_REGENERATE_DO_FIXTURE").as_deref() == Ok("1") {
        let text = serde_json::to_string_pretty(&generated).expect("serialise");
        std::fs::write(fixture_path(), text + "\n").expect("write fixture");
    }
    assert!(
        generated == load_fixture(),
        "the fixture drifted from ../shared; regenerate with MCP_REGENERATE_DO_FIXTURE=1"
    );
}

/// OpenAPI 3.0 `nullable: true` expressed in JSON Schema (type and enum admit null).
fn openapi_to_json_schema(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out: Map<String, Value> = map
                .iter()
                .map(|(k, v)| (k.clone(), openapi_to_json_schema(v)))
                .collect();
            if out.remove("nullable") == Some(Value::Bool(true)) {
                if let Some(Value::String(t)) = out.get("type").cloned() {
                    out.insert("type".into(), json!([t, "null"]));
                }
                if let Some(Value::Array(mut values)) = out.get("enum").cloned() {
                    values.push(Value::Null);
                    out.insert("enum".into(), Value::Array(values));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(openapi_to_json_schema).collect()),
        other => other.clone(),
    }
}

struct Checker {
    fixture: Value,
    components: Value,
    checked: BTreeSet<String>,
}

impl Checker {
    fn new() -> Self {
        let fixture = load_fixture();
        let components = openapi_to_json_schema(&fixture["components"]);
        Self {
            fixture,
            components,
            checked: BTreeSet::new(),
        }
    }

    /// The response object of an operation, following a `$ref` to components.
    fn response(&self, key: &str) -> Value {
        let response = &self.fixture["operations"][key];
        match response.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.rsplit('/').next().expect("name");
                self.fixture["components"]["responses"][name].clone()
            }
            None => response.clone(),
        }
    }

    /// Schema errors of `value` as the body of operation `key` (empty when it conforms).
    fn validate(&self, key: &str, value: &Value) -> Vec<String> {
        let spec = self.response(key);
        let Some(schema) = spec.pointer("/content/application~1json/schema") else {
            return Vec::new();
        };
        let mut root = openapi_to_json_schema(schema);
        if let Value::Object(map) = &mut root {
            map.insert("components".into(), self.components.clone());
        }
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("{key}: schema compiles: {e}"));
        validator
            .iter_errors(value)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    }

    async fn check(&mut self, key: &str, response: reqwest::Response) -> Value {
        let spec = self.response(key);
        assert!(!spec.is_null(), "operation {key} is in the fixture");
        let status = response.status().as_u16().to_string();
        let expected_status = key.rsplit(' ').next().expect("status");
        if expected_status != "default" {
            assert_eq!(status, expected_status, "{key}");
        }
        if let Some(headers) = spec.get("headers").and_then(Value::as_object) {
            for name in headers.keys() {
                assert!(
                    response.headers().contains_key(name.as_str()),
                    "{key}: header {name} missing"
                );
            }
        }
        let body = response.bytes().await.expect("body");
        let value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).expect("JSON body")
        };
        let errors = self.validate(key, &value);
        assert!(
            errors.is_empty(),
            "{key} does not match its schema: {errors:#?}\n{value}"
        );
        self.checked.insert(key.to_owned());
        value
    }
}

#[test]
fn the_schema_check_rejects_malformed_bodies() {
    let checker = Checker::new();
    let missing_fields = json!({"droplet": {"id": 1, "name": "x"}});
    assert!(
        !checker
            .validate("GET /v2/droplets/{droplet_id} 200", &missing_fields)
            .is_empty()
    );
    let wrong_status = json!({"action": {"id": 1, "status": "done"}});
    assert!(
        !checker
            .validate("GET /v2/actions/{action_id} 200", &wrong_status)
            .is_empty()
    );
    let no_meta = json!({"sizes": []});
    assert!(!checker.validate("GET /v2/sizes 200", &no_meta).is_empty());
    let fine = json!({"id": "not_found", "message": "x"});
    assert!(
        checker
            .validate("GET /v2/droplets/{droplet_id} 404", &fine)
            .is_empty()
    );
}

#[tokio::test]
async fn simulated_responses_match_the_openapi_schemas() {
    let clock = fast_clock(1000.0);
    let sim = start_sim(clock.clone(), |c| c.list_lag = Duration::ZERO).await;
    let base = sim.base_url();
    let http = reqwest::Client::new();
    let authed = |method: reqwest::Method, path: &str| {
        http.request(method, format!("{base}{path}"))
            .bearer_auth(TOKEN)
    };
    let mut checker = Checker::new();

    let r = authed(reqwest::Method::GET, "/v2/account")
        .send()
        .await
        .expect("send");
    checker.check("GET /v2/account 200", r).await;

    let mut ids = Vec::new();
    for name in ["schema-a", "schema-b", "schema-c"] {
        let r = authed(reqwest::Method::POST, "/v2/droplets")
            .json(&create_request(name))
            .send()
            .await
            .expect("send");
        let body = checker.check("POST /v2/droplets 202", r).await;
        ids.push(body["droplet"]["id"].as_u64().expect("id"));
    }
    let id = ids[0];

    // Page 2 of 3 has all four links.
    let r = authed(reqwest::Method::GET, "/v2/droplets?page=2&per_page=1")
        .send()
        .await
        .expect("send");
    let page = checker.check("GET /v2/droplets 200", r).await;
    let pages = &page["links"]["pages"];
    for link in ["first", "prev", "next", "last"] {
        assert!(
            pages[link]
                .as_str()
                .is_some_and(|l| l.starts_with("http://")),
            "{link}"
        );
    }
    assert_eq!(page["meta"]["total"], 3);

    // Wait until active so the networks are filled in.
    eventually(Duration::from_secs(10), || {
        let request = authed(reqwest::Method::GET, &format!("/v2/droplets/{id}"));
        async move {
            let body: Value = request.send().await.ok()?.json().await.ok()?;
            (body["droplet"]["status"] == "active").then_some(())
        }
    })
    .await;
    let r = authed(reqwest::Method::GET, &format!("/v2/droplets/{id}"))
        .send()
        .await
        .expect("send");
    checker.check("GET /v2/droplets/{droplet_id} 200", r).await;

    let r = authed(reqwest::Method::POST, &format!("/v2/droplets/{id}/actions"))
        .json(&json!({"type": "reboot"}))
        .send()
        .await
        .expect("send");
    let action = checker
        .check("POST /v2/droplets/{droplet_id}/actions 201", r)
        .await;
    let action_id = action["action"]["id"].as_u64().expect("action id");
    let r = authed(reqwest::Method::GET, &format!("/v2/actions/{action_id}"))
        .send()
        .await
        .expect("send");
    checker.check("GET /v2/actions/{action_id} 200", r).await;

    let r = authed(reqwest::Method::GET, "/v2/sizes")
        .send()
        .await
        .expect("send");
    checker.check("GET /v2/sizes 200", r).await;
    let r = authed(reqwest::Method::GET, "/v2/regions")
        .send()
        .await
        .expect("send");
    checker.check("GET /v2/regions 200", r).await;

    clock.sleep(Duration::from_secs(600)).await;
    let now = clock::unix_seconds(clock.now());
    for metric in ["cpu", "memory_total", "memory_available", "load_1"] {
        let path = format!(
            "/v2/monitoring/metrics/droplet/{metric}?host_id={id}&start={}&end={now}",
            now - 600
        );
        let r = authed(reqwest::Method::GET, &path)
            .send()
            .await
            .expect("send");
        let body = checker
            .check(
                &format!("GET /v2/monitoring/metrics/droplet/{metric} 200"),
                r,
            )
            .await;
        assert!(
            !body["data"]["result"]
                .as_array()
                .expect("result")
                .is_empty(),
            "{metric}"
        );
    }

    let r = http
        .get(format!("{base}/v2/account"))
        .bearer_auth("nope")
        .send()
        .await
        .expect("send");
    checker.check("GET /v2/account 401", r).await;
    sim.force_rate_limited(1);
    let r = authed(reqwest::Method::GET, "/v2/account")
        .send()
        .await
        .expect("send");
    checker.check("GET /v2/account 429", r).await;
    sim.set_faults(mcp_droplet_operator::sim::digitalocean::FaultConfig {
        server_error_rate: 1.0,
        ..Default::default()
    });
    let r = authed(reqwest::Method::GET, "/v2/account")
        .send()
        .await
        .expect("send");
    checker.check("GET /v2/account 500", r).await;
    sim.set_faults(Default::default());

    let mut bad = create_request("bad-size");
    bad.size = "nope".into();
    let r = authed(reqwest::Method::POST, "/v2/droplets")
        .json(&bad)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 422);
    checker.check("POST /v2/droplets default", r).await;

    let r = authed(reqwest::Method::DELETE, &format!("/v2/droplets/{id}"))
        .send()
        .await
        .expect("send");
    checker
        .check("DELETE /v2/droplets/{droplet_id} 204", r)
        .await;
    let r = authed(reqwest::Method::GET, &format!("/v2/droplets/{id}"))
        .send()
        .await
        .expect("send");
    checker.check("GET /v2/droplets/{droplet_id} 404", r).await;
    let r = authed(
        reqwest::Method::DELETE,
        "/v2/droplets?tag_name=mcp-droplet-operator:cluster:test",
    )
    .send()
    .await
    .expect("send");
    checker.check("DELETE /v2/droplets 204", r).await;

    let all: BTreeSet<String> = OPERATIONS
        .iter()
        .map(|(m, p, s)| operation_key(m, p, s))
        .collect();
    assert_eq!(checker.checked, all, "every operation was checked");
    sim.shutdown().await;
}
