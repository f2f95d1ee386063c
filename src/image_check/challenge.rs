//! The `WWW-Authenticate` challenge of a registry that wants a token: `Bearer realm="...",
//! service="...",scope="..."` (the distribution token authentication flow). Pure parsing.

/// A bearer challenge: where to get an anonymous token, and for what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerChallenge {
    /// The token endpoint (absolute http or https URL).
    pub realm: String,
    /// The `service` parameter to pass back, when given.
    pub service: Option<String>,
    /// The `scope` parameter to pass back, when given.
    pub scope: Option<String>,
}

/// What a `WWW-Authenticate` header asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// A bearer token from a realm: the anonymous flow can try it.
    Bearer(BearerChallenge),
    /// Any other scheme (`Basic`), or a bearer challenge without a usable realm: credentials
    /// would be needed, which the check never has.
    Other(String),
}

/// Parses one `WWW-Authenticate` value.
pub fn parse_challenge(header: &str) -> Challenge {
    let header = header.trim();
    let (scheme, rest) = header
        .split_once(char::is_whitespace)
        .unwrap_or((header, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Challenge::Other(scheme.to_string());
    }
    let mut realm = None;
    let mut service = None;
    let mut scope = None;
    for (key, value) in auth_params(rest) {
        match key.to_ascii_lowercase().as_str() {
            "realm" => realm = Some(value),
            "service" => service = Some(value),
            "scope" => scope = Some(value),
            _ => {}
        }
    }
    match realm {
        Some(realm) if realm.starts_with("https://") || realm.starts_with("http://") => {
            Challenge::Bearer(BearerChallenge {
                realm,
                service,
                scope,
            })
        }
        _ => Challenge::Other("Bearer without an http(s) realm".to_string()),
    }
}

/// `key=value` pairs separated by commas; values may be quoted (with `\` escapes) and contain
/// commas, as scopes do (`repository:a/b:pull,push`).
fn auth_params(input: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut chars = input.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('=') {
            continue;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => {
                        if let Some(escaped) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    other => value.push(other),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        params.push((key.trim().to_string(), value.trim().to_string()));
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(realm: &str, service: Option<&str>, scope: Option<&str>) -> Challenge {
        Challenge::Bearer(BearerChallenge {
            realm: realm.to_string(),
            service: service.map(str::to_string),
            scope: scope.map(str::to_string),
        })
    }

    #[test]
    fn challenges_of_real_registries_and_odd_spellings() {
        let cases: &[(&str, Challenge)] = &[
            (
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
                bearer(
                    "https://auth.docker.io/token",
                    Some("registry.docker.io"),
                    Some("repository:library/nginx:pull"),
                ),
            ),
            (
                r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull,push""#,
                bearer(
                    "https://ghcr.io/token",
                    Some("ghcr.io"),
                    Some("repository:a/b:pull,push"),
                ),
            ),
            (
                r#"bearer   service="s", realm="http://127.0.0.1:9/token""#,
                bearer("http://127.0.0.1:9/token", Some("s"), None),
            ),
            (
                "Bearer realm=https://r.example/t,service=r.example",
                bearer("https://r.example/t", Some("r.example"), None),
            ),
            (
                r#"Bearer realm="https://r.example/t\"x""#,
                bearer("https://r.example/t\"x", None, None),
            ),
            (
                r#"Basic realm="Registry""#,
                Challenge::Other("Basic".into()),
            ),
            (
                r#"Bearer realm="/token""#,
                Challenge::Other("Bearer without an http(s) realm".into()),
            ),
            (
                "Bearer",
                Challenge::Other("Bearer without an http(s) realm".into()),
            ),
        ];
        for (header, expected) in cases {
            assert_eq!(&parse_challenge(header), expected, "{header}");
        }
    }
}
