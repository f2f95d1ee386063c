//! The Docker Engine runtime (bollard over the local unix socket).
//!
//! Hardening of every container: memory and CPU limits, a pids limit, `unless-stopped` restart
//! policy, `no-new-privileges`, all capabilities dropped, a read-only root filesystem with a
//! tmpfs `/tmp` (unless the spec opts out), only named volumes (never a host path, so the engine
//! socket cannot be mounted), and never the host network. The metadata service
//! (169.254.169.254) is blocked for containers by a `DOCKER-USER` iptables rule that the droplet
//! bootstrap installs (see docs/agent.md).

use super::{
    ContainerInfo, ContainerRuntime, ContainerUsage, LABEL_DROPLET, LABEL_MANAGED, LABEL_SERVER,
    LABEL_SPEC_HASH, McpConnection, ProgressSink, RuntimeError,
};
use crate::api::{NetworkPolicy, PullCredentials, PullProgress, ServerSpec, Transport};
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::container::LogOutput;
use bollard::models::{
    ContainerCreateBody, HostConfig, Mount, MountType, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, CreateImageOptions, ListContainersOptions,
    LogsOptions, RemoveContainerOptions, StatsOptions,
};
use futures::StreamExt;
use futures::future::BoxFuture;
use std::collections::HashMap;

/// The Docker runtime.
#[derive(Debug, Clone)]
pub struct DockerRuntime {
    docker: Docker,
    droplet: String,
}

/// The droplet name restricted to the characters Docker allows in object names.
fn docker_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The Docker volume of a server's named volume. The parts are joined with `_`, which none of
/// them can contain (server and volume names are DNS labels, and `docker_safe` maps `_` away),
/// so distinct (droplet, server, volume) tuples never share a volume: with `-` server `a-b`
/// volume `c` and server `a` volume `b-c` did.
pub fn volume_name(droplet: &str, server: &str, volume: &str) -> String {
    format!("mcp_{}_{server}_{volume}", docker_safe(droplet))
}

