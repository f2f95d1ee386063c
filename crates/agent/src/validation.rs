//! Validation of names and specs before anything touches the runtime or the disk.

use crate::api::{ServerSpec, Transport};
use std::fmt;

/// Why a name or a spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// The name is not DNS-label-like.
    #[error(
        "invalid name {0:?}: use 1-63 lower-case letters, digits and '-', starting and ending with a letter or digit"
    )]
    InvalidName(String),
    /// A field of the spec is invalid.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
}

/// Largest accepted `resources.memoryBytes` (1 TiB): more is a mistake, and the cap keeps the
/// sums in capacity reports far from overflow.
pub const MAX_MEMORY_BYTES: u64 = 1 << 40;
/// Largest accepted `resources.cpuMillis` (64 cores).
pub const MAX_CPU_MILLIS: u32 = 64_000;

/// Maximum length of a server or volume name.
pub const MAX_NAME_LEN: usize = 63;

/// Checks that a name is DNS-label-like, which also rules out `..`, `/`, `%` and other path tricks.
pub fn validate_name(name: &str) -> Result<(), ValidationError> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(|b| *b != b'-')
        && bytes.last().is_some_and(|b| *b != b'-');
    if ok {
        Ok(())
    } else {
        Err(ValidationError::InvalidName(printable(name)))
    }
}

/// Truncates and escapes a refused value so an error message stays small and safe.
fn printable(value: &str) -> String {
    value.chars().take(80).collect()
}

fn invalid(msg: impl fmt::Display) -> ValidationError {
    ValidationError::InvalidSpec(msg.to_string())
}

/// Checks a spec's fields; pure, so the API answers 400 before any side effect.
pub fn validate_spec(spec: &ServerSpec) -> Result<(), ValidationError> {
    validate_image(&spec.image)?;
    if spec.endpoint_token.expose().len() < 16 {
        return Err(invalid("endpointToken must be at least 16 characters"));
    }
    for var in &spec.env {
        let n = var.name.as_bytes();
        let ok = !n.is_empty()
            && n.len() <= 256
            && n.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
            && !n[0].is_ascii_digit();
        if !ok {
            return Err(invalid(format!(
                "env name {:?} is invalid",
                printable(&var.name)
            )));
        }
        if !var.value.is_empty() && var.secret_value.is_some() {
            return Err(invalid(format!(
                "env {:?} has both value and secretValue",
                var.name
            )));
        }
    }
    match spec.transport {
        Transport::Stdio => {}
        Transport::StreamableHttp | Transport::Sse => {
            if spec.port.is_none_or(|p| p == 0) {
                return Err(invalid("port is required for the HTTP transports"));
            }
        }
    }
    if let Some(path) = &spec.mcp_path
        && (!path.starts_with('/') || path.contains("..") || path.len() > 256)
    {
        return Err(invalid("mcpPath must be an absolute path without '..'"));
    }
    if spec.resources.memory_bytes != 0 && spec.resources.memory_bytes < 16 * 1024 * 1024 {
        return Err(invalid("resources.memoryBytes must be at least 16 MiB"));
    }
    if spec.resources.memory_bytes > MAX_MEMORY_BYTES {
        return Err(invalid("resources.memoryBytes must be at most 1 TiB"));
    }
    if spec.resources.cpu_millis > MAX_CPU_MILLIS {
        return Err(invalid(
            "resources.cpuMillis must be at most 64000 (64 cores)",
        ));
    }
    for volume in &spec.volumes {
        validate_name(&volume.name)?;
        if !volume.mount_path.starts_with('/')
            || volume.mount_path.contains("..")
            || volume.mount_path == "/"
        {
            return Err(invalid(format!(
                "volume {} mountPath must be an absolute path other than / without '..'",
                volume.name
            )));
        }
    }
    for key in spec.labels.keys() {
        if key.starts_with("io.agentopia.") {
            return Err(invalid(format!(
                "label {key:?} uses the reserved prefix io.agentopia."
            )));
        }
    }
    Ok(())
}

/// Checks an image reference loosely: no whitespace or control characters, sane length.
pub fn validate_image(image: &str) -> Result<(), ValidationError> {
    let ok = !image.is_empty()
        && image.len() <= 512
        && !image.starts_with('-')
        && image
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "image {:?} is not a valid reference",
            printable(image)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["a", "time", "mcp-time-1", "0abc", &"a".repeat(63)] {
            assert_eq!(validate_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a_b",
            "..",
            ".",
            "a/b",
            "../etc",
            "a%2Fb",
            "a b",
            "a\0",
            "é",
            &"a".repeat(64),
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn absurd_limits_are_refused_naming_the_field() {
        let mut spec: ServerSpec = serde_json::from_value(serde_json::json!({
            "image": "mcp-test/time:1",
            "transport": "stdio",
            "endpointToken": "0123456789abcdef",
        }))
        .unwrap();
        spec.resources.memory_bytes = MAX_MEMORY_BYTES;
        spec.resources.cpu_millis = MAX_CPU_MILLIS;
        assert_eq!(validate_spec(&spec), Ok(()));
        spec.resources.memory_bytes = u64::MAX;
        let err = validate_spec(&spec).unwrap_err().to_string();
        assert!(err.contains("resources.memoryBytes"), "{err}");
        spec.resources.memory_bytes = 0;
        spec.resources.cpu_millis = u32::MAX;
        let err = validate_spec(&spec).unwrap_err().to_string();
        assert!(err.contains("resources.cpuMillis"), "{err}");
    }

    #[test]
    fn images() {
        assert!(validate_image("mcp-test/time:1").is_ok());
        assert!(validate_image("ghcr.io/a/b@sha256:abc").is_ok());
        assert!(validate_image("a b").is_err());
        assert!(validate_image("--privileged").is_err());
        assert!(validate_image("").is_err());
    }
}
