//! The custom resources of group `mcp.agentopia.io`, version `v1alpha1`.
//!
//! The field names follow `shared/DESIGN.md` section 2 and are a public contract: add fields,
//! never rename one without a decision record. Everything here is data and pure functions; no I/O.

pub mod bounds;
pub mod conditions;
pub mod deployment;
pub mod droplet;
pub mod image_reference;
pub mod pool;
pub mod quantity;
pub mod reference;
mod schema;
pub mod shared_fields;
pub mod template;
pub mod template_checks;
pub mod template_warnings;
pub mod validation;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use deployment::{MCPDeployment, MCPDeploymentSpec, MCPDeploymentStatus};
pub use droplet::{Droplet, DropletSpec, DropletStatus};
pub use pool::{DropletPool, DropletPoolSpec, DropletPoolStatus};
pub use shared_fields::{ResourceList, ResourceRequests, Weights};
pub use template::{MCPTemplate, MCPTemplateSpec, MCPTemplateStatus};

/// The API group of every custom resource of the operator.
pub const GROUP: &str = "mcp.agentopia.io";
/// The API version served and stored.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as written in manifests.
pub const API_VERSION: &str = "mcp.agentopia.io/v1alpha1";
/// The category that makes `kubectl get mcp` list all four kinds.
pub const CATEGORY: &str = "mcp";
/// Annotation that keeps consolidation from ever moving a deployment.
pub const DO_NOT_DISRUPT_ANNOTATION: &str = "mcp.agentopia.io/do-not-disrupt";

/// Every CRD of the operator, in a stable order (templates, pools, droplets, deployments).
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    vec![
        MCPTemplate::crd(),
        DropletPool::crd(),
        Droplet::crd(),
        MCPDeployment::crd(),
    ]
    .into_iter()
    .map(bounds::bounded)
    .collect()
}

/// The `openAPIV3Schema` of a CRD's first version, as JSON.
pub fn openapi_schema(crd: &CustomResourceDefinition) -> Option<serde_json::Value> {
    crd.spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
}

/// The file name under `crds/` for a CRD: `<plural>.<group>.yaml`.
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}

/// Renders CRDs as YAML documents, each starting with `---`.
pub fn crds_to_yaml(crds: &[CustomResourceDefinition]) -> Result<String, serde_yaml_ng::Error> {
    let mut out = String::new();
    for crd in crds {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(crd)?);
    }
    Ok(out)
}
