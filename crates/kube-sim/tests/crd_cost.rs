//! CRDs whose CEL rules are too expensive are refused like the API server refuses them, with
//! the same field paths and messages (issue 11). Runs against kube-sim, or a real cluster
//! when `MCP_E2E_KUBECONFIG` is set (every request is a create that is refused, or a
//! dry run, so nothing is left behind).

mod common;

use common::TestEnv;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;
use std::collections::BTreeSet;

fn crds(env: &TestEnv) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
        "customresourcedefinitions",
    );
    Api::all_with(env.client.clone(), &ar)
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture");
    serde_yaml_ng::from_str(&text).expect("fixture yaml")
}

const HINT: &str = "(try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)";
const CONTRIBUTED: &str = "Forbidden: contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema";

/// Creates the CRD (dry run) and returns the refusal's causes as `field: message` lines.
async fn refusal(env: &TestEnv, crd: Value) -> BTreeSet<String> {
    let obj: DynamicObject = serde_json::from_value(crd).expect("crd object");
    let pp = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let err = match crds(env).create(&pp, &obj).await {
        Ok(_) => panic!("the server accepted a CRD over the CEL cost budget"),
        Err(kube::Error::Api(s)) => s,
        Err(other) => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(err.code, 422, "{err:?}");
    err.details
        .map(|d| d.causes)
        .unwrap_or_default()
        .into_iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect()
}

fn rule(path: &str) -> String {
    format!(
        "spec.validation.openAPIV3Schema.properties[spec].{path}.x-kubernetes-validations[0].rule"
    )
}

#[tokio::test]
async fn the_unbounded_template_crd_is_refused_with_the_servers_messages() {
    let env = TestEnv::start().await;
    let causes = refusal(&env, fixture("mcptemplates-unbounded-crd.yaml")).await;
    let env_rule = |i: usize| {
        format!(
            "spec.validation.openAPIV3Schema.properties[spec].properties[env].items.x-kubernetes-validations[{i}].rule"
        )
    };
    let expected: BTreeSet<String> = [
        format!("{}: Forbidden: estimated rule cost exceeds budget by factor of more than 100x {HINT}", env_rule(1)),
        format!("{}: {CONTRIBUTED}", env_rule(1)),
        format!("{}: {CONTRIBUTED}", env_rule(0)),
        format!("spec.validation.openAPIV3Schema: Forbidden: x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema exceeds budget by factor of more than 100x {HINT}"),
    ]
    .into_iter()
    .collect();
    assert_eq!(causes, expected);
    env.cleanup().await;
}

/// Rules just over the per-rule budget print the exact factor, so the estimate is checked to
/// the unit: string `contains`, nested quantifiers, map iteration with a regex, `split`,
/// per-item rules under a bounded list, and an unbounded quadratic rule.
#[tokio::test]
async fn estimated_costs_match_the_server_to_the_unit() {
    let env = TestEnv::start().await;
    let causes = refusal(&env, fixture("cost-probe-crd.yaml")).await;
    let over = |path: &str, factor: &str| {
        format!(
            "{}: Forbidden: estimated rule cost exceeds budget by factor of {factor} {HINT}",
            rule(path)
        )
    };
    let nested = "spec.validation.openAPIV3Schema.properties[spec].properties[nested].items.x-kubernetes-validations[0].rule";
    let expected: BTreeSet<String> = [
        over("properties[contains]", "1.212000x"),
        over("properties[pairs]", "1.274350x"),
        over("properties[regex]", "1.220000x"),
        over("properties[text]", "1.240000x"),
        over("properties[ints]", "more than 100x"),
        format!("{nested}: Forbidden: estimated rule cost exceeds budget by factor of 1.180600x {HINT}"),
        format!("{}: {CONTRIBUTED}", rule("properties[ints]")),
        format!("{}: {CONTRIBUTED}", rule("properties[pairs]")),
        format!("{}: {CONTRIBUTED}", rule("properties[text]")),
        format!("{}: {CONTRIBUTED}", rule("properties[regex]")),
        format!("spec.validation.openAPIV3Schema: Forbidden: x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema exceeds budget by factor of more than 100x {HINT}"),
    ]
    .into_iter()
    .collect();
    assert_eq!(causes, expected);
    env.cleanup().await;
}

#[tokio::test]
async fn the_same_rules_with_bounds_are_accepted() {
    let env = TestEnv::start().await;
    let mut crd = fixture("cost-probe-crd.yaml");
    let spec = crd
        .pointer_mut("/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties")
        .expect("spec properties");
    spec["contains"]["maxItems"] = 100.into();
    spec["pairs"]["maxItems"] = 100.into();
    spec["regex"]["maxProperties"] = 100.into();
    spec["ints"]["maxItems"] = 100.into();
    spec["nested"]["maxItems"] = 10.into();
    spec["text"]["maxLength"] = 1000.into();
    let obj: DynamicObject = serde_json::from_value(crd).expect("crd object");
    let pp = PostParams {
        dry_run: true,
        ..Default::default()
    };
    crds(&env)
        .create(&pp, &obj)
        .await
        .expect("bounded rules fit the budget");
    env.cleanup().await;
}
