//! The CEL view of an OpenAPI schema node, with the bounds the API server's cost estimator
//! reads: the most elements a value can have (`maxElements`) and its smallest JSON form
//! (`minSerializedSize`). Mirrors `SchemaDeclType` in k8s.io/apiserver/pkg/cel/common.

use serde_json::Value;
use std::collections::BTreeMap;

/// The largest request the API server accepts (3 MiB); unbounded sizes are estimated from it.
pub const MAX_REQUEST_SIZE_BYTES: i64 = 3 * 1024 * 1024;
const MAX_DURATION_SIZE_JSON: i64 = 32;
const MAX_DATETIME_SIZE_JSON: i64 = 32;
const MIN_DURATION_SIZE_JSON: i64 = 3;
const JSON_DATE_SIZE: i64 = 12;
const MIN_DATETIME_SIZE_JSON: i64 = 21;
const MIN_STRING_SIZE: i64 = 2;
const MIN_BOOL_SIZE: i64 = 4;
const MIN_NUMBER_SIZE: i64 = 1;

/// What kind of CEL value a schema node holds.
#[derive(Debug, Clone, PartialEq)]
pub enum DeclKind {
    /// An object with declared fields.
    Object(BTreeMap<String, DeclType>),
    /// A list of one element type.
    List(Box<DeclType>),
    /// A map from string keys (`additionalProperties`).
    Map(Box<DeclType>),
    /// A string.
    String,
    /// Bytes (`format: byte`).
    Bytes,
    /// An integer.
    Int,
    /// A floating point number.
    Double,
    /// A boolean.
    Bool,
    /// `x-kubernetes-int-or-string`.
    Dyn,
    /// `format: date` or `date-time`.
    Timestamp,
    /// `format: duration`.
    Duration,
}

/// A schema node as the cost estimator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclType {
    /// The value kind.
    pub kind: DeclKind,
    /// Most elements (list items, map entries, string bytes) a value of this node can hold.
    pub max_elements: u64,
    /// Smallest JSON serialisation of a value of this node, in bytes.
    pub min_serialized_size: i64,
}

impl DeclType {
    fn simple(kind: DeclKind, min: i64) -> Self {
        DeclType {
            kind,
            max_elements: 0,
            min_serialized_size: min,
        }
    }

    /// The element type of a list or the value type of a map.
    pub fn elem(&self) -> Option<&DeclType> {
        match &self.kind {
            DeclKind::List(e) | DeclKind::Map(e) => Some(e),
            _ => None,
        }
    }

    /// A declared field of an object.
    pub fn field(&self, name: &str) -> Option<&DeclType> {
        match &self.kind {
            DeclKind::Object(fields) => fields.get(name),
            _ => None,
        }
    }
}

fn non_negative(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn int_at(schema: &Value, key: &str) -> Option<i64> {
    schema.get(key).and_then(Value::as_i64)
}

fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool) == Some(true)
}

/// Unbounded strings are as long as a request allows (less the quotes).
fn max_string_length_per_request(format: Option<&str>) -> u64 {
    match format {
        Some("duration") => non_negative(MAX_DURATION_SIZE_JSON),
        Some("date") => non_negative(JSON_DATE_SIZE),
        Some("date-time") => non_negative(MAX_DATETIME_SIZE_JSON),
        _ => non_negative(MAX_REQUEST_SIZE_BYTES - 2),
    }
}

/// `maxLength` counts code points; one can take 4 bytes, and sizes are reasoned about in bytes.
fn max_elements_from_max_length(max_length: i64) -> u64 {
    non_negative(max_length).saturating_mul(4)
}

