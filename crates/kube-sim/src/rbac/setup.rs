//! One call for tests of a component's RBAC: kube-sim with RBAC on, the given documents (a
//! chart's rendered ServiceAccount, Roles, bindings ...) applied by the superuser, and a token
//! for the component's service account.

use crate::{BearerToken, Config, Handle, KubeSim, SimError};
use serde_json::Value;

/// A service account by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountRef {
    /// Namespace of the account.
    pub namespace: String,
    /// Name of the account.
    pub name: String,
}

impl ServiceAccountRef {
    /// `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ServiceAccountRef {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

/// A running kube-sim with RBAC and a service account's token.
pub struct RbacScenario {
    /// The server; `sim.client_config()` is the superuser's.
    pub sim: Handle,
    /// The service account's token (`sim.client_config_with(&token)` for its client).
    pub token: BearerToken,
    /// Who the token authenticates as.
    pub user: super::UserInfo,
}

/// Starts kube-sim with `config` and RBAC, applies `documents` as the superuser (namespaced
/// ones without a namespace go to the account's namespace; missing namespaces are created)
/// and issues a token for `account`. Nothing is recorded for the set-up: the access record
/// starts empty.
pub async fn start_with_rbac(
    config: Config,
    documents: &[Value],
    account: &ServiceAccountRef,
) -> Result<RbacScenario, SimError> {
    let config = match config.rbac {
        Some(_) => config,
        None => config.with_rbac(super::Rbac::new()),
    };
    let sim = KubeSim::start(config).await?;
    sim.apply_documents(documents, &account.namespace, "kube-sim-rbac-setup")?;
    let token = sim.service_account_token(&account.namespace, &account.name)?;
    sim.clear_access_record()?;
    Ok(RbacScenario {
        sim,
        token,
        user: super::UserInfo::service_account(&account.namespace, &account.name),
    })
}

/// Reads a multi-document YAML stream (e.g. `helm template` output): empty documents are
/// skipped and `kind: List` documents contribute their items.
pub fn documents_from_yaml(text: &str) -> Result<Vec<Value>, SimError> {
    let mut out = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let value = <Value as serde::Deserialize>::deserialize(doc)
            .map_err(|e| SimError::Yaml(e.to_string()))?;
        match value {
            Value::Null => {}
            Value::Object(ref o) if o.get("kind").and_then(Value::as_str) == Some("List") => {
                if let Some(items) = o.get("items").and_then(Value::as_array) {
                    out.extend(items.iter().cloned());
                }
            }
            Value::Object(_) => out.push(value),
            other => {
                return Err(SimError::Yaml(format!(
                    "a document is not an object: {other}"
                )));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_streams_become_objects() {
        let docs = documents_from_yaml(
            "---\n# only a comment\n---\nkind: ServiceAccount\napiVersion: v1\nmetadata: {name: op}\n---\nkind: List\napiVersion: v1\nitems:\n- {kind: Role, apiVersion: rbac.authorization.k8s.io/v1, metadata: {name: r}}\n",
        )
        .unwrap();
        let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
        assert_eq!(kinds, ["ServiceAccount", "Role"]);
        assert!(documents_from_yaml("- a\n- b\n").is_err());
    }
}
