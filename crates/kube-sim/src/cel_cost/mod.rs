//! Static cost limits for `x-kubernetes-validations`, checked when a CRD is created or
//! updated, as the API server does (k8s.io/apiextensions-apiserver validation.go and
//! cel_validation.go): each rule's worst-case cost, multiplied by how many times its schema
//! node can occur, must stay under [`PER_EXPRESSION_LIMIT`], and the sum over the schema
//! under [`PER_CRD_LIMIT`]. Follows the newest estimator (strings are bounded at
//! `maxLength` × 4 bytes), which is stricter than 1.28's.

pub mod decl;
pub mod estimate;

use crate::status::Cause;
use decl::DeclType;
use serde_json::Value;

/// Largest static cost of one rule (`StaticEstimatedCostLimit`).
pub const PER_EXPRESSION_LIMIT: u64 = 10_000_000;
/// Largest total static cost of a CRD's rules (`StaticEstimatedCRDCostLimit`).
pub const PER_CRD_LIMIT: u64 = 100_000_000;

/// The estimate for one rule (or message expression) of a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleCost {
    /// Field path of the rule inside the CRD, e.g.
    /// `spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule`.
    pub path: String,
    /// The CEL expression.
    pub expression: String,
    /// Cost of one evaluation.
    pub per_call: u64,
    /// Most times the rule can run for one object (the node's cardinality).
    pub cardinality: u64,
    /// `per_call × cardinality`: what the server compares with [`PER_EXPRESSION_LIMIT`].
    pub total: u64,
}

/// Estimates every rule of one `openAPIV3Schema`, with paths under `prefix`.
pub fn schema_rule_costs(schema: &Value, prefix: &str) -> Vec<RuleCost> {
    let mut out = Vec::new();
    walk(schema, prefix, true, Some(1), &mut out);
    out
}

fn max_elements(schema: &Value) -> Option<u64> {
    let bound = |key: &str| {
        schema
            .get(key)
            .and_then(Value::as_i64)
            .map(|v| u64::try_from(v).unwrap_or(0))
    };
    match schema.get("type").and_then(Value::as_str) {
        Some("object")
            if schema
                .get("additionalProperties")
                .is_some_and(Value::is_object) =>
        {
            bound("maxProperties")
        }
        Some("array") => bound("maxItems"),
        _ => Some(1),
    }
}

fn walk(schema: &Value, path: &str, root: bool, cardinality: Option<u64>, out: &mut Vec<RuleCost>) {
    if let Some(rules) = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        let embedded = schema
            .get("x-kubernetes-embedded-resource")
            .and_then(Value::as_bool)
            == Some(true);
        if let Some(decl) = decl::from_schema(schema, root || embedded) {
            // Under an unbounded list or map, the server assumes the node repeats as often
            // as its smallest serialisation fits in one request.
            let card = cardinality.unwrap_or_else(|| {
                u64::try_from(decl::MAX_REQUEST_SIZE_BYTES / (decl.min_serialized_size + 1))
                    .unwrap_or(0)
            });
            for (i, rule) in rules.iter().enumerate() {
                let base = format!("{path}.x-kubernetes-validations[{i}]");
                for (key, field) in [("rule", "rule"), ("messageExpression", "messageExpression")] {
                    if let Some(expr) = rule.get(key).and_then(Value::as_str) {
                        let per_call = expression_cost(expr, &decl);
                        out.push(RuleCost {
                            path: format!("{base}.{field}"),
                            expression: expr.to_string(),
                            per_call,
                            cardinality: card,
                            total: if per_call == 0 {
                                0
                            } else {
                                per_call.saturating_mul(card)
                            },
                        });
                    }
                }
            }
        }
    }
    let child = |factor: Option<u64>| match (cardinality, factor) {
        (Some(c), Some(f)) => Some(c.saturating_mul(f)),
        _ => None,
    };
    let own = max_elements(schema);
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            walk(
                prop,
                &format!("{path}.properties[{name}]"),
                false,
                child(own),
                out,
            );
        }
    }
    if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
        walk(items, &format!("{path}.items"), false, child(own), out);
    }
    if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        walk(
            extra,
            &format!("{path}.additionalProperties"),
            false,
            child(own),
            out,
        );
    }
}

/// Worst-case cost of one evaluation of `expression` on a value of `decl`; 0 when it does
/// not parse (the compile error is reported elsewhere).
pub fn expression_cost(expression: &str, decl: &DeclType) -> u64 {
    let Ok(ast) = kube_cel::cel::parser::Parser::new()
        .enable_optional_syntax(true)
        .parse(expression)
    else {
        return 0;
    };
    estimate::Coster::new(decl).cost(&ast).max
}

