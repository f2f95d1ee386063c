//! One server.json document to one MCPTemplate: the field mapping of docs/catalog.md.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::api::MCPTemplate;
use crate::api::template::{EnvSchema, Links, MCPTemplateSpec};
use crate::api::validation::validate_manifest;

use super::Issue;
use super::fields::Object;
use super::transport;

/// Annotation with the server's registry name, e.g. `io.github.github/github-mcp-server`.
pub const REGISTRY_NAME_ANNOTATION: &str = "mcp.agentopia.io/registry-name";
/// Annotation with the server's registry version.
pub const REGISTRY_VERSION_ANNOTATION: &str = "mcp.agentopia.io/registry-version";
/// Label on every imported template, value `mcp-registry`.
pub const SOURCE_LABEL: &str = "mcp.agentopia.io/source";

/// The key of the registry's own metadata in `_meta`.
const OFFICIAL_META: &str = "io.modelcontextprotocol.registry/official";
/// Longest description kept; the CRDs bound strings and a registry description is short anyway.
const MAX_DESCRIPTION: usize = 1000;
/// Longest display name the CRD accepts.
const MAX_DISPLAY_NAME: usize = 128;

/// What mapping one server gave.
pub(crate) struct Mapped {
    pub server_name: Option<String>,
    pub template: Option<MCPTemplate>,
    pub issues: Vec<Issue>,
}

/// Maps a server document; `response_meta` is the `_meta` of a registry API response around it.
pub(crate) fn map_server(document: &Value, response_meta: Option<&Value>) -> Mapped {
    let mut issues = Vec::new();
    let mut mapped = Mapped {
        server_name: None,
        template: None,
        issues: Vec::new(),
    };
    let Some(server) = Object::of("", document, &mut issues) else {
        mapped.issues = issues;
        return mapped;
    };
    let server_name = server.string(&["name"], &mut issues).map(str::to_string);
    mapped.server_name = server_name.clone();
    mapped.template = map_object(server, server_name, response_meta, &mut issues);
    mapped.issues = issues;
    mapped
}

fn map_object(
    server: Object<'_>,
    server_name: Option<String>,
    response_meta: Option<&Value>,
    issues: &mut Vec<Issue>,
) -> Option<MCPTemplate> {
    let Some(server_name) = server_name else {
        issues.push(Issue::new(
            "name",
            "missing: every server.json names its server",
        ));
        return None;
    };
    if !is_current(server, response_meta, issues) {
        return None;
    }
    let version = server
        .string(&["version"], issues)
        .map(str::to_string)
        .or_else(|| {
            let (_, detail) = server.get(&["version_detail", "versionDetail"])?;
            detail.get("version")?.as_str().map(str::to_string)
        });
    let Some(name) = short_name(&server_name) else {
        issues.push(Issue::new(
            "name",
            format!("{server_name:?} gives no usable Kubernetes name"),
        ));
        return None;
    };

    let packages = server.array(&["packages"], issues);
    let mut chosen = None;
    for (path, package) in &packages {
        let Some(package) = Object::of(path, package, issues) else {
            continue;
        };
        let registry = package
            .string(&["registryType", "registry_type", "registry_name"], issues)
            .unwrap_or("");
        let identifier = package
            .string(&["identifier", "name"], issues)
            .unwrap_or("");
        if chosen.is_none() && matches!(registry, "oci" | "docker") && !identifier.is_empty() {
            chosen = Some(package);
        } else if chosen.is_some() {
            issues.push(Issue::new(
                path.clone(),
                format!("{registry} package {identifier:?} not used: the first oci package is"),
            ));
        } else {
            issues.push(Issue::new(
                path.clone(),
                format!(
                    "{} package {identifier:?} is not a container image; a runner image is not guessed for it",
                    if registry.is_empty() { "untyped" } else { registry }
                ),
            ));
        }
    }
    for (path, _) in server.array(&["remotes"], issues) {
        issues.push(Issue::new(
            path,
            "a remote (hosted) endpoint is not deployable on droplets; not mapped",
        ));
    }
    let Some(package) = chosen else {
        issues.push(Issue::new(
            "packages",
            "no oci package: nothing the operator can run (publish a container image, or write the template by hand)",
        ));
        return None;
    };

    let image = image_of(package, issues)?;
    let known = known_values(package);
    let listen = transport::listen(package, &known, issues)?;
    let args = package_args(package, &known, issues);
    for (path, _) in package.array(&["runtimeArguments", "runtime_arguments"], issues) {
        issues.push(Issue::new(
            path,
            "runtime (docker) flags are not mapped; volumes, ports and env are template fields",
        ));
    }
    let env = env_schema(package, &known, issues);

    let title = server.string(&["title"], issues);
    let description = server.string(&["description"], issues).map(|d| {
        if d.chars().count() > MAX_DESCRIPTION {
            issues.push(Issue::new(
                "description",
                format!("longer than {MAX_DESCRIPTION} characters; cut"),
            ));
            d.chars().take(MAX_DESCRIPTION).collect()
        } else {
            d.to_string()
        }
    });
    let display_name = title
        .map(str::to_string)
        .unwrap_or_else(|| name.clone())
        .chars()
        .take(MAX_DISPLAY_NAME)
        .collect::<String>();
    let links = links_of(server, issues);

    let spec = MCPTemplateSpec {
        display_name: Some(display_name),
        description,
        category: Default::default(),
        official: false,
        image,
        transport: listen.transport,
        port: listen.port,
        path: listen.path.unwrap_or_else(|| "/mcp".to_string()),
        command: Vec::new(),
        args,
        resources: Default::default(),
        env,
        capabilities: Vec::new(),
        network: None,
        volumes: Vec::new(),
        links,
    };
    let mut template = MCPTemplate::new(&name, spec);
    let mut annotations = BTreeMap::from([(REGISTRY_NAME_ANNOTATION.to_string(), server_name)]);
    if let Some(version) = version {
        annotations.insert(REGISTRY_VERSION_ANNOTATION.to_string(), version);
    }
    template.metadata.annotations = Some(annotations);
    template.metadata.labels = Some(BTreeMap::from([(
        SOURCE_LABEL.to_string(),
        "mcp-registry".to_string(),
    )]));

    // The CRD is the judge: a template the API server would reject is not handed out.
    let as_json = serde_json::to_value(&template).ok()?;
    if let Err(errors) = validate_manifest(&as_json, None) {
        for e in errors {
            issues.push(Issue::new(
                format!("(template) {}", e.field),
                format!("the mapped template is invalid: {}", e.message),
            ));
        }
        return None;
    }
    Some(template)
}