fn engine(e: bollard::errors::Error) -> RuntimeError {
    RuntimeError::Engine(e.to_string())
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

impl DockerRuntime {
    /// Connects to the engine at the local unix socket (or `DOCKER_HOST=unix://...`); the
    /// runtime manages only containers labelled with `droplet`.
    pub fn connect(droplet: &str) -> Result<Self, RuntimeError> {
        let docker = Docker::connect_with_unix_defaults().map_err(engine)?;
        Ok(Self {
            docker,
            droplet: droplet.to_string(),
        })
    }

    /// Connects to the engine at an explicit unix socket path.
    pub fn connect_to(socket: &str, droplet: &str) -> Result<Self, RuntimeError> {
        let docker =
            Docker::connect_with_unix(socket, 120, bollard::API_DEFAULT_VERSION).map_err(engine)?;
        Ok(Self {
            docker,
            droplet: droplet.to_string(),
        })
    }

    /// Checks that the engine answers.
    pub async fn ping(&self) -> Result<(), RuntimeError> {
        self.docker.ping().await.map(|_| ()).map_err(engine)
    }

    /// The container configuration for a spec; pure, so the hardening is unit tested.
    pub fn container_config(
        droplet: &str,
        server: &str,
        spec: &ServerSpec,
        spec_hash: &str,
    ) -> ContainerCreateBody {
        let mut labels: HashMap<String, String> = spec
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.insert(LABEL_MANAGED.into(), "true".into());
        labels.insert(LABEL_SERVER.into(), server.into());
        labels.insert(LABEL_DROPLET.into(), droplet.into());
        labels.insert(LABEL_SPEC_HASH.into(), spec_hash.into());
        let env: Vec<String> = spec
            .env
            .iter()
            .map(|v| {
                let value = v
                    .secret_value
                    .as_ref()
                    .map(|s| s.expose().to_string())
                    .unwrap_or_else(|| v.value.clone());
                format!("{}={}", v.name, value)
            })
            .collect();
        let mut mounts: Vec<Mount> = spec
            .volumes
            .iter()
            .map(|v| Mount {
                target: Some(v.mount_path.clone()),
                source: Some(volume_name(droplet, server, &v.name)),
                typ: Some(MountType::VOLUME),
                read_only: Some(v.read_only),
                ..Default::default()
            })
            .collect();
        if spec.read_only_root_filesystem {
            mounts.push(Mount {
                target: Some("/tmp".into()),
                typ: Some(MountType::TMPFS),
                ..Default::default()
            });
        }
        let stdio = spec.transport == Transport::Stdio;
        let memory = i64::try_from(spec.memory_limit()).unwrap_or(i64::MAX);
        let host_config = HostConfig {
            memory: Some(memory),
            memory_swap: Some(memory),
            nano_cpus: Some(i64::from(spec.cpu_limit_millis()) * 1_000_000),
            pids_limit: Some(512),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            security_opt: Some(vec!["no-new-privileges:true".into()]),
            cap_drop: Some(vec!["ALL".into()]),
            readonly_rootfs: Some(spec.read_only_root_filesystem),
            privileged: Some(false),
            network_mode: Some(
                match spec.network_policy {
                    NetworkPolicy::Egress => "bridge",
                    NetworkPolicy::None => "none",
                }
                .into(),
            ),
            mounts: Some(mounts),
            init: Some(true),
            ..Default::default()
        };
        ContainerCreateBody {
            image: Some(spec.image.clone()),
            env: Some(env),
            entrypoint: (!spec.command.is_empty()).then(|| spec.command.clone()),
            cmd: (!spec.args.is_empty()).then(|| spec.args.clone()),
            labels: Some(labels),
            // stdio servers keep stdin open so the agent can attach to it at any time.
            open_stdin: Some(stdio),
            stdin_once: Some(false),
            attach_stdin: Some(stdio),
            attach_stdout: Some(stdio),
            tty: Some(false),
            exposed_ports: spec.port.map(|p| vec![format!("{p}/tcp")]),
            host_config: Some(host_config),
            ..Default::default()
        }
    }

    fn info_from_inspect(
        id: &str,
        inspect: bollard::models::ContainerInspectResponse,
    ) -> ContainerInfo {
        let labels = inspect
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        let state = inspect.state.unwrap_or_default();
        let incarnation = state.started_at.clone().unwrap_or_default();
        let running = state.running.unwrap_or(false);
        let exit_reason = (!running).then(|| {
            let mut reason = format!("exited with code {}", state.exit_code.unwrap_or(-1));
            if state.oom_killed.unwrap_or(false) {
                reason.push_str(" (out of memory)");
            }
            if let Some(err) = state.error.filter(|e| !e.is_empty()) {
                reason.push_str(": ");
                reason.push_str(&err);
            }
            reason
        });
        ContainerInfo {
            id: inspect.id.unwrap_or_else(|| id.to_string()),
            server: labels.get(LABEL_SERVER).cloned().unwrap_or_default(),
            spec_hash: labels.get(LABEL_SPEC_HASH).cloned().unwrap_or_default(),
            running,
            restart_count: u32::try_from(inspect.restart_count.unwrap_or(0)).unwrap_or(0),
            exit_reason,
            incarnation,
        }
    }
}

impl ContainerRuntime for DockerRuntime {
    fn kind(&self) -> &'static str {
        "docker"
    }

    fn has_image<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<bool, RuntimeError>> {
        Box::pin(async move {
            match self.docker.inspect_image(image).await {
                Ok(_) => Ok(true),
                Err(e) if is_not_found(&e) => Ok(false),
                Err(e) => Err(engine(e)),
            }
        })
    }

    fn pull<'a>(
        &'a self,
        image: &'a str,
        credentials: Option<&'a PullCredentials>,
        progress: ProgressSink,
    ) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(async move {
            let credentials = credentials.map(|c| DockerCredentials {
                username: Some(c.username.clone()),
                password: Some(c.password.expose().to_string()),
                serveraddress: c.server_address.clone(),
                ..Default::default()
            });
            let options = CreateImageOptions {
                from_image: Some(image.to_string()),
                ..Default::default()
            };
            let mut layers: HashMap<String, (u64, u64)> = HashMap::new();
            let mut stream = self.docker.create_image(Some(options), None, credentials);
            while let Some(item) = stream.next().await {
                let info = item.map_err(|e| RuntimeError::Pull {
                    image: image.to_string(),
                    message: e.to_string(),
                })?;
                if let Some(detail) = info.error_detail {
                    return Err(RuntimeError::Pull {
                        image: image.to_string(),
                        message: detail.message.unwrap_or_default(),
                    });
                }
                if let (Some(id), Some(detail)) = (info.id, info.progress_detail) {
                    let current = u64::try_from(detail.current.unwrap_or(0)).unwrap_or(0);
                    let total = u64::try_from(detail.total.unwrap_or(0)).unwrap_or(0);
                    layers.insert(id, (current, total));
                    let (current_bytes, total_bytes) = layers
                        .values()
                        .fold((0, 0), |(c, t), (lc, lt)| (c + lc, t + lt));
                    progress(PullProgress {
                        current_bytes,
                        total_bytes,
                    });
                }
            }
            Ok(())
        })
    }

    fn create_and_start<'a>(
        &'a self,
        server: &'a str,
        spec: &'a ServerSpec,
        spec_hash: &'a str,
    ) -> BoxFuture<'a, Result<String, RuntimeError>> {
        Box::pin(async move {
            let name = format!(
                "mcp-{}-{server}-{}",
                docker_safe(&self.droplet),
                &spec_hash[..spec_hash.len().min(12)]
            );
            // A leftover of an interrupted create would make the name clash.
            let _ = self
                .docker
                .remove_container(
                    &name,
                    Some(RemoveContainerOptions {
                        force: true,
                        ..Default::default()
                    }),
                )
                .await;
            let created = self
                .docker
                .create_container(
                    Some(CreateContainerOptions {
                        name: Some(name),
                        ..Default::default()
                    }),
                    Self::container_config(&self.droplet, server, spec, spec_hash),
                )
                .await
                .map_err(|e| RuntimeError::Start(e.to_string()))?;
            if let Err(e) = self.docker.start_container(&created.id, None).await {
                let _ = self.remove(&created.id).await;
                return Err(RuntimeError::Start(e.to_string()));
            }
            Ok(created.id)
        })
    }

    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(async move {
            match self
                .docker
                .remove_container(
                    id,
                    Some(RemoveContainerOptions {
                        force: true,
                        v: false,
                        ..Default::default()
                    }),
                )
                .await
            {
                Ok(()) => Ok(()),
                Err(e) if is_not_found(&e) => Ok(()),
                Err(e) => Err(engine(e)),
            }
        })
    }

    fn list_managed(&self) -> BoxFuture<'_, Result<Vec<ContainerInfo>, RuntimeError>> {
        Box::pin(async move {
            let mut filters = HashMap::new();
            filters.insert(
                "label".to_string(),
                vec![
                    format!("{LABEL_MANAGED}=true"),
                    format!("{LABEL_DROPLET}={}", self.droplet),
                ],
            );
            let summaries = self
                .docker
                .list_containers(Some(ListContainersOptions {
                    all: true,
                    filters: Some(filters),
                    ..Default::default()
                }))
                .await
                .map_err(engine)?;
            let mut out = Vec::new();
            for summary in summaries {
                let Some(id) = summary.id else { continue };
                match self.inspect(&id).await {
                    Ok(info) => out.push(info),
                    Err(RuntimeError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(out)
        })
    }

    fn inspect<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<ContainerInfo, RuntimeError>> {
        Box::pin(async move {
            match self.docker.inspect_container(id, None).await {
                Ok(inspect) => Ok(Self::info_from_inspect(id, inspect)),
                Err(e) if is_not_found(&e) => Err(RuntimeError::NotFound(id.to_string())),
                Err(e) => Err(engine(e)),
            }
        })
    }

    fn logs<'a>(
        &'a self,
        id: &'a str,
        tail: usize,
        include_stdout: bool,
    ) -> BoxFuture<'a, Result<Vec<String>, RuntimeError>> {
        Box::pin(async move {
            let mut stream = self.docker.logs(
                id,
                Some(LogsOptions {
                    stdout: include_stdout,
                    stderr: true,
                    tail: tail.to_string(),
                    ..Default::default()
                }),
            );
            let mut text = String::new();
            while let Some(item) = stream.next().await {
                match item {
                    Ok(output) => text.push_str(&String::from_utf8_lossy(&output.into_bytes())),
                    Err(e) if is_not_found(&e) => {
                        return Err(RuntimeError::NotFound(id.to_string()));
                    }
                    Err(e) => return Err(engine(e)),
                }
            }
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            let skip = lines.len().saturating_sub(tail);
            Ok(lines[skip..].to_vec())
        })
    }

    fn connect<'a>(
        &'a self,
        id: &'a str,
        spec: &'a ServerSpec,
    ) -> BoxFuture<'a, Result<McpConnection, RuntimeError>> {
        Box::pin(async move {
            match spec.transport {
                Transport::Stdio => {
                    let attached = self
                        .docker
                        .attach_container(
                            id,
                            Some(AttachContainerOptions {
                                stdin: true,
                                stdout: true,
                                stderr: false,
                                stream: true,
                                logs: false,
                                ..Default::default()
                            }),
                        )
                        .await
                        .map_err(engine)?;
                    let stdout = attached.output.filter_map(|item| async move {
                        match item {
                            Ok(LogOutput::StdOut { message }) => Some(Ok(message)),
                            Ok(_) => None,
                            Err(e) => Some(Err(std::io::Error::other(e.to_string()))),
                        }
                    });
                    let reader = tokio_util::io::StreamReader::new(Box::pin(stdout));
                    Ok(McpConnection::Stdio {
                        reader: Box::pin(reader),
                        writer: attached.input,
                    })
                }
                Transport::StreamableHttp | Transport::Sse => {
                    let inspect = self
                        .docker
                        .inspect_container(id, None)
                        .await
                        .map_err(engine)?;
                    let ip = inspect
                        .network_settings
                        .and_then(|n| n.networks)
                        .and_then(|n| n.get("bridge").and_then(|b| b.ip_address.clone()))
                        .filter(|ip| !ip.is_empty())
                        .ok_or_else(|| {
                            RuntimeError::Engine("container has no bridge address".into())
                        })?;
                    let port = spec.port.unwrap_or(80);
                    let sse = spec.transport == Transport::Sse;
                    let path = spec
                        .mcp_path
                        .clone()
                        .unwrap_or_else(|| if sse { "/sse" } else { "/mcp" }.into());
                    let url = format!("http://{ip}:{port}{path}");
                    Ok(if sse {
                        McpConnection::Sse { url }
                    } else {
                        McpConnection::Http { url }
                    })
                }
            }
        })
    }

    fn usage<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<ContainerUsage, RuntimeError>> {
        Box::pin(async move {
            let mut stream = self.docker.stats(
                id,
                Some(StatsOptions {
                    stream: false,
                    one_shot: true,
                }),
            );
            match stream.next().await {
                Some(Ok(stats)) => Ok(ContainerUsage {
                    cpu_seconds: stats
                        .cpu_stats
                        .and_then(|c| c.cpu_usage)
                        .and_then(|u| u.total_usage)
                        .map(|ns| ns as f64 / 1e9)
                        .unwrap_or(0.0),
                    memory_bytes: stats.memory_stats.and_then(|m| m.usage).unwrap_or(0),
                }),
                Some(Err(e)) if is_not_found(&e) => Err(RuntimeError::NotFound(id.to_string())),
                Some(Err(e)) => Err(engine(e)),
                None => Err(RuntimeError::NotFound(id.to_string())),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Resources, Volume};
    use crate::secret::Secret;

    #[test]
    fn containers_are_hardened() {
        let spec = ServerSpec {
            image: "mcp-test/time:1".into(),
            pull_credentials: None,
            env: vec![],
            command: vec![],
            args: vec![],
            transport: Transport::Stdio,
            port: None,
            mcp_path: None,
            resources: Resources {
                memory_bytes: 256 * 1024 * 1024,
                cpu_millis: 250,
            },
            volumes: vec![Volume {
                name: "data".into(),
                mount_path: "/data".into(),
                read_only: false,
            }],
            labels: Default::default(),
            network_policy: NetworkPolicy::None,
            read_only_root_filesystem: true,
            endpoint_token: Secret::new("0123456789abcdef"),
        };
        let body = DockerRuntime::container_config("d1", "time", &spec, "abc");
        let host = body.host_config.unwrap();
        assert_eq!(host.memory, Some(256 * 1024 * 1024));
        assert_eq!(host.nano_cpus, Some(250_000_000));
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(
            host.security_opt,
            Some(vec!["no-new-privileges:true".to_string()])
        );
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        assert_eq!(host.privileged, Some(false));
        assert!(host.binds.is_none());
        let mounts = host.mounts.unwrap();
        assert!(mounts.iter().all(|m| m.typ != Some(MountType::BIND)));
        assert_eq!(mounts[0].source.as_deref(), Some("mcp_d1_time_data"));
        let labels = body.labels.unwrap();
        assert_eq!(labels.get(LABEL_SERVER).map(String::as_str), Some("time"));
        assert_eq!(body.open_stdin, Some(true));
    }

    #[test]
    fn volume_names_of_distinct_tuples_never_collide() {
        assert_ne!(volume_name("d1", "a-b", "c"), volume_name("d1", "a", "b-c"));
        assert_ne!(volume_name("d-1", "a", "c"), volume_name("d", "1-a", "c"));
        assert_ne!(volume_name("d_1", "a", "c"), volume_name("d", "1_a", "c"));
        // Every part is a DNS label, so splitting at `_` recovers the tuple.
        let name = volume_name("my.droplet-1", "a-b", "c");
        assert_eq!(name, "mcp_my.droplet-1_a-b_c");
        assert_eq!(name.split('_').count(), 4);
    }
}