/// The API server's wording of how far a cost is over its limit.
pub fn cost_error_message(cost_name: &str, cost: u64, limit: u64) -> String {
    let factor = cost as f64 / limit as f64;
    let factor = if factor > 100.0 {
        "more than 100x".to_string()
    } else if factor < 1.5 {
        format!("{factor:.6}x")
    } else {
        format!("{factor:.1}x")
    };
    format!(
        "{cost_name} exceeds budget by factor of {factor} (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)"
    )
}

fn forbidden(field: String, message: String) -> Cause {
    Cause {
        reason: "FieldValueForbidden".into(),
        message: format!("Forbidden: {message}"),
        field,
    }
}

/// The schemas of a CRD with the field path the server reports them under: one shared
/// schema is `spec.validation.openAPIV3Schema` (the internal form), otherwise per version.
fn crd_schemas(crd: &Value) -> Vec<(String, Value)> {
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let schemas: Vec<Option<&Value>> = versions
        .iter()
        .map(|v| v.pointer("/schema/openAPIV3Schema"))
        .collect();
    let shared = schemas
        .first()
        .copied()
        .flatten()
        .filter(|first| schemas.iter().all(|s| *s == Some(*first)));
    match shared {
        Some(s) => vec![("spec.validation.openAPIV3Schema".to_string(), s.clone())],
        None => schemas
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.map(|s| {
                    (
                        format!("spec.versions[{i}].schema.openAPIV3Schema"),
                        s.clone(),
                    )
                })
            })
            .collect(),
    }
}

