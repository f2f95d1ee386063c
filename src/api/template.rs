//! `MCPTemplate`: a cluster-wide catalogue entry describing one MCP server image and how to run it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::shared_fields::ResourceRequests;

/// The schema pattern of a container image reference: `[registry[:port]/]path[:tag][@sha256:digest]`.
pub const IMAGE_PATTERN: &str = r"^([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*(:[0-9]+)?/)?[a-z0-9]+([._-]+[a-z0-9]+)*(/[a-z0-9]+([._-]+[a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$";

/// Catalogue entry: image, transport, port, resource tier, env schema, capabilities, links.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "mcp.agentopia.io",
    version = "v1alpha1",
    kind = "MCPTemplate",
    plural = "mcptemplates",
    singular = "mcptemplate",
    shortname = "mcpt",
    category = "mcp",
    status = "MCPTemplateStatus",
    cel,
    doc = "A catalogue entry describing one MCP server image and how to run it.",
    printcolumn(
        name = "Display Name",
        type_ = "string",
        json_path = ".spec.displayName"
    ),
    printcolumn(name = "Image", type_ = "string", json_path = ".spec.image"),
    printcolumn(name = "Transport", type_ = "string", json_path = ".spec.transport"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.transport == 'stdio' || has(self.port)")
    .message("streamable-http and sse templates need a port: set spec.port to the port the server listens on"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.network) || !has(self.network.none) || !self.network.none || !has(self.network.allowHosts) || size(self.network.allowHosts) == 0")
    .message("network.none and network.allowHosts are exclusive: a server without network cannot be allowed hosts"))]
pub struct MCPTemplateSpec {
    /// Name shown to people, e.g. `GitHub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub display_name: Option<String>,
    /// One or two sentences on what the server does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub description: Option<String>,
    /// Catalogue category.
    #[serde(default)]
    pub category: Category,
    /// Published by the service's own vendor.
    #[serde(default)]
    pub official: bool,
    /// Container image, e.g. `ghcr.io/github/github-mcp-server:v0.13.0`.
    #[schemars(regex(pattern = IMAGE_PATTERN), length(min = 1, max = 512))]
    pub image: String,
    /// How clients speak MCP to the server.
    #[serde(default)]
    pub transport: Transport,
    /// Port the server listens on in its container (needed for streamable-http and sse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// HTTP path of the MCP endpoint inside the container (streamable-http and sse).
    #[serde(default = "default_path")]
    #[schemars(regex(pattern = r"^/[A-Za-z0-9._~/-]*$"))]
    pub path: String,
    /// Entrypoint override.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments to the entrypoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Resources a deployment of this template asks for, unless it overrides them.
    #[serde(default)]
    pub resources: ResourceRequests,
    /// Environment the server understands: which are required, secret, defaulted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub env: Vec<EnvSchema>,
    /// MCP capabilities the server offers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<Capability>,
    /// Network access of the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkPolicy>,
    /// Persistent volumes on the droplet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeSpec>,
    /// Source and documentation links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<Links>,
}

fn default_path() -> String {
    "/mcp".to_string()
}

/// Catalogue category of a template.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Calendars, documents, notes.
    Productivity,
    /// Code hosting, CI, issue trackers.
    Development,
    /// Databases, search, analytics.
    Data,
    /// Chat and mail.
    Communication,
    /// Anything else.
    #[default]
    Other,
}

/// MCP transport of a server.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum Transport {
    /// JSON-RPC over the container's stdin/stdout (the agent bridges it to streamable HTTP).
    #[default]
    #[serde(rename = "stdio")]
    Stdio,
    /// MCP streamable HTTP.
    #[serde(rename = "streamable-http")]
    StreamableHttp,
    /// The legacy HTTP+SSE transport.
    #[serde(rename = "sse")]
    Sse,
}

impl Transport {
    /// The wire name (`stdio`, `streamable-http`, `sse`).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Stdio => "stdio",
            Transport::StreamableHttp => "streamable-http",
            Transport::Sse => "sse",
        }
    }
}

/// An MCP capability.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    /// `tools/*`.
    Tools,
    /// `resources/*`.
    Resources,
    /// `prompts/*`.
    Prompts,
    /// `logging/*`.
    Logging,
    /// `completion/*`.
    Completions,
}

/// One environment variable a template understands.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!(has(self.secret) && self.secret && has(self.default))")
    .message("a secret env variable cannot have a default: secrets come from a Secret reference"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.default) || !has(self.choices) || size(self.choices) == 0 || self.default in self.choices")
    .message("the default must be one of the choices"))]
pub struct EnvSchema {
    /// Variable name.
    #[schemars(
        regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"),
        length(min = 1, max = 253)
    )]
    pub name: String,
    /// What the variable is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A deployment must set it (or the default applies).
    #[serde(default)]
    pub required: bool,
    /// The value is a secret: deployments must give it through `valueFrom.secretKeyRef`.
    #[serde(default)]
    pub secret: bool,
    /// Value used when a deployment does not set one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Allowed values; empty means any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
}

/// Network access of a server's container.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicy {
    /// Hosts the container may reach. Not enforced yet: the droplet agent gives the container
    /// full egress (a `Warning` condition and `plan` say so); set `none` to cut it off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_hosts: Option<Vec<String>>,
    /// No network at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub none: Option<bool>,
}

/// A persistent volume on the droplet.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSpec {
    /// Volume name, a DNS label.
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
        length(min = 1, max = 63)
    )]
    pub name: String,
    /// Absolute path in the container.
    #[schemars(regex(pattern = r"^/.*$"))]
    pub mount_path: String,
    /// Size, e.g. `1Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = super::quantity::QUANTITY_PATTERN))]
    pub size: Option<String>,
}

/// Links for people.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Links {
    /// Source repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs: Option<String>,
}

/// Whether the template was accepted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum TemplatePhase {
    /// Valid; deployments may use it.
    Accepted,
    /// Invalid; see the conditions.
    Rejected,
}

/// Observed state of a template: validation results.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MCPTemplateStatus {
    /// Accepted or Rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<TemplatePhase>,
    /// The generation these results are for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// kstatus `Ready`/`Reconciling`/`Stalled`, the checks (`ImageReference`, `Transport`,
    /// `EnvSchema`, `Resources`, `ImageAvailable`) and `Warning`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::schema::conditions")]
    pub conditions: Vec<Condition>,
}
