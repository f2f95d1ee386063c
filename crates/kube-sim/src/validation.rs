//! Structural-schema handling of custom resources, in the real server's order: prune unknown
//! fields (or report them for `fieldValidation=Strict`), apply defaults, then validate types,
//! required fields, enums, patterns, bounds and formats.

use crate::status::Cause;
use regex::Regex;
use serde_json::{Map, Value};

/// Removes fields the schema does not declare; returns their paths (for Strict/Warn).
pub fn prune(obj: &mut Value, schema: &Value) -> Vec<String> {
    let mut unknown = Vec::new();
    if let Some(m) = obj.as_object_mut() {
        for (k, v) in m.iter_mut() {
            match k.as_str() {
                "apiVersion" | "kind" | "metadata" => {}
                _ => {
                    if let Some(s) = schema.get("properties").and_then(|p| p.get(k)) {
                        prune_node(v, s, k, &mut unknown);
                    }
                }
            }
        }
        let preserve = preserves(schema);
        if !preserve {
            let props = schema.get("properties").and_then(Value::as_object);
            m.retain(|k, _| {
                let keep = matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
                    || props.is_some_and(|p| p.contains_key(k));
                if !keep {
                    unknown.push(k.clone());
                }
                keep
            });
        }
    }
    unknown
}

fn preserves(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}

fn prune_node(v: &mut Value, schema: &Value, path: &str, unknown: &mut Vec<String>) {
    if schema
        .get("x-kubernetes-embedded-resource")
        .and_then(Value::as_bool)
        == Some(true)
        && preserves(schema)
    {
        return;
    }
    match v {
        Value::Object(m) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let mut to_remove = Vec::new();
            for (k, child) in m.iter_mut() {
                let child_path = join(path, k);
                if let Some(s) = props.and_then(|p| p.get(k)) {
                    prune_node(child, s, &child_path, unknown);
                } else if let Some(s) = additional {
                    prune_node(child, s, &child_path, unknown);
                } else if !preserves(schema)
                    && schema.get("additionalProperties").and_then(Value::as_bool) != Some(true)
                {
                    to_remove.push(k.clone());
                    unknown.push(child_path);
                }
            }
            for k in to_remove {
                m.remove(&k);
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_node(item, s, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

/// Applies schema defaults (present parents only, as the real server does).
pub fn apply_defaults(obj: &Value, schema: &Value) -> Value {
    kube_cel::apply_defaults(schema, obj)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// How a value is shown after `Invalid value:` in messages.
pub fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "\"null\"".to_string(),
        Value::Array(_) => "\"array\"".to_string(),
        Value::Object(_) => "\"object\"".to_string(),
    }
}

/// Numbers as Go's `%v` prints a float64 bound: `1` rather than `1.0`.
fn go_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        x.to_string()
    }
}

fn cause(reason: &str, field: &str, message: String) -> Cause {
    Cause {
        reason: reason.to_string(),
        message,
        field: field.to_string(),
    }
}

fn format_ok(format: &str, s: &str) -> bool {
    match format {
        "date-time" | "datetime" => s.parse::<jiff::Timestamp>().is_ok(),
        "date" => s.len() == 10 && s.parse::<jiff::civil::Date>().is_ok(),
        "uuid" => uuid::Uuid::parse_str(s).is_ok(),
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "cidr" => s.split_once('/').is_some_and(|(ip, bits)| {
            ip.parse::<std::net::IpAddr>().is_ok() && bits.parse::<u8>().is_ok()
        }),
        "email" => s
            .split_once('@')
            .is_some_and(|(a, b)| !a.is_empty() && b.contains('.')),
        "uri" => s.split_once(':').is_some_and(|(scheme, _)| {
            !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        }),
        "hostname" => {
            !s.is_empty()
                && s.len() <= 253
                && s.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                })
        }
        "byte" => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(s).is_ok()
        }
        "duration" => Regex::new(r"^(-?[0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$")
            .map(|r| r.is_match(s))
            .unwrap_or(true),
        _ => true,
    }
}