/// The causes for which the API server refuses a CRD's rules as too expensive. On an
/// update, a schema that did not change keeps its per-rule costs (the server's ratchet).
pub fn crd_cost_causes(crd: &Value, old: Option<&Value>) -> Vec<Cause> {
    let old_schemas = old.map(crd_schemas).unwrap_or_default();
    let mut causes = Vec::new();
    for (prefix, schema) in crd_schemas(crd) {
        let unchanged = old_schemas.iter().any(|(_, s)| *s == schema);
        let costs = schema_rule_costs(&schema, &prefix);
        let mut total: u64 = 0;
        let mut expensive: Vec<&RuleCost> = Vec::new();
        for c in &costs {
            if !unchanged && c.total > PER_EXPRESSION_LIMIT {
                let name = if c.path.ends_with(".messageExpression") {
                    "estimated messageExpression cost"
                } else {
                    "estimated rule cost"
                };
                causes.push(forbidden(
                    c.path.clone(),
                    cost_error_message(name, c.total, PER_EXPRESSION_LIMIT),
                ));
            }
            total = total.saturating_add(c.total);
            // Rules under 1% of the CRD budget are never named as contributors.
            if c.total >= PER_CRD_LIMIT / 100 {
                expensive.push(c);
            }
        }
        if total > PER_CRD_LIMIT {
            expensive.sort_by_key(|c| std::cmp::Reverse(c.total));
            for c in expensive.iter().take(4) {
                causes.push(forbidden(
                    c.path.clone(),
                    "contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema".into(),
                ));
            }
            causes.push(forbidden(
                prefix.clone(),
                cost_error_message(
                    "x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema",
                    total,
                    PER_CRD_LIMIT,
                ),
            ));
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crd_with(spec_schema: Value) -> Value {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object",
                        "properties": {"spec": spec_schema}}}}]}})
    }

    fn object(root: Value) -> DeclType {
        decl::from_schema(&root, false).unwrap_or(DeclType {
            kind: decl::DeclKind::Bool,
            max_elements: 0,
            min_serialized_size: 0,
        })
    }

    #[test]
    fn simple_expressions_cost_what_cel_go_charges() {
        let d = object(json!({"type": "object", "properties": {
            "replicas": {"type": "integer"}, "name": {"type": "string", "maxLength": 10},
            "tags": {"type": "array", "maxItems": 5, "items": {"type": "string", "maxLength": 8}}}}));
        // self (1) + .replicas (1) + call (1)
        assert_eq!(expression_cost("self.replicas > 10", &d), 3);
        // has() is free apart from its operand: self (1)
        assert_eq!(expression_cost("has(self.replicas)", &d), 1);
        // 'abc' == self.name: min(3, 40) * 0.1 -> 1, plus self.name (2)
        assert_eq!(expression_cost("self.name == 'abc'", &d), 3);
        // all(): range (2) + accumulator result (1) + 5 * (step (1 + 2 + 1... ) + cond (2))
        // step = @result (1) && (t.size() > 0: t (1) + size (1) + > (1)) -> 4; cond = 2
        assert_eq!(
            expression_cost("self.tags.all(t, t.size() > 0)", &d),
            2 + 1 + 5 * 6
        );
        // `in` walks the list: 5 + self.name (2) + self.tags (2)
        assert_eq!(expression_cost("self.name in self.tags", &d), 9);
    }

    #[test]
    fn unbounded_list_comprehension_is_refused_and_bounded_accepted() {
        let rule = json!([{"rule": "self.items.all(i, i.contains('x'))"}]);
        let unbounded = crd_with(json!({"type": "object", "x-kubernetes-validations": rule,
            "properties": {"items": {"type": "array", "items": {"type": "string"}}}}));
        let causes = crd_cost_causes(&unbounded, None);
        assert!(
            causes.iter().any(|c| c.field
                == "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule"
                && c.message.starts_with("Forbidden: estimated rule cost exceeds budget by factor of")),
            "{causes:?}"
        );
        let bounded = crd_with(json!({"type": "object", "x-kubernetes-validations": rule,
            "properties": {"items": {"type": "array", "maxItems": 100,
                "items": {"type": "string", "maxLength": 253}}}}));
        assert_eq!(crd_cost_causes(&bounded, None), Vec::new());
    }

    #[test]
    fn unbounded_string_in_unbounded_list_is_refused_under_an_unbounded_list() {
        let item = |bounded: bool| {
            let mut s = json!({"type": "object", "required": ["name"],
                "x-kubernetes-validations": [{"rule": "!has(self.default) || self.default in self.choices"}],
                "properties": {"name": {"type": "string"}, "default": {"type": "string"},
                    "choices": {"type": "array", "items": {"type": "string"}}}});
            if bounded {
                s["properties"]["name"]["maxLength"] = json!(63);
                s["properties"]["default"]["maxLength"] = json!(256);
                s["properties"]["choices"]["maxItems"] = json!(32);
                s["properties"]["choices"]["items"]["maxLength"] = json!(256);
            }
            s
        };
        let unbounded = crd_with(json!({"type": "object", "properties": {
            "env": {"type": "array", "items": item(false)}}}));
        let causes = crd_cost_causes(&unbounded, None);
        let rule = "spec.validation.openAPIV3Schema.properties[spec].properties[env].items.x-kubernetes-validations[0].rule";
        let messages: Vec<(&str, &str)> = causes
            .iter()
            .map(|c| (c.field.as_str(), c.message.as_str()))
            .collect();
        assert!(messages.contains(&(rule, "Forbidden: estimated rule cost exceeds budget by factor of more than 100x (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)")), "{messages:?}");
        assert!(messages.contains(&(rule, "Forbidden: contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema")));
        assert!(messages.contains(&("spec.validation.openAPIV3Schema", "Forbidden: x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema exceeds budget by factor of more than 100x (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)")));
        let bounded = crd_with(json!({"type": "object", "properties": {
            "env": {"type": "array", "maxItems": 64, "items": item(true)}}}));
        assert_eq!(crd_cost_causes(&bounded, None), Vec::new());
    }

    #[test]
    fn small_overruns_print_the_factor_like_the_server() {
        assert!(
            cost_error_message("estimated rule cost", 12_000_000, 10_000_000)
                .starts_with("estimated rule cost exceeds budget by factor of 1.200000x (")
        );
        assert!(
            cost_error_message("estimated rule cost", 32_000_000, 10_000_000)
                .starts_with("estimated rule cost exceeds budget by factor of 3.2x (")
        );
    }

    #[test]
    fn unchanged_schema_keeps_its_per_rule_costs_on_update() {
        let crd = crd_with(json!({"type": "object",
            "x-kubernetes-validations": [{"rule": "self.a.all(x, self.a.all(y, x == y))"}],
            "properties": {"a": {"type": "array", "maxItems": 5000, "items": {"type": "string", "maxLength": 5}}}}));
        let fresh = crd_cost_causes(&crd, None);
        assert!(
            fresh
                .iter()
                .any(|c| c.message.contains("estimated rule cost exceeds")),
            "{fresh:?}"
        );
        let update = crd_cost_causes(&crd, Some(&crd));
        assert!(
            !update
                .iter()
                .any(|c| c.message.contains("estimated rule cost exceeds"))
        );
    }
}
