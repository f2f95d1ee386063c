//! The metadata checks the real server applies to every kind: object names (DNS subdomain or
//! label), label keys and values, annotation keys and size, ownerReferences.

use crate::status::Cause;
use serde_json::Value;

pub(super) const DNS_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
pub(super) const DNS_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

pub(super) fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

pub(super) fn is_dns_label(s: &str) -> bool {
    s.len() <= 63 && !s.contains('.') && is_dns_subdomain(s)
}

fn is_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// `[prefix/]name` with a DNS-subdomain prefix and a 63-character name, as for label and
/// annotation keys.
fn is_qualified_name(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && is_label_value(name)
}

const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')";

/// Label, annotation-key and ownerReference checks the real server applies to every kind.
pub(super) fn validate_metadata(obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let meta = obj.get("metadata");
    let invalid = |field: String, message: String| Cause {
        reason: "FieldValueInvalid".into(),
        message,
        field,
    };
    if let Some(labels) = meta
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
    {
        for (k, v) in labels {
            if !is_qualified_name(k) {
                out.push(invalid(
                    "metadata.labels".into(),
                    format!("Invalid value: {k:?}: {QUALIFIED_NAME_MSG}"),
                ));
            }
            let text = v.as_str().unwrap_or_default();
            if !is_label_value(text) {
                out.push(invalid(
                    "metadata.labels".into(),
                    format!("Invalid value: {text:?}: {LABEL_VALUE_MSG}"),
                ));
            }
        }
    }
    if let Some(ann) = meta
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
    {
        let size: usize = ann
            .iter()
            .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
            .sum();
        if size > 262_144 {
            out.push(Cause {
                reason: "FieldValueTooLong".into(),
                message: "Too long: must have at most 262144 bytes".into(),
                field: "metadata.annotations".into(),
            });
        }
        for k in ann.keys().filter(|k| !is_qualified_name(&k.to_lowercase())) {
            out.push(invalid(
                "metadata.annotations".into(),
                format!("Invalid value: {k:?}: {QUALIFIED_NAME_MSG}"),
            ));
        }
    }
    if let Some(refs) = meta
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
    {
        for (i, r) in refs.iter().enumerate() {
            for f in ["apiVersion", "kind", "name", "uid"] {
                if r.get(f).and_then(Value::as_str).is_none_or(str::is_empty) {
                    let field = format!("metadata.ownerReferences[{i}].{f}");
                    let message = if f == "name" || f == "uid" {
                        "Invalid value: \"\": ".to_string()
                            + if f == "uid" {
                                "uid must not be empty"
                            } else {
                                "name must not be empty"
                            }
                    } else {
                        format!("Invalid value: \"\": {f} must not be empty")
                    };
                    out.push(invalid(field, message));
                }
            }
        }
        let controllers = refs
            .iter()
            .filter(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
            .count();
        if controllers > 1 {
            out.push(invalid(
                "metadata.ownerReferences".into(),
                "Invalid value: []v1.OwnerReference: Only one reference can have Controller set to true".into(),
            ));
        }
    }
    out
}
