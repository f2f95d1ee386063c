//! Container image references as the registry sees them: `[host[:port]/]path[:tag][@digest]`,
//! with Docker's defaults (no host means Docker Hub, a one-part Docker Hub path is under
//! `library/`, no tag and no digest means `latest`).
//!
//! Pure: the template checks use it to validate `spec.image`, the registry client
//! (`crate::image_check`) to build manifest URLs.

use std::fmt;

/// The registry host of references that name none.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// Where Docker Hub's distribution API is served (`docker.io` is only its name).
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
/// The tag of references that give neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";
/// The longest repository path the distribution specification allows.
pub const MAX_REPOSITORY_LENGTH: usize = 255;

/// Why a string is not an image reference; the message names the part that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageReferenceError {
    /// Nothing to parse.
    #[error("the image reference is empty")]
    Empty,
    /// The registry host (before the first `/`) is not a host name with an optional port.
    #[error("registry host {0:?} is not a host name with an optional port")]
    InvalidRegistry(String),
    /// A path component has characters or separators the registry refuses.
    #[error(
        "repository path component {0:?} must be lowercase letters and digits separated by '.', '_', '__' or '-'"
    )]
    InvalidPathComponent(String),
    /// The repository path is longer than the registry accepts.
    #[error(
        "repository {repository:?} is {length} characters long; the limit is {MAX_REPOSITORY_LENGTH}"
    )]
    RepositoryTooLong {
        /// The normalised repository path.
        repository: String,
        /// Its length.
        length: usize,
    },
    /// The tag is not `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    #[error(
        "tag {0:?} must start with a letter, digit or '_' and have at most 128 of [A-Za-z0-9_.-]"
    )]
    InvalidTag(String),
    /// The digest is not `sha256:` with 64 hex digits or `sha512:` with 128.
    #[error("digest {0:?} must be sha256:<64 lowercase hex digits> or sha512:<128>")]
    InvalidDigest(String),
}

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageReference {
    /// Registry host as written, with its port (`ghcr.io`, `localhost:5000`); `docker.io` when
    /// the reference names none.
    pub registry: String,
    /// Repository path in the registry (`github/github-mcp-server`, `library/nginx`).
    pub repository: String,
    /// The tag, when given.
    pub tag: Option<String>,
    /// The digest (`sha256:...`), when given.
    pub digest: Option<String>,
}