/// Validates a value against an OpenAPI v3 structural schema; returns causes in the real
/// server's wording.
pub fn validate(v: &Value, schema: &Value, path: &str, out: &mut Vec<Cause>) {
    let nullable = schema.get("nullable").and_then(Value::as_bool) == Some(true);
    if v.is_null() && nullable {
        return;
    }
    let int_or_string = schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true);
    if let Some(ty) = schema.get("type").and_then(Value::as_str) {
        let actual = type_name(v);
        let ok = actual == ty || (ty == "number" && actual == "integer");
        if !ok {
            out.push(cause(
                "FieldValueTypeInvalid",
                path,
                format!(
                    "Invalid value: \"{actual}\": {path} in body must be of type {ty}: \"{actual}\""
                ),
            ));
            return;
        }
    } else if int_or_string && !matches!(type_name(v), "integer" | "string") {
        let actual = type_name(v);
        out.push(cause(
            "FieldValueTypeInvalid",
            path,
            format!("Invalid value: \"{actual}\": {path} in body must be of type integer,string: \"{actual}\""),
        ));
        return;
    }
    validate_combinators(v, schema, path, out);
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(render_value).collect();
        out.push(cause(
            "FieldValueNotSupported",
            path,
            format!(
                "Unsupported value: {}: supported values: {}",
                render_value(v),
                list.join(", ")
            ),
        ));
    }
    match v {
        Value::String(s) => validate_string(s, v, schema, path, out),
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            let excl_min = schema.get("exclusiveMinimum").and_then(Value::as_bool) == Some(true);
            let excl_max = schema.get("exclusiveMaximum").and_then(Value::as_bool) == Some(true);
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && (x < min || (excl_min && x == min))
            {
                let rel = if excl_min {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                out.push(cause(
                    "FieldValueInvalid",
                    path,
                    format!(
                        "Invalid value: {n}: {path} in body should be {rel} {}",
                        go_number(min)
                    ),
                ));
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && (x > max || (excl_max && x == max))
            {
                let rel = if excl_max {
                    "less than"
                } else {
                    "less than or equal to"
                };
                out.push(cause(
                    "FieldValueInvalid",
                    path,
                    format!(
                        "Invalid value: {n}: {path} in body should be {rel} {}",
                        go_number(max)
                    ),
                ));
            }
            if let Some(fmt) = schema.get("format").and_then(Value::as_str)
                && fmt == "int32"
                && n.as_i64().is_some_and(|i| i32::try_from(i).is_err())
            {
                out.push(cause(
                    "FieldValueInvalid",
                    path,
                    format!("Invalid value: {n}: {path} in body must be of type int32: \"{n}\""),
                ));
            }
        }
        Value::Array(items) => {
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                out.push(cause(
                    "FieldValueInvalid",
                    path,
                    format!(
                        "Invalid value: {}: {path} in body should have at least {min} items",
                        items.len()
                    ),
                ));
            }
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && (items.len() as u64) > max
            {
                out.push(cause(
                    "FieldValueTooMany",
                    path,
                    format!("Too many: {}: must have at most {max} items", items.len()),
                ));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate(item, item_schema, &format!("{path}[{i}]"), out);
                }
            }
            validate_list_uniqueness(items, schema, path, out);
        }
        Value::Object(m) => validate_object(m, schema, path, out),
        _ => {}
    }
}

/// `allOf`, `anyOf`, `oneOf` and `not` (value validations in structural schemas, often used
/// with `required` for "exactly one of these fields").
fn validate_combinators(v: &Value, schema: &Value, path: &str, out: &mut Vec<Cause>) {
    let shown = format!("Invalid value: \"{}\": {path} in body", type_name(v));
    let branch_causes = |b: &Value| {
        let mut c = Vec::new();
        validate(v, b, path, &mut c);
        c
    };
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for b in all {
            out.extend(branch_causes(b));
        }
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
        let results: Vec<Vec<Cause>> = any.iter().map(branch_causes).collect();
        if !results.is_empty() && results.iter().all(|r| !r.is_empty()) {
            out.push(cause(
                "FieldValueInvalid",
                path,
                format!("{shown} must validate at least one schema (anyOf)"),
            ));
            out.extend(results.into_iter().flatten());
        }
    }
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array) {
        let results: Vec<Vec<Cause>> = one.iter().map(branch_causes).collect();
        let valid = results.iter().filter(|r| r.is_empty()).count();
        if valid == 0 && !results.is_empty() {
            out.push(cause(
                "FieldValueInvalid",
                path,
                format!("{shown} must validate one and only one schema (oneOf). Found none valid"),
            ));
            out.extend(results.into_iter().flatten());
        } else if valid > 1 {
            out.push(cause(
                "FieldValueInvalid",
                path,
                format!("{shown} must validate one and only one schema (oneOf). Found {valid} valid alternatives"),
            ));
        }
    }
    if let Some(not) = schema.get("not")
        && branch_causes(not).is_empty()
    {
        out.push(cause(
            "FieldValueInvalid",
            path,
            format!("{shown} must not validate the schema (not)"),
        ));
    }
}

fn validate_string(s: &str, v: &Value, schema: &Value, path: &str, out: &mut Vec<Cause>) {
    let len = s.chars().count() as u64;
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        out.push(cause(
            "FieldValueInvalid",
            path,
            format!(
                "Invalid value: {}: {path} in body should be at least {min} chars long",
                render_value(v)
            ),
        ));
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        out.push(cause(
            "FieldValueTooLong",
            path,
            format!("Too long: may not be more than {max} bytes"),
        ));
    }
    if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
        match Regex::new(p) {
            Ok(re) if !re.is_match(s) => out.push(cause(
                "FieldValueInvalid",
                path,
                format!(
                    "Invalid value: {}: {path} in body should match '{p}'",
                    render_value(v)
                ),
            )),
            _ => {}
        }
    }
    if let Some(fmt) = schema.get("format").and_then(Value::as_str)
        && !format_ok(fmt, s)
    {
        out.push(cause(
            "FieldValueInvalid",
            path,
            format!(
                "Invalid value: {}: {path} in body must be of type {fmt}: {}",
                render_value(v),
                render_value(v)
            ),
        ));
    }
}

