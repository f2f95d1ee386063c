//! Builds MCPTemplate objects for tests: [`TemplateBuilder`].

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::{meta, strings};
use crate::api::ResourceRequests;
use crate::api::template::{
    EnvSchema, MCPTemplate, MCPTemplateSpec, MCPTemplateStatus, NetworkPolicy, TemplatePhase,
    Transport, VolumeSpec,
};

impl MCPTemplate {
    /// A builder for a cluster-scoped template named `name`: image
    /// `ghcr.io/example/<name>:1.0`, stdio, 256Mi and 250m, no env, default network.
    ///
    /// ```
    /// use mcp_droplet_operator::api::MCPTemplate;
    ///
    /// let t = MCPTemplate::test("github").streamable_http(8080).secret_env("TOKEN").build();
    /// assert_eq!(t.spec.port, Some(8080));
    /// ```
    pub fn test(name: &str) -> TemplateBuilder {
        TemplateBuilder(MCPTemplate {
            metadata: meta(name, None),
            spec: MCPTemplateSpec {
                display_name: None,
                description: None,
                category: Default::default(),
                official: false,
                image: format!("ghcr.io/example/{name}:1.0"),
                transport: Transport::Stdio,
                port: None,
                path: "/mcp".to_owned(),
                command: Vec::new(),
                args: Vec::new(),
                resources: ResourceRequests {
                    memory: Some("256Mi".to_owned()),
                    cpu: Some("250m".to_owned()),
                    disk: None,
                },
                env: Vec::new(),
                capabilities: Vec::new(),
                network: None,
                volumes: Vec::new(),
                links: None,
            },
            status: None,
        })
    }
}

/// Builds an [`MCPTemplate`]; start with [`MCPTemplate::test`].
#[derive(Debug, Clone)]
#[must_use = "call .build() to get the object"]
pub struct TemplateBuilder(MCPTemplate);

impl TemplateBuilder {
    /// The finished object.
    pub fn build(self) -> MCPTemplate {
        self.0
    }

    /// Sets the image reference.
    pub fn image(mut self, image: &str) -> Self {
        self.0.spec.image = image.to_owned();
        self
    }

    /// Serves streamable HTTP on `port` (at the path, `/mcp` unless set).
    pub fn streamable_http(mut self, port: i32) -> Self {
        self.0.spec.transport = Transport::StreamableHttp;
        self.0.spec.port = Some(port);
        self
    }

    /// Serves legacy SSE on `port`.
    pub fn sse(mut self, port: i32) -> Self {
        self.0.spec.transport = Transport::Sse;
        self.0.spec.port = Some(port);
        self
    }

    /// Sets `spec.port` alone, leaving the transport as it is.
    pub fn port(mut self, port: i32) -> Self {
        self.0.spec.port = Some(port);
        self
    }

    /// Clears `spec.port` (an http template without one is what the schema refuses).
    pub fn no_port(mut self) -> Self {
        self.0.spec.port = None;
        self
    }

    /// Sets the entrypoint override.
    pub fn command(mut self, command: &[&str]) -> Self {
        self.0.spec.command = strings(command);
        self
    }

    /// Sets the arguments to the entrypoint.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.0.spec.args = strings(args);
        self
    }

    /// Sets the HTTP path of the MCP endpoint.
    pub fn path(mut self, path: &str) -> Self {
        self.0.spec.path = path.to_owned();
        self
    }

    /// Sets the memory request, as written in a manifest.
    pub fn memory(mut self, quantity: &str) -> Self {
        self.0.spec.resources.memory = Some(quantity.to_owned());
        self
    }

    /// Sets the CPU request (`250m`, `1`, or a class such as `low`).
    pub fn cpu(mut self, quantity: &str) -> Self {
        self.0.spec.resources.cpu = Some(quantity.to_owned());
        self
    }

    /// Sets the disk request.
    pub fn disk(mut self, quantity: &str) -> Self {
        self.0.spec.resources.disk = Some(quantity.to_owned());
        self
    }

    /// Adds an env schema entry as given.
    pub fn env(mut self, entry: EnvSchema) -> Self {
        self.0.spec.env.push(entry);
        self
    }

    /// Adds an optional, non-secret env variable.
    pub fn optional_env(self, name: &str) -> Self {
        self.env(EnvSchema {
            name: name.to_owned(),
            ..EnvSchema::default()
        })
    }

    /// Adds a required, non-secret env variable.
    pub fn required_env(self, name: &str) -> Self {
        self.env(EnvSchema {
            name: name.to_owned(),
            required: true,
            ..EnvSchema::default()
        })
    }

    /// Adds a required secret env variable (deployments must use a `secretKeyRef`).
    pub fn secret_env(self, name: &str) -> Self {
        self.env(EnvSchema {
            name: name.to_owned(),
            required: true,
            secret: true,
            ..EnvSchema::default()
        })
    }

    /// Adds an env variable with a default, limited to `choices` when not empty.
    pub fn env_default(self, name: &str, default: &str, choices: &[&str]) -> Self {
        self.env(EnvSchema {
            name: name.to_owned(),
            default: Some(default.to_owned()),
            choices: strings(choices),
            ..EnvSchema::default()
        })
    }

    /// Allows outbound connections to these hosts only.
    pub fn allow_hosts(mut self, hosts: &[&str]) -> Self {
        self.0.spec.network = Some(NetworkPolicy {
            allow_hosts: Some(strings(hosts)),
            none: None,
        });
        self
    }

    /// Runs without network.
    pub fn no_network(mut self) -> Self {
        self.0.spec.network = Some(NetworkPolicy {
            allow_hosts: None,
            none: Some(true),
        });
        self
    }

    /// Adds a volume `name` mounted at `mount_path`, of `size` when given.
    pub fn volume(mut self, name: &str, mount_path: &str, size: Option<&str>) -> Self {
        self.0.spec.volumes.push(VolumeSpec {
            name: name.to_owned(),
            mount_path: mount_path.to_owned(),
            size: size.map(str::to_owned),
        });
        self
    }

    fn status(&mut self) -> &mut MCPTemplateStatus {
        self.0.status.get_or_insert_with(MCPTemplateStatus::default)
    }

    /// Marks it `Accepted` by the template controller.
    pub fn accepted(mut self) -> Self {
        self.status().phase = Some(TemplatePhase::Accepted);
        self
    }

    /// Marks it `Rejected` by the template controller.
    pub fn rejected(mut self) -> Self {
        self.status().phase = Some(TemplatePhase::Rejected);
        self
    }

    /// Adds a status condition (see [`crate::api::conditions::condition`]).
    pub fn condition(mut self, condition: Condition) -> Self {
        self.status().conditions.push(condition);
        self
    }
}