/// Whether the document is a current version: `status` (old schema) and the registry's
/// `_meta` (`status: active`, `isLatest`) decide; absent fields count as current.
fn is_current(server: Object<'_>, response_meta: Option<&Value>, issues: &mut Vec<Issue>) -> bool {
    if let Some(status) = server.string(&["status"], issues)
        && status != "active"
    {
        issues.push(Issue::new(
            "status",
            format!("the server is {status}; not imported"),
        ));
        return false;
    }
    let official = response_meta
        .and_then(|m| m.get(OFFICIAL_META))
        .or_else(|| {
            server
                .members
                .get("_meta")
                .and_then(|m| m.get(OFFICIAL_META))
        });
    let Some(official) = official else {
        return true;
    };
    let field = format!("_meta.{OFFICIAL_META}");
    if let Some(status) = official.get("status").and_then(Value::as_str)
        && status != "active"
    {
        issues.push(Issue::new(
            format!("{field}.status"),
            format!("the registry marks this version {status}; not imported"),
        ));
        return false;
    }
    let latest = official
        .get("isLatest")
        .or_else(|| official.get("is_latest"))
        .and_then(Value::as_bool);
    if latest == Some(false) {
        issues.push(Issue::new(
            format!("{field}.isLatest"),
            "not the latest version of this server; not imported",
        ));
        return false;
    }
    true
}

/// The image of an OCI package: the identifier, prefixed with the registry host when the
/// identifier names none, tagged with the package version when it carries no tag or digest.
fn image_of(package: Object<'_>, issues: &mut Vec<Issue>) -> Option<String> {
    let identifier = package.string(&["identifier", "name"], issues)?.trim();
    let version = package.string(&["version"], issues).map(str::trim);
    let base = package
        .string(&["registryBaseUrl", "registry_base_url"], issues)
        .map(|u| {
            u.trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_end_matches('/')
        });
    let first = identifier.split('/').next().unwrap_or("");
    let has_host = identifier.contains('/')
        && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut image = match base {
        Some(host) if !has_host && !host.is_empty() => format!("{host}/{identifier}"),
        _ => identifier.to_string(),
    };
    let last = image.rsplit('/').next().unwrap_or("");
    let tagged = last.contains(':') || image.contains('@');
    match version {
        _ if tagged => {}
        Some(v) if !v.is_empty() && v != "latest" => image = format!("{image}:{v}"),
        _ => issues.push(Issue::new(
            format!("{}.version", package.path),
            "no version and no tag: the image floats with `latest`; pin a tag or digest in the template",
        )),
    }
    Some(image)
}