/// Converts a structural schema node; `None` when CEL cannot see it (no type, or an
/// array/map whose element CEL cannot see). `resource_root` adds `apiVersion`, `kind` and
/// `metadata.name`/`generateName`, as for the root of a custom resource or an embedded one.
pub fn from_schema(schema: &Value, resource_root: bool) -> Option<DeclType> {
    if flag(schema, "x-kubernetes-int-or-string") {
        let mut dyn_type = DeclType::simple(DeclKind::Dyn, 1);
        dyn_type.max_elements = match int_at(schema, "maxLength") {
            Some(l) => max_elements_from_max_length(l),
            None => max_string_length_per_request(None),
        };
        return Some(dyn_type);
    }
    let ty = schema.get("type").and_then(Value::as_str)?;
    match ty {
        "array" => {
            let items = schema.get("items")?;
            let elem = from_schema(items, flag(items, "x-kubernetes-embedded-resource"))?;
            let max = match int_at(schema, "maxItems") {
                Some(m) => non_negative(m),
                None => non_negative((MAX_REQUEST_SIZE_BYTES - 2) / (elem.min_serialized_size + 1)),
            };
            Some(DeclType {
                kind: DeclKind::List(Box::new(elem)),
                max_elements: max,
                min_serialized_size: 2,
            })
        }
        "object" => {
            if let Some(props) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                let elem = from_schema(props, flag(props, "x-kubernetes-embedded-resource"))?;
                let max = match int_at(schema, "maxProperties") {
                    Some(m) => non_negative(m),
                    None => {
                        non_negative((MAX_REQUEST_SIZE_BYTES - 2) / (elem.min_serialized_size + 6))
                    }
                };
                return Some(DeclType {
                    kind: DeclKind::Map(Box::new(elem)),
                    max_elements: max,
                    min_serialized_size: 2,
                });
            }
            Some(object_type(schema, resource_root))
        }
        "string" => {
            let format = schema.get("format").and_then(Value::as_str);
            let max_length = int_at(schema, "maxLength");
            Some(match format {
                Some("byte") => DeclType {
                    kind: DeclKind::Bytes,
                    max_elements: max_length
                        .map(non_negative)
                        .unwrap_or_else(|| max_string_length_per_request(format)),
                    min_serialized_size: MIN_STRING_SIZE,
                },
                Some("duration") => DeclType {
                    kind: DeclKind::Duration,
                    max_elements: max_string_length_per_request(format),
                    min_serialized_size: MIN_DURATION_SIZE_JSON,
                },
                Some("date") => DeclType {
                    kind: DeclKind::Timestamp,
                    max_elements: max_string_length_per_request(format),
                    min_serialized_size: JSON_DATE_SIZE,
                },
                Some("date-time") => DeclType {
                    kind: DeclKind::Timestamp,
                    max_elements: max_string_length_per_request(format),
                    min_serialized_size: MIN_DATETIME_SIZE_JSON,
                },
                _ => {
                    let enum_max = schema.get("enum").and_then(Value::as_array).map(|values| {
                        values
                            .iter()
                            .filter_map(Value::as_str)
                            .map(|s| s.len() as u64)
                            .max()
                            .unwrap_or(0)
                    });
                    DeclType {
                        kind: DeclKind::String,
                        max_elements: match (max_length, enum_max) {
                            (Some(l), _) => max_elements_from_max_length(l),
                            (None, Some(e)) => e,
                            (None, None) => max_string_length_per_request(None),
                        },
                        min_serialized_size: MIN_STRING_SIZE,
                    }
                }
            })
        }
        "boolean" => Some(DeclType::simple(DeclKind::Bool, MIN_BOOL_SIZE)),
        "number" => Some(DeclType::simple(DeclKind::Double, MIN_NUMBER_SIZE)),
        "integer" => Some(DeclType::simple(DeclKind::Int, MIN_NUMBER_SIZE)),
        _ => None,
    }
}

fn object_type(schema: &Value, resource_root: bool) -> DeclType {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut fields = BTreeMap::new();
    // An object is at least `{}`, plus every required field without a default.
    let mut min_size: i64 = 2;
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            let Some(field) = from_schema(prop, flag(prop, "x-kubernetes-embedded-resource"))
            else {
                continue;
            };
            if required.contains(&name.as_str()) && prop.get("default").is_none() {
                min_size += name.len() as i64 + field.min_serialized_size + 4;
            }
            fields.insert(name.clone(), field);
        }
    }
    if resource_root {
        let plain_string = || DeclType {
            kind: DeclKind::String,
            max_elements: max_string_length_per_request(None),
            min_serialized_size: MIN_STRING_SIZE,
        };
        let complete = ["kind", "apiVersion"]
            .iter()
            .all(|f| matches!(fields.get(*f).map(|t| &t.kind), Some(DeclKind::String)))
            && fields
                .get("metadata")
                .is_some_and(|m| m.field("name").is_some() && m.field("generateName").is_some());
        if !complete {
            fields.insert("kind".into(), plain_string());
            fields.insert("apiVersion".into(), plain_string());
            let mut meta = BTreeMap::new();
            meta.insert("name".into(), plain_string());
            meta.insert("generateName".into(), plain_string());
            fields.insert(
                "metadata".into(),
                DeclType {
                    kind: DeclKind::Object(meta),
                    max_elements: 0,
                    min_serialized_size: 2,
                },
            );
        }
    }
    DeclType {
        kind: DeclKind::Object(fields),
        max_elements: 0,
        min_serialized_size: min_size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unbounded_sizes_come_from_the_request_limit() {
        let list = from_schema(
            &json!({"type": "array", "items": {"type": "string"}}),
            false,
        );
        let list = list.as_ref();
        assert_eq!(
            list.map(|l| l.max_elements),
            Some((3 * 1024 * 1024 - 2) / 3)
        );
        assert_eq!(
            list.and_then(DeclType::elem).map(|e| e.max_elements),
            Some(3 * 1024 * 1024 - 2)
        );
        let bounded = from_schema(
            &json!({"type": "array", "maxItems": 8, "items": {"type": "string", "maxLength": 10}}),
            false,
        );
        let bounded = bounded.as_ref();
        assert_eq!(bounded.map(|l| l.max_elements), Some(8));
        assert_eq!(
            bounded.and_then(DeclType::elem).map(|e| e.max_elements),
            Some(40),
            "maxLength counts code points of up to 4 bytes"
        );
    }

    #[test]
    fn required_fields_without_defaults_count_toward_the_smallest_object() {
        let obj = from_schema(
            &json!({"type": "object", "required": ["name", "port"], "properties": {
                "name": {"type": "string"}, "port": {"type": "integer", "default": 80}}}),
            false,
        );
        // {} + "name": "" -> 2 + 4 + 2 + 4
        assert_eq!(obj.map(|o| o.min_serialized_size), Some(12));
    }
}
