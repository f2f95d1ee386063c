//! `GET /metrics`: host and per-container figures in the OpenMetrics text format, gathered at
//! scrape time.

use crate::agent::Agent;
use crate::api::Phase;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

type F64Gauge = Gauge<f64, AtomicU64>;
type F64Counter = Counter<f64, AtomicU64>;
type Labels = Vec<(String, String)>;

fn gauge(registry: &mut Registry, name: &str, help: &str, value: f64) {
    let g = F64Gauge::default();
    g.set(value);
    registry.register(name, help, g);
}

/// Renders the metrics of the agent.
pub async fn render(agent: &Agent) -> Result<String, std::fmt::Error> {
    let host = crate::host::snapshot(agent.data_dir().path());
    let mut registry = Registry::with_prefix("mcp_agent");
    let cpu = F64Counter::default();
    cpu.inc_by(host.cpu_busy_seconds);
    registry.register(
        "host_cpu_busy_seconds",
        "Busy CPU time of the host since boot",
        cpu,
    );
    gauge(&mut registry, "host_cpus", "Logical CPUs", host.cpus as f64);
    gauge(
        &mut registry,
        "host_memory_total_bytes",
        "Host memory",
        host.memory_total_bytes as f64,
    );
    gauge(
        &mut registry,
        "host_memory_available_bytes",
        "Host memory available",
        host.memory_available_bytes as f64,
    );
    gauge(
        &mut registry,
        "host_disk_total_bytes",
        "Size of the data dir's filesystem",
        host.disk_total_bytes as f64,
    );
    gauge(
        &mut registry,
        "host_disk_available_bytes",
        "Free space in the data dir's filesystem",
        host.disk_available_bytes as f64,
    );
    gauge(
        &mut registry,
        "host_load1",
        "Load average, 1 minute",
        host.load[0],
    );
    gauge(
        &mut registry,
        "host_load5",
        "Load average, 5 minutes",
        host.load[1],
    );
    gauge(
        &mut registry,
        "host_load15",
        "Load average, 15 minutes",
        host.load[2],
    );

    let cpu = Family::<Labels, F64Counter>::default();
    let memory = Family::<Labels, F64Gauge>::default();
    let restarts = Family::<Labels, Counter>::default();
    let running = Family::<Labels, Gauge>::default();
    for (name, container, restart_count, phase) in agent.observed_snapshot().await {
        let labels = vec![("server".to_string(), name)];
        restarts
            .get_or_create(&labels)
            .inc_by(u64::from(restart_count));
        running
            .get_or_create(&labels)
            .set(i64::from(phase == Phase::Running));
        if let Some(id) = container
            && let Ok(usage) = agent.runtime().usage(&id).await
        {
            cpu.get_or_create(&labels).inc_by(usage.cpu_seconds);
            memory.get_or_create(&labels).set(usage.memory_bytes as f64);
        }
    }
    registry.register(
        "container_cpu_seconds",
        "CPU time used by the server's container",
        cpu,
    );
    registry.register(
        "container_memory_bytes",
        "Memory used by the server's container",
        memory,
    );
    registry.register(
        "container_restarts",
        "Restarts of the server's container",
        restarts,
    );
    registry.register(
        "server_running",
        "1 when the server is running and bridged",
        running,
    );

    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}