/// Values the document fixes or defaults for `{variables}`: argument value hints and names,
/// environment variables.
fn known_values(package: Object<'_>) -> HashMap<String, String> {
    // Type problems of these fields are reported once, where the fields are mapped.
    let mut quiet = Vec::new();
    let mut known = HashMap::new();
    for names in [
        &["packageArguments", "package_arguments"][..],
        &["environmentVariables", "environment_variables"][..],
    ] {
        for (path, item) in package.array(names, &mut quiet) {
            let Some(item) = Object::of(&path, item, &mut quiet) else {
                continue;
            };
            let value = item
                .string(&["value"], &mut quiet)
                .or_else(|| item.string(&["default"], &mut quiet));
            let Some(value) = value.filter(|v| !v.contains('{')) else {
                continue;
            };
            for key in [
                item.string(&["valueHint", "value_hint"], &mut quiet),
                item.string(&["name"], &mut quiet)
                    .map(|n| n.trim_start_matches('-')),
            ]
            .into_iter()
            .flatten()
            {
                known
                    .entry(key.to_string())
                    .or_insert_with(|| value.to_string());
            }
        }
    }
    known
}

/// The `variables` of an input merged over the document-wide known values.
fn variables_of(
    input: Object<'_>,
    known: &HashMap<String, String>,
    issues: &mut Vec<Issue>,
) -> HashMap<String, String> {
    let mut vars = known.clone();
    if let Some((name, Value::Object(map))) = input.get(&["variables"]) {
        for (key, value) in map {
            let path = format!("{}.{key}", input.field(name));
            let Some(var) = Object::of(&path, value, issues) else {
                continue;
            };
            if let Some(v) = var
                .string(&["value"], issues)
                .or_else(|| var.string(&["default"], issues))
            {
                vars.insert(key.clone(), v.to_string());
            }
        }
    }
    vars
}

/// `packageArguments` to container args: fixed values and defaults are kept; arguments that need
/// a value only a user can give are reported.
fn package_args(
    package: Object<'_>,
    known: &HashMap<String, String>,
    issues: &mut Vec<Issue>,
) -> Vec<String> {
    let mut args = Vec::new();
    for (path, item) in package.array(&["packageArguments", "package_arguments"], issues) {
        let Some(arg) = Object::of(&path, item, issues) else {
            continue;
        };
        let kind = arg.string(&["type"], issues).unwrap_or("");
        let required = arg.flag(&["isRequired", "is_required"], issues);
        let secret = arg.flag(&["isSecret", "is_secret"], issues);
        let vars = variables_of(arg, known, issues);
        let raw = arg
            .string(&["value"], issues)
            .or_else(|| arg.string(&["default"], issues));
        let value = match raw.map(|r| transport::substitute(r, &vars)) {
            Some(Ok(v)) => Some(v),
            Some(Err(var)) => {
                issues.push(Issue::new(
                    &path,
                    format!("refers to {{{var}}}, which has no value or default; left out"),
                ));
                continue;
            }
            None => None,
        };
        if secret && value.is_some() {
            issues.push(Issue::new(
                &path,
                "a secret argument is never copied into a template; left out",
            ));
            continue;
        }
        let label = arg
            .string(&["name"], issues)
            .or_else(|| arg.string(&["valueHint", "value_hint"], issues))
            .unwrap_or("argument")
            .to_string();
        match (kind, value) {
            ("positional", Some(v)) => args.push(v),
            ("named", Some(v)) => {
                args.push(label);
                args.push(v);
            }
            ("positional" | "named", None) => issues.push(Issue::new(
                &path,
                format!(
                    "{label} has no value or default{}: left out; add it to spec.args or the deployment's args",
                    if required { " but is required" } else { "" }
                ),
            )),
            (other, _) => issues.push(Issue::new(
                format!("{path}.type"),
                format!("unknown argument type {other:?}: expected positional or named; left out"),
            )),
        }
    }
    args
}

