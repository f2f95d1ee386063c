//! Host figures from /proc and statvfs: capacity for `/v1/info`, usage for `/metrics`.

use std::path::Path;

/// A snapshot of the host.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HostSnapshot {
    /// Logical CPUs.
    pub cpus: u64,
    /// CPU time spent busy (not idle or iowait) since boot, seconds.
    pub cpu_busy_seconds: f64,
    /// Total memory, bytes.
    pub memory_total_bytes: u64,
    /// Available memory, bytes.
    pub memory_available_bytes: u64,
    /// Size of the data dir's filesystem, bytes.
    pub disk_total_bytes: u64,
    /// Free space there, bytes.
    pub disk_available_bytes: u64,
    /// Load averages over 1, 5 and 15 minutes.
    pub load: [f64; 3],
}

/// Parses `MemTotal` and `MemAvailable` (kB) from /proc/meminfo.
pub fn parse_meminfo(text: &str) -> (u64, u64) {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or(0)
    };
    (field("MemTotal:"), field("MemAvailable:"))
}

/// Parses busy CPU seconds from the first line of /proc/stat (USER_HZ = 100).
pub fn parse_stat_busy_seconds(text: &str) -> f64 {
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    total.saturating_sub(idle) as f64 / 100.0
}

/// Parses /proc/loadavg.
pub fn parse_loadavg(text: &str) -> [f64; 3] {
    let mut it = text
        .split_whitespace()
        .map(|v| v.parse::<f64>().unwrap_or(0.0));
    [
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    ]
}

/// Reads the host figures; missing files read as zero (e.g. outside Linux).
pub fn snapshot(data_dir: &Path) -> HostSnapshot {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let (memory_total_bytes, memory_available_bytes) = parse_meminfo(&read("/proc/meminfo"));
    let (disk_total_bytes, disk_available_bytes) = rustix::fs::statvfs(data_dir)
        .map(|s| {
            (
                s.f_blocks.saturating_mul(s.f_frsize),
                s.f_bavail.saturating_mul(s.f_frsize),
            )
        })
        .unwrap_or((0, 0));
    HostSnapshot {
        cpus: std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(1),
        cpu_busy_seconds: parse_stat_busy_seconds(&read("/proc/stat")),
        memory_total_bytes,
        memory_available_bytes,
        disk_total_bytes,
        disk_available_bytes,
        load: parse_loadavg(&read("/proc/loadavg")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let (total, avail) =
            parse_meminfo("MemTotal:  2048 kB\nMemFree: 1 kB\nMemAvailable: 1024 kB\n");
        assert_eq!((total, avail), (2048 * 1024, 1024 * 1024));
        let busy = parse_stat_busy_seconds("cpu  100 0 100 500 100 0 0 0 0 0\ncpu0 1 2 3\n");
        assert!((busy - 2.0).abs() < 1e-9);
        assert_eq!(parse_loadavg("0.50 0.25 0.10 1/100 42"), [0.5, 0.25, 0.1]);
        assert_eq!(parse_loadavg(""), [0.0, 0.0, 0.0]);
    }
}