fn validate_list_uniqueness(items: &[Value], schema: &Value, path: &str, out: &mut Vec<Cause>) {
    let list_type = schema.get("x-kubernetes-list-type").and_then(Value::as_str);
    let keys: Vec<&str> = schema
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (i, item) in items.iter().enumerate() {
        let dup = items[..i].iter().any(|prev| match list_type {
            Some("set") => prev == item,
            Some("map") => keys.iter().all(|k| prev.get(k) == item.get(k)),
            _ => false,
        });
        if dup {
            let shown = match list_type {
                Some("map") => {
                    let parts: Vec<String> = keys
                        .iter()
                        .map(|k| format!("\"{k}\":{}", item.get(k).cloned().unwrap_or(Value::Null)))
                        .collect();
                    format!("map[{}]", parts.join(" "))
                }
                _ => render_value(item),
            };
            out.push(cause(
                "FieldValueDuplicate",
                &format!("{path}[{i}]"),
                format!("Duplicate value: {shown}"),
            ));
        }
    }
}

fn validate_object(m: &Map<String, Value>, schema: &Value, path: &str, out: &mut Vec<Cause>) {
    if let Some(req) = schema.get("required").and_then(Value::as_array) {
        for r in req.iter().filter_map(Value::as_str) {
            if !m.contains_key(r) {
                out.push(cause(
                    "FieldValueRequired",
                    &join(path, r),
                    "Required value".to_string(),
                ));
            }
        }
    }
    if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
        && (m.len() as u64) < min
    {
        out.push(cause(
            "FieldValueInvalid",
            path,
            format!(
                "Invalid value: {}: {path} in body should have at least {min} properties",
                m.len()
            ),
        ));
    }
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
        && (m.len() as u64) > max
    {
        out.push(cause(
            "FieldValueTooMany",
            path,
            format!("Too many: {}: must have at most {max} items", m.len()),
        ));
    }
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (k, child) in m {
        if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if let Some(s) = props.and_then(|p| p.get(k)).or(additional) {
            validate(child, s, &join(path, k), out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "required": ["image"],
        "properties": {
            "image": {"type": "string", "minLength": 1},
            "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
            "mode": {"type": "string", "enum": ["a", "b"]},
            "name": {"type": "string", "pattern": "^[a-z]+$"},
            "when": {"type": "string", "format": "date-time"},
            "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        }}}})
    }

    fn causes(spec: Value) -> Vec<Cause> {
        let mut out = Vec::new();
        validate(&json!({"spec": spec}), &schema(), "", &mut out);
        out
    }

    #[test]
    fn reports_like_the_real_server() {
        let c = causes(json!({"replicas": "x"}));
        assert_eq!(c[0].field, "spec.image");
        assert_eq!(c[0].message, "Required value");
        assert_eq!(
            c[1].message,
            "Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""
        );
        let c = causes(
            json!({"image": "i", "replicas": 0, "mode": "c", "name": "A1", "when": "x", "tags": ["a", "b", "c"]}),
        );
        let msgs: Vec<_> = c.iter().map(|c| c.message.as_str()).collect();
        assert!(msgs.contains(
            &"Invalid value: 0: spec.replicas in body should be greater than or equal to 1"
        ));
        assert!(msgs.contains(&"Unsupported value: \"c\": supported values: \"a\", \"b\""));
        assert!(msgs.contains(&"Invalid value: \"A1\": spec.name in body should match '^[a-z]+$'"));
        assert!(msgs.contains(&"Too many: 3: must have at most 2 items"));
        assert!(msgs.iter().any(|m| m.contains("must be of type date-time")));
        assert!(causes(json!({"image": "i"})).is_empty());
    }

    #[test]
    fn one_of_required_means_exactly_one_field() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
            "oneOf": [{"required": ["a"]}, {"required": ["b"]}]});
        let run = |v: Value| {
            let mut out = Vec::new();
            validate(&v, &schema, "spec", &mut out);
            out
        };
        assert!(run(json!({"a": "x"})).is_empty());
        let both = run(json!({"a": "x", "b": "y"}));
        assert!(
            both[0].message.ends_with("Found 2 valid alternatives"),
            "{both:?}"
        );
        let none = run(json!({}));
        assert!(none[0].message.ends_with("Found none valid"));
        assert!(
            none.iter()
                .any(|c| c.field == "spec.a" && c.message == "Required value")
        );
    }

    #[test]
    fn prunes_unknown_but_keeps_preserved() {
        let mut o = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"},
            "spec": {"image": "i", "bogus": 1, "free": {"any": {"thing": 1}}}, "extra": true});
        let unknown = prune(&mut o, &schema());
        assert_eq!(unknown, vec!["spec.bogus".to_string(), "extra".to_string()]);
        assert_eq!(o["spec"]["free"]["any"]["thing"], 1);
        assert!(o.get("extra").is_none());
        let d = apply_defaults(&o, &schema());
        assert_eq!(d["spec"]["replicas"], 1);
    }
}