impl ImageReference {
    /// Parses and normalises `input` (surrounding whitespace is an error, as for the API server).
    pub fn parse(input: &str) -> Result<Self, ImageReferenceError> {
        if input.is_empty() {
            return Err(ImageReferenceError::Empty);
        }
        let (name_and_tag, digest) = match input.split_once('@') {
            Some((name, digest)) => (name, Some(parse_digest(digest)?)),
            None => (input, None),
        };
        // A tag follows the last ':' after the last '/'; a ':' before it is a registry port.
        let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(colon) => {
                let at = last_slash + colon;
                let tag = &name_and_tag[at + 1..];
                if !valid_tag(tag) {
                    return Err(ImageReferenceError::InvalidTag(tag.to_string()));
                }
                (&name_and_tag[..at], Some(tag.to_string()))
            }
            None => (name_and_tag, None),
        };
        let (registry, path) = match name.split_once('/') {
            Some((first, rest)) if looks_like_registry(first) => (first.to_string(), rest),
            _ => (DEFAULT_REGISTRY.to_string(), name),
        };
        if !valid_registry(&registry) {
            return Err(ImageReferenceError::InvalidRegistry(registry));
        }
        for component in path.split('/') {
            if !valid_path_component(component) {
                return Err(ImageReferenceError::InvalidPathComponent(
                    component.to_string(),
                ));
            }
        }
        let registry = if registry == "index.docker.io" {
            DEFAULT_REGISTRY.to_string()
        } else {
            registry
        };
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        if repository.len() > MAX_REPOSITORY_LENGTH {
            return Err(ImageReferenceError::RepositoryTooLong {
                length: repository.len(),
                repository,
            });
        }
        Ok(Self {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// What to ask the registry for: the digest when given, else the tag, else `latest`.
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(DEFAULT_TAG)
    }

    /// The tag a pull resolves: the given one, or `latest` when neither tag nor digest is given.
    pub fn effective_tag(&self) -> Option<&str> {
        match (&self.tag, &self.digest) {
            (Some(tag), _) => Some(tag),
            (None, None) => Some(DEFAULT_TAG),
            (None, Some(_)) => None,
        }
    }

    /// Pinned to content: a digest is given, so the registry cannot serve something else later.
    pub fn is_pinned(&self) -> bool {
        self.digest.is_some()
    }

    /// The host that serves the registry's HTTP API (Docker Hub's differs from its name).
    pub fn api_host(&self) -> &str {
        if self.registry == DEFAULT_REGISTRY {
            DOCKER_HUB_API_HOST
        } else {
            &self.registry
        }
    }
}

impl fmt::Display for ImageReference {
    /// The canonical, fully qualified form (`docker.io/library/nginx:latest`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = self.effective_tag() {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Docker's rule: the first component is a registry when it has a '.' or a ':' or is
/// `localhost` (or has an uppercase letter, which no repository path may).
fn looks_like_registry(first: &str) -> bool {
    first.contains('.')
        || first.contains(':')
        || first == "localhost"
        || first.chars().any(|c| c.is_ascii_uppercase())
}

fn valid_registry(registry: &str) -> bool {
    let (host, port) = match registry.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (registry, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    port_ok && !host.is_empty() && host.len() <= 253 && host.split('.').all(label_ok)
}

/// `[a-z0-9]+` runs separated by one of `.`, `_`, `__` or a run of `-`.
fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    !bytes.is_empty()
        && bytes.len() <= 128
        && word(bytes[0])
        && bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-')
}

fn parse_digest(digest: &str) -> Result<String, ImageReferenceError> {
    let hex_of = |value: &str, len: usize| {
        value.len() == len
            && value
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let ok = match digest.split_once(':') {
        Some(("sha256", hex)) => hex_of(hex, 64),
        Some(("sha512", hex)) => hex_of(hex, 128),
        _ => false,
    };
    if ok {
        Ok(digest.to_string())
    } else {
        Err(ImageReferenceError::InvalidDigest(digest.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// Registry, repository, tag, digest.
    type Parts<T> = (T, T, Option<T>, Option<T>);

    fn parsed(input: &str) -> Parts<String> {
        let r = ImageReference::parse(input).unwrap();
        (r.registry, r.repository, r.tag, r.digest)
    }

    fn s(v: &str) -> String {
        v.to_string()
    }

    #[test]
    fn references_are_normalised_like_docker() {
        let cases: &[(&str, Parts<&str>)] = &[
            ("nginx", ("docker.io", "library/nginx", None, None)),
            (
                "nginx:1.27",
                ("docker.io", "library/nginx", Some("1.27"), None),
            ),
            ("mcp/time", ("docker.io", "mcp/time", None, None)),
            (
                "docker.io/nginx",
                ("docker.io", "library/nginx", None, None),
            ),
            (
                "index.docker.io/mcp/time:v1",
                ("docker.io", "mcp/time", Some("v1"), None),
            ),
            (
                "ghcr.io/github/github-mcp-server:v0.13.0",
                ("ghcr.io", "github/github-mcp-server", Some("v0.13.0"), None),
            ),
            (
                "localhost:5000/team/tool:dev",
                ("localhost:5000", "team/tool", Some("dev"), None),
            ),
            ("localhost/tool", ("localhost", "tool", None, None)),
            (
                "127.0.0.1:5000/a/b/c",
                ("127.0.0.1:5000", "a/b/c", None, None),
            ),
            (
                "a__b/c-d--e/f.g_h",
                ("docker.io", "a__b/c-d--e/f.g_h", None, None),
            ),
        ];
        for (input, (registry, repository, tag, digest)) in cases {
            assert_eq!(
                parsed(input),
                (s(registry), s(repository), tag.map(s), digest.map(s)),
                "{input}"
            );
        }
    }

    #[test]
    fn digests_with_and_without_tags() {
        let with_tag = ImageReference::parse(&format!("ghcr.io/a/b:v1@{DIGEST}")).unwrap();
        assert_eq!(with_tag.tag.as_deref(), Some("v1"));
        assert_eq!(with_tag.manifest_reference(), DIGEST);
        assert!(with_tag.is_pinned());
        let bare = ImageReference::parse(&format!("registry.example:443/a@{DIGEST}")).unwrap();
        assert_eq!(bare.registry, "registry.example:443");
        assert_eq!(bare.tag, None);
        assert_eq!(bare.effective_tag(), None);
        assert_eq!(bare.to_string(), format!("registry.example:443/a@{DIGEST}"));
    }

    #[test]
    fn canonical_form_and_manifest_reference() {
        let r = ImageReference::parse("nginx").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/nginx:latest");
        assert_eq!(r.manifest_reference(), "latest");
        assert_eq!(r.effective_tag(), Some("latest"));
        assert_eq!(r.api_host(), DOCKER_HUB_API_HOST);
        assert!(!r.is_pinned());
        let ghcr = ImageReference::parse("ghcr.io/a/b:1").unwrap();
        assert_eq!(ghcr.api_host(), "ghcr.io");
    }

    #[test]
    fn malformed_references_name_the_wrong_part() {
        use ImageReferenceError as E;
        let cases: &[(&str, ImageReferenceError)] = &[
            ("", E::Empty),
            ("Nginx", E::InvalidPathComponent(s("Nginx"))),
            ("ghcr.io/Team/tool", E::InvalidPathComponent(s("Team"))),
            ("ghcr.io//tool", E::InvalidPathComponent(s(""))),
            ("ghcr.io/a..b", E::InvalidPathComponent(s("a..b"))),
            ("ghcr.io/a___b", E::InvalidPathComponent(s("a___b"))),
            ("ghcr.io/-a", E::InvalidPathComponent(s("-a"))),
            ("ghcr.io/a:", E::InvalidTag(s(""))),
            ("ghcr.io/a:.x", E::InvalidTag(s(".x"))),
            ("ghcr.io/a@sha256:abc", E::InvalidDigest(s("sha256:abc"))),
            ("ghcr.io/a@md5:00", E::InvalidDigest(s("md5:00"))),
            ("bad_host.io/a", E::InvalidRegistry(s("bad_host.io"))),
            ("host:port/a", E::InvalidRegistry(s("host:port"))),
            ("-host.io/a", E::InvalidRegistry(s("-host.io"))),
        ];
        for (input, error) in cases {
            assert_eq!(ImageReference::parse(input).as_ref(), Err(error), "{input}");
        }
        let long = format!("ghcr.io/{}", "a".repeat(256));
        assert!(matches!(
            ImageReference::parse(&long),
            Err(E::RepositoryTooLong { length: 256, .. })
        ));
        let tag = "t".repeat(129);
        assert_eq!(
            ImageReference::parse(&format!("a:{tag}")),
            Err(E::InvalidTag(tag))
        );
    }
}