/// `environmentVariables` to the template's env schema.
fn env_schema(
    package: Object<'_>,
    known: &HashMap<String, String>,
    issues: &mut Vec<Issue>,
) -> Vec<EnvSchema> {
    let mut env: Vec<EnvSchema> = Vec::new();
    for (path, item) in package.array(&["environmentVariables", "environment_variables"], issues) {
        let Some(var) = Object::of(&path, item, issues) else {
            continue;
        };
        let Some(name) = var.string(&["name"], issues) else {
            issues.push(Issue::new(format!("{path}.name"), "missing; left out"));
            continue;
        };
        if !is_env_name(name) {
            issues.push(Issue::new(
                format!("{path}.name"),
                format!("{name:?} is not a valid variable name; left out"),
            ));
            continue;
        }
        if env.iter().any(|e| e.name == name) {
            issues.push(Issue::new(
                format!("{path}.name"),
                format!("{name} is listed twice; the first is kept"),
            ));
            continue;
        }
        let secret = var.flag(&["isSecret", "is_secret"], issues);
        let mut required = var.flag(&["isRequired", "is_required"], issues);
        let mut choices = var.strings(&["choices"], issues);
        let mut default = var.string(&["default"], issues).map(str::to_string);
        let vars = variables_of(var, known, issues);
        if let Some(fixed) = var.string(&["value"], issues) {
            match (secret, transport::substitute(fixed, &vars)) {
                (true, _) => {
                    issues.push(Issue::new(
                        format!("{path}.value"),
                        "a fixed secret value is never copied into a template; the deployment must give it",
                    ));
                    required = true;
                }
                (false, Ok(value)) => {
                    // A fixed value is not for users to change: the default and only choice.
                    default = Some(value.clone());
                    choices = vec![value];
                }
                (false, Err(unknown)) => {
                    issues.push(Issue::new(
                        format!("{path}.value"),
                        format!("{fixed:?} refers to {{{unknown}}}, which has no value or default; the deployment must set {name}"),
                    ));
                    required = true;
                }
            }
        }
        if secret && default.is_some() {
            issues.push(Issue::new(
                format!("{path}.default"),
                "a secret cannot have a default (secrets come from a Secret); dropped",
            ));
            default = None;
        }
        if let Some(d) = &default
            && !choices.is_empty()
            && !choices.contains(d)
        {
            issues.push(Issue::new(
                format!("{path}.default"),
                format!("{d:?} is not one of the choices; dropped"),
            ));
            default = None;
        }
        let format = var.string(&["format"], issues).unwrap_or("string");
        match format {
            "boolean" if choices.is_empty() => {
                choices = vec!["true".to_string(), "false".to_string()];
            }
            "number" | "filepath" => issues.push(Issue::new(
                format!("{path}.format"),
                format!(
                    "format {format} has no equivalent in the env schema; kept as a plain string{}",
                    if format == "filepath" {
                        " (a file may need a volume)"
                    } else {
                        ""
                    }
                ),
            )),
            _ => {}
        }
        let description = var
            .string(&["description"], issues)
            .map(|d| d.chars().take(MAX_DESCRIPTION).collect());
        env.push(EnvSchema {
            name: name.to_string(),
            description,
            required,
            secret,
            default,
            choices,
        });
    }
    env
}

/// `repository.url` (with `subfolder`) and `websiteUrl`.
fn links_of(server: Object<'_>, issues: &mut Vec<Issue>) -> Option<Links> {
    let source = match server.get(&["repository"]) {
        Some((_, repo @ Value::Object(_))) => {
            let repo = Object::of("repository", repo, issues)?;
            let url = repo
                .string(&["url"], issues)
                .map(|u| u.trim_end_matches('/'));
            let sub = repo.string(&["subfolder"], issues);
            url.map(|u| match sub {
                Some(s) if !s.is_empty() && u.contains("github.com") => {
                    format!("{u}/tree/HEAD/{}", s.trim_matches('/'))
                }
                _ => u.to_string(),
            })
        }
        _ => None,
    };
    let docs = server
        .string(&["websiteUrl", "website_url"], issues)
        .map(str::to_string);
    if source.is_none() {
        issues.push(Issue::new(
            "repository.url",
            "missing: the template gets no source link",
        ));
    }
    if source.is_none() && docs.is_none() {
        return None;
    }
    Some(Links { source, docs })
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A DNS label from free text: lowercase, other characters as `-`, at most 63 characters.
fn dns_label(text: &str) -> Option<String> {
    let mut out = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed: String = out.trim_matches('-').chars().take(63).collect();
    let trimmed = trimmed.trim_end_matches('-').to_string();
    (!trimmed.is_empty()).then_some(trimmed)
}

/// The template name of a registry name: the part after the namespace
/// (`io.github.github/github-mcp-server` gives `github-mcp-server`).
pub(crate) fn short_name(server_name: &str) -> Option<String> {
    dns_label(server_name.rsplit('/').next().unwrap_or(server_name))
}

/// The whole registry name as a template name, for when the short one is taken.
pub(crate) fn full_name(server_name: &str) -> String {
    dns_label(server_name).unwrap_or_else(|| "imported".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_dns_labels() {
        assert_eq!(
            short_name("io.github.github/github-mcp-server").as_deref(),
            Some("github-mcp-server")
        );
        assert_eq!(
            short_name("io.x/My_Server.V2").as_deref(),
            Some("my-server-v2")
        );
        assert_eq!(short_name("io.x/___"), None);
        assert_eq!(full_name("io.github.a/b"), "io-github-a-b");
        assert_eq!(
            short_name(&format!("a/{}", "x".repeat(80))).unwrap().len(),
            63
        );
    }

    #[test]
    fn env_names() {
        assert!(is_env_name("GITHUB_TOKEN"));
        assert!(is_env_name("_X1"));
        assert!(!is_env_name("1X"));
        assert!(!is_env_name("A-B"));
        assert!(!is_env_name(""));
    }
}
