//! Label selectors (equality and set-based) and field selectors.

use serde_json::Value;

/// Errors parsing a selector string.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SelectorError {
    /// The selector text could not be parsed.
    #[error("unable to parse requirement: {0}")]
    Parse(String),
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; all requirements must hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LabelSelector {
    reqs: Vec<Requirement>,
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c)
            }
            ')' => {
                depth -= 1;
                cur.push(c)
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

fn parse_set(rest: &str, whole: &str) -> Result<Vec<String>, SelectorError> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| SelectorError::Parse(whole.to_string()))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (x,y),f notin (z),g,!h`.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let p = part.as_str();
            if let Some(key) = p.strip_prefix('!') {
                reqs.push(Requirement::NotExists(key.trim().to_string()));
            } else if let Some((k, v)) = p.split_once("!=") {
                reqs.push(Requirement::NotEquals(
                    k.trim().to_string(),
                    v.trim().to_string(),
                ));
            } else if let Some((k, v)) = p.split_once("==") {
                reqs.push(Requirement::Equals(
                    k.trim().to_string(),
                    v.trim().to_string(),
                ));
            } else if let Some((k, v)) = p.split_once('=') {
                reqs.push(Requirement::Equals(
                    k.trim().to_string(),
                    v.trim().to_string(),
                ));
            } else if let Some((k, rest)) = p.split_once(" notin ") {
                reqs.push(Requirement::NotIn(
                    k.trim().to_string(),
                    parse_set(rest, p)?,
                ));
            } else if let Some((k, rest)) = p.split_once(" in ") {
                reqs.push(Requirement::In(k.trim().to_string(), parse_set(rest, p)?));
            } else if p.contains(' ') || p.contains('(') {
                return Err(SelectorError::Parse(p.to_string()));
            } else {
                reqs.push(Requirement::Exists(p.to_string()));
            }
        }
        Ok(LabelSelector { reqs })
    }

    /// Reads a `metav1.LabelSelector` object (`matchLabels`, `matchExpressions` with In,
    /// NotIn, Exists, DoesNotExist). An empty selector matches everything.
    pub fn from_object(selector: &Value) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in labels {
                reqs.push(Requirement::Equals(
                    k.clone(),
                    v.as_str().unwrap_or_default().to_string(),
                ));
            }
        }
        for e in selector
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = e
                .get("key")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let values: Vec<String> = e
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
            reqs.push(match e.get("operator").and_then(Value::as_str) {
                Some("In") => Requirement::In(key, values),
                Some("NotIn") => Requirement::NotIn(key, values),
                Some("Exists") => Requirement::Exists(key),
                Some("DoesNotExist") => Requirement::NotExists(key),
                other => {
                    return Err(SelectorError::Parse(format!(
                        "{key}: unknown operator {}",
                        other.unwrap_or("(none)")
                    )));
                }
            });
        }
        Ok(LabelSelector { reqs })
    }

    /// Whether the object's labels satisfy every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        // Plain lookups, not `pointer`, which allocates per token: this runs per object per list.
        let labels = obj.get("metadata").and_then(|m| m.get("labels"));
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.reqs.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        })
    }
}

/// A parsed field selector: `field=value` / `field!=value` terms, all of which must hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldSelector {
    terms: Vec<(String, bool, String)>,
}

/// Field paths the server accepts in field selectors for any kind.
const GENERIC_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];

/// Extra field paths accepted for core/v1 events (used by `kubectl describe`).
const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
    "regarding.kind",
    "regarding.name",
    "regarding.namespace",
    "regarding.uid",
];

impl FieldSelector {
    /// Parses and checks the fields are supported for this kind (`allow_event_fields` for events;
    /// `extra` for CRD selectableFields).
    pub fn parse(
        s: &str,
        allow_event_fields: bool,
        extra: &[String],
    ) -> Result<Self, SelectorError> {
        let mut terms = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, neg, v) = if let Some((k, v)) = part.split_once("!=") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, false, v)
            } else {
                return Err(SelectorError::Parse(part.to_string()));
            };
            let k = k.trim();
            let known = GENERIC_FIELDS.contains(&k)
                || (allow_event_fields && EVENT_FIELDS.contains(&k))
                || extra.iter().any(|e| e.trim_start_matches('.') == k);
            if !known {
                return Err(SelectorError::Parse(format!(
                    "field label not supported: {k}"
                )));
            }
            terms.push((k.to_string(), neg, v.trim().to_string()));
        }
        Ok(FieldSelector { terms })
    }

    /// Whether the object satisfies every term.
    pub fn matches(&self, obj: &Value) -> bool {
        self.terms.iter().all(|(k, neg, v)| {
            let found = k.split('.').try_fold(obj, |v, part| v.get(part));
            let actual = match found {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (actual == *v) != *neg
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "labels": labels}})
    }

    #[test]
    fn set_based_selectors() {
        let o = obj(json!({"app": "web", "tier": "front"}));
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&o);
        assert!(m("app=web"));
        assert!(m("app==web,tier!=back"));
        assert!(m("app in (web, api)"));
        assert!(!m("app notin (web)"));
        assert!(m("tier"));
        assert!(m("!missing"));
        assert!(!m("!app"));
        assert!(m("app in (web),tier in (front,back)"));
        assert!(m(""));
    }

    #[test]
    fn field_selectors() {
        let o = obj(json!({}));
        assert!(
            FieldSelector::parse("metadata.name=a", false, &[])
                .unwrap()
                .matches(&o)
        );
        assert!(
            !FieldSelector::parse("metadata.namespace!=ns", false, &[])
                .unwrap()
                .matches(&o)
        );
        assert!(FieldSelector::parse("spec.x=1", false, &[]).is_err());
        let ev = json!({"involvedObject": {"name": "w", "kind": "Widget"}});
        let fs = FieldSelector::parse(
            "involvedObject.name=w,involvedObject.kind=Widget",
            true,
            &[],
        )
        .unwrap();
        assert!(fs.matches(&ev));
    }
}
