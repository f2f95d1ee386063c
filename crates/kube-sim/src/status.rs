//! API errors, rendered as `meta.k8s.io/v1 Status` objects with the reason and code a real
//! API server would use.

use serde_json::{Value, json};

/// One field-level cause inside a `Status` (`details.causes[]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    /// Machine reason, e.g. `FieldValueInvalid`, `FieldValueRequired`, `FieldManagerConflict`.
    pub reason: String,
    /// Human message without the field prefix, e.g. `Invalid value: "object": must be set`.
    pub message: String,
    /// Field path such as `spec.placement`.
    pub field: String,
}

/// Every way a request can fail; each maps to one HTTP code and `Status.reason`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// 404: the object or the resource type does not exist.
    #[error("{message}")]
    NotFound {
        /// Full message.
        message: String,
        /// `details.name`.
        name: String,
        /// `details.group`.
        group: String,
        /// `details.kind` (the resource plural, as the real server does).
        kind: String,
    },
    /// 409 AlreadyExists on create.
    #[error("{message}")]
    AlreadyExists {
        /// Full message.
        message: String,
        /// `details.name`.
        name: String,
        /// `details.group`.
        group: String,
        /// `details.kind`.
        kind: String,
    },
    /// 409 Conflict: stale resourceVersion, failed precondition, or SSA field conflicts.
    #[error("{message}")]
    Conflict {
        /// Full message.
        message: String,
        /// `details.name`.
        name: String,
        /// `details.group`.
        group: String,
        /// `details.kind`.
        kind: String,
        /// Per-field causes (SSA conflicts).
        causes: Vec<Cause>,
    },
    /// 422 Invalid: schema, CEL or metadata validation failed.
    #[error("{message}")]
    Invalid {
        /// Full message.
        message: String,
        /// `details.name`.
        name: String,
        /// `details.group`.
        group: String,
        /// `details.kind` (the Kind).
        kind: String,
        /// Per-field causes.
        causes: Vec<Cause>,
    },
    /// 400 BadRequest: undecodable body, strict-decoding failure, bad selector.
    #[error("{0}")]
    BadRequest(String),
    /// 401 Unauthorized: missing or wrong bearer token.
    #[error("Unauthorized")]
    Unauthorized,
    /// 403 Forbidden: creating in a terminating namespace, or denied by RBAC.
    #[error("{message}")]
    Forbidden {
        /// Full message.
        message: String,
        /// `details.name` (left out when empty, as the server's JSON does).
        name: String,
        /// `details.group` (left out when empty).
        group: String,
        /// `details.kind`, the resource (left out when empty).
        kind: String,
    },
    /// 405 MethodNotAllowed: verb not supported on this resource.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 406 NotAcceptable.
    #[error("{0}")]
    NotAcceptable(String),
    /// 410 Gone: watch resourceVersion older than the kept history.
    #[error("{0}")]
    Gone(String),
    /// 415 UnsupportedMediaType: e.g. strategic merge patch on a custom resource.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 500 InternalError.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// 404 for a named object of a resource.
    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        let qualified = qualified(plural, group);
        ApiError::NotFound {
            message: format!("{qualified} \"{name}\" not found"),
            name: name.to_string(),
            group: group.to_string(),
            kind: plural.to_string(),
        }
    }

    /// 409 AlreadyExists for a named object.
    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        let qualified = qualified(plural, group);
        ApiError::AlreadyExists {
            message: format!("{qualified} \"{name}\" already exists"),
            name: name.to_string(),
            group: group.to_string(),
            kind: plural.to_string(),
        }
    }

    /// 409 Conflict for a stale resourceVersion on update.
    pub fn stale(group: &str, plural: &str, name: &str) -> Self {
        let qualified = qualified(plural, group);
        ApiError::Conflict {
            message: format!(
                "Operation cannot be fulfilled on {qualified} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
            ),
            name: name.to_string(),
            group: group.to_string(),
            kind: plural.to_string(),
            causes: Vec::new(),
        }
    }

    /// 422 Invalid built from field causes, formatted like the real server's message.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let qualified = qualified(kind, group);
        let rendered: Vec<String> = causes
            .iter()
            .map(|c| {
                if c.field.is_empty() {
                    c.message.clone()
                } else {
                    format!("{}: {}", c.field, c.message)
                }
            })
            .collect();
        let detail = if rendered.len() == 1 {
            rendered[0].clone()
        } else {
            format!("[{}]", rendered.join(", "))
        };
        ApiError::Invalid {
            message: format!("{qualified} \"{name}\" is invalid: {detail}"),
            name: name.to_string(),
            group: group.to_string(),
            kind: kind.to_string(),
            causes,
        }
    }

    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        match self {
            ApiError::NotFound { .. } => 404,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } => 409,
            ApiError::Invalid { .. } => 422,
            ApiError::BadRequest(_) => 400,
            ApiError::Unauthorized => 401,
            ApiError::Forbidden { .. } => 403,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::NotAcceptable(_) => 406,
            ApiError::Gone(_) => 410,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::Internal(_) => 500,
        }
    }

    /// The `Status.reason` string.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::Forbidden { .. } => "Forbidden",
            ApiError::MethodNotAllowed(_) => "MethodNotAllowed",
            ApiError::NotAcceptable(_) => "NotAcceptable",
            ApiError::Gone(_) => "Expired",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::Internal(_) => "InternalError",
        }
    }

    /// The full `Status` object.
    pub fn to_status(&self) -> Value {
        let details = match self {
            ApiError::NotFound {
                name, group, kind, ..
            }
            | ApiError::AlreadyExists {
                name, group, kind, ..
            } => Some(json!({"name": name, "group": group, "kind": kind})),
            ApiError::Conflict {
                name,
                group,
                kind,
                causes,
                ..
            }
            | ApiError::Invalid {
                name,
                group,
                kind,
                causes,
                ..
            } => {
                let mut d = json!({"name": name, "group": group, "kind": kind});
                if !causes.is_empty() {
                    d["causes"] = Value::Array(
                        causes
                            .iter()
                            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                            .collect(),
                    );
                }
                Some(d)
            }
            ApiError::Forbidden {
                name, group, kind, ..
            } => {
                let mut d = serde_json::Map::new();
                for (field, value) in [("name", name), ("group", group), ("kind", kind)] {
                    if !value.is_empty() {
                        d.insert(field.to_string(), json!(value));
                    }
                }
                Some(Value::Object(d))
            }
            _ => None,
        };
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        if let Some(d) = details {
            status["details"] = d;
        }
        status
    }
}

/// A `Status` reporting success (used for deletecollection-style answers).
pub fn success_status(details: Value) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

/// `plural.group`, or just `plural` for the core group.
pub fn qualified(plural: &str, group: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_message_matches_real_server_shape() {
        let e = ApiError::invalid(
            "mcp.agentopia.io",
            "MCPDeployment",
            "web",
            vec![Cause {
                reason: "FieldValueInvalid".into(),
                message: "Invalid value: \"object\": bad".into(),
                field: "spec.placement".into(),
            }],
        );
        let s = e.to_status();
        assert_eq!(
            s["message"],
            "MCPDeployment.mcp.agentopia.io \"web\" is invalid: spec.placement: Invalid value: \"object\": bad"
        );
        assert_eq!(s["code"], 422);
        assert_eq!(s["details"]["causes"][0]["field"], "spec.placement");
    }
}
