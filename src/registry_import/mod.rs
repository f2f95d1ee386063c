//! MCP registry `server.json` documents to MCPTemplates (`mcp-droplet-operator catalog import`).
//!
//! Pure mapping, no I/O: text in, templates and per-document issues out. Both naming styles of
//! the registry schema are read (the current camelCase one and the mid-2025 snake_case one), as
//! are registry API responses (`{"server": ..., "_meta": ...}` and `{"servers": [...]}`).
//! OCI packages become images; npm, PyPI and other packages are reported, never wrapped in a
//! guessed runner image. Every template is checked against the CRD schema before it is returned.
//! See docs/catalog.md for the field mapping.

mod fields;
mod mapping;
mod transport;

use std::collections::BTreeSet;

use kube::ResourceExt;
use serde_json::Value;

use crate::api::MCPTemplate;

pub use mapping::{REGISTRY_NAME_ANNOTATION, REGISTRY_VERSION_ANNOTATION, SOURCE_LABEL};

/// Something in a document that could not be mapped (or was mapped with a caveat).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Dotted path of the field in the document, e.g. `packages[0].transport.url`.
    pub field: String,
    /// What happened, for people.
    pub message: String,
}

impl Issue {
    /// An issue at `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Issue {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// The result of one server.json document.
#[derive(Debug, Clone)]
pub struct DocumentOutcome {
    /// Where the document came from: the file, plus `#servers[i]` inside a registry list.
    pub source: String,
    /// The server's registry name (`io.github.owner/name`), when the document has one.
    pub server_name: Option<String>,
    /// The template, when the document could be mapped.
    pub template: Option<MCPTemplate>,
    /// What could not be mapped, or was mapped with a caveat.
    pub issues: Vec<Issue>,
}

/// Maps the documents of one file's text. A file holds one server.json, one registry API
/// response, or a registry list (`servers`); text that is not JSON gives one failed outcome.
pub fn import_text(source: &str, text: &str) -> Vec<DocumentOutcome> {
    let parsed: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return vec![DocumentOutcome {
                source: source.to_string(),
                server_name: None,
                template: None,
                issues: vec![Issue::new("", format!("not valid JSON: {e}"))],
            }];
        }
    };
    match parsed.get("servers") {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| import_value(&format!("{source}#servers[{i}]"), item))
            .collect(),
        _ => vec![import_value(source, &parsed)],
    }
}

/// Maps one document (a server.json, or an API response wrapping one in `server`).
pub fn import_value(source: &str, document: &Value) -> DocumentOutcome {
    let (server, response_meta) = match document.get("server") {
        Some(server @ Value::Object(_)) => (server, document.get("_meta")),
        _ => (document, None),
    };
    let mapped = mapping::map_server(server, response_meta);
    DocumentOutcome {
        source: source.to_string(),
        server_name: mapped.server_name,
        template: mapped.template,
        issues: mapped.issues,
    }
}

/// Makes template names unique across one import: a later template whose short name is taken
/// gets the full registry name (`io-github-owner-name`); if that is taken too it is dropped.
pub fn deduplicate_names(outcomes: &mut [DocumentOutcome]) {
    let mut taken = BTreeSet::new();
    for outcome in outcomes.iter_mut() {
        let Some(template) = outcome.template.as_mut() else {
            continue;
        };
        let name = template.name_any();
        if taken.insert(name.clone()) {
            continue;
        }
        let full = outcome
            .server_name
            .as_deref()
            .map(mapping::full_name)
            .filter(|full| !taken.contains(full));
        match full {
            Some(full) => {
                outcome.issues.push(Issue::new(
                    "name",
                    format!(
                        "template name {name:?} is taken by an earlier document; named {full:?}"
                    ),
                ));
                template.metadata.name = Some(full.clone());
                taken.insert(full);
            }
            None => {
                outcome.issues.push(Issue::new(
                    "name",
                    format!("template name {name:?} is taken by an earlier document; not mapped"),
                ));
                outcome.template = None;
            }
        }
    }
}
