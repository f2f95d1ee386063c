//! A package's `transport` to the template's transport, port and path.
//!
//! In package context the transport `url` is a template such as `http://localhost:{port}/mcp`
//! whose `{variables}` name package arguments or environment variables; they are resolved from
//! the defaults and fixed values the document gives. URL templates are not URLs (braces in the
//! authority), so they are split here by hand rather than with a URL parser.

use std::collections::HashMap;

use crate::api::template::Transport;

use super::Issue;
use super::fields::Object;

/// Where an HTTP server listens inside its container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listen {
    /// The MCP transport.
    pub transport: Transport,
    /// The container port (HTTP transports only).
    pub port: Option<i32>,
    /// The endpoint path (HTTP transports only).
    pub path: Option<String>,
}

/// Maps the transport type names of every schema generation to ours.
pub(crate) fn transport_from_name(name: &str) -> Option<Transport> {
    match name {
        "stdio" => Some(Transport::Stdio),
        // `streamable` is the 2025-07 spelling; `http` is what some publishers write.
        "streamable-http" | "streamable_http" | "streamable" | "http" => {
            Some(Transport::StreamableHttp)
        }
        "sse" => Some(Transport::Sse),
        _ => None,
    }
}

/// Reads `transport` of a package. `known` holds the values of variables the document fixes or
/// defaults (argument value hints, environment variables), for `{port}` in the URL.
/// `None` (with issues) when the package cannot be run as a template.
pub(crate) fn listen(
    package: Object<'_>,
    known: &HashMap<String, String>,
    issues: &mut Vec<Issue>,
) -> Option<Listen> {
    let Some((name, value)) = package.get(&["transport"]) else {
        // The 2025-07 schema had no transport on packages: every package was a stdio one.
        issues.push(Issue::new(
            package.field("transport"),
            "no transport given; assumed stdio (packages had no other transport before the transport field existed)",
        ));
        return Some(Listen {
            transport: Transport::Stdio,
            port: None,
            path: None,
        });
    };
    let path = package.field(name);
    let transport_object = Object::of(&path, value, issues)?;
    let type_name = transport_object.string(&["type"], issues);
    let Some(type_name) = type_name else {
        issues.push(Issue::new(
            transport_object.field("type"),
            "missing: expected stdio, streamable-http or sse",
        ));
        return None;
    };
    let Some(transport) = transport_from_name(type_name) else {
        issues.push(Issue::new(
            transport_object.field("type"),
            format!("unknown transport {type_name:?}: expected stdio, streamable-http or sse"),
        ));
        return None;
    };
    for header in transport_object.array(&["headers"], issues) {
        issues.push(Issue::new(
            header.0,
            "HTTP headers are not part of an MCPTemplate; not mapped (clients reach servers through the agent's endpoint)",
        ));
    }
    if transport == Transport::Stdio {
        return Some(Listen {
            transport,
            port: None,
            path: None,
        });
    }
    let Some(url) = transport_object.string(&["url"], issues) else {
        issues.push(Issue::new(
            transport_object.field("url"),
            format!("a {type_name} package needs a url with the port it listens on; none given"),
        ));
        return None;
    };
    let url_field = transport_object.field("url");
    let (port, url_path) = split_url(url, known)
        .map_err(|message| {
            issues.push(Issue::new(&url_field, message));
        })
        .ok()?;
    Some(Listen {
        transport,
        port: Some(port),
        path: Some(if url_path.is_empty() || url_path == "/" {
            default_path(transport).to_string()
        } else {
            url_path
        }),
    })
}

/// The path servers of a transport usually serve when the URL names none.
fn default_path(transport: Transport) -> &'static str {
    match transport {
        Transport::Sse => "/sse",
        Transport::Stdio | Transport::StreamableHttp => "/mcp",
    }
}

/// Splits `scheme://host:port/path?query` into the port and the path, resolving `{variables}`.
pub(crate) fn split_url(
    url: &str,
    known: &HashMap<String, String>,
) -> Result<(i32, String), String> {
    let resolved = substitute(url, known)
        .map_err(|var| format!("{url:?}: the port or path refers to {{{var}}}, which the document gives no value or default for"))?;
    let rest = resolved
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(&resolved);
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let path = path.split(['?', '#']).next().unwrap_or("").to_string();
    let port_text = authority
        .rsplit_once(':')
        .map(|(_, p)| p)
        .filter(|p| !p.contains(']'))
        .ok_or_else(|| format!("{url:?} names no port; the container port cannot be known"))?;
    let port: i32 = port_text
        .parse()
        .ok()
        .filter(|p| (1..=65535).contains(p))
        .ok_or_else(|| format!("{url:?}: {port_text:?} is not a port (1-65535)"))?;
    Ok((port, path))
}

/// Replaces `{name}` with known values; the first unknown name is the error.
pub(crate) fn substitute(text: &str, known: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return Ok(out);
        };
        let name = &after[..close];
        match known.get(name) {
            Some(value) => out.push_str(value),
            None => return Err(name.to_string()),
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn urls_give_port_and_path() {
        let k = known(&[("port", "8931")]);
        assert_eq!(
            split_url("http://localhost:{port}/mcp", &k),
            Ok((8931, "/mcp".into()))
        );
        assert_eq!(
            split_url("http://0.0.0.0:8000/sse?x=1", &k),
            Ok((8000, "/sse".into()))
        );
        assert_eq!(
            split_url("http://127.0.0.1:3001", &k),
            Ok((3001, "".into()))
        );
    }

    #[test]
    fn unknown_variables_and_missing_ports_are_errors() {
        let k = known(&[]);
        let e = split_url("http://localhost:{port}/mcp", &k).unwrap_err();
        assert!(e.contains("{port}"), "{e}");
        let e = split_url("https://example.com/mcp", &k).unwrap_err();
        assert!(e.contains("names no port"), "{e}");
        let e = split_url("http://localhost:99999/mcp", &k).unwrap_err();
        assert!(e.contains("not a port"), "{e}");
    }

    #[test]
    fn transport_names_of_every_schema() {
        assert_eq!(
            transport_from_name("streamable"),
            Some(Transport::StreamableHttp)
        );
        assert_eq!(
            transport_from_name("streamable-http"),
            Some(Transport::StreamableHttp)
        );
        assert_eq!(transport_from_name("sse"), Some(Transport::Sse));
        assert_eq!(transport_from_name("stdio"), Some(Transport::Stdio));
        assert_eq!(transport_from_name("websocket"), None);
    }
}
