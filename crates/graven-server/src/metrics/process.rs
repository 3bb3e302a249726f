//! The standard process metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_open_fds`, ...), with the names and meanings every Prometheus client library gives
//! them (Prometheus "Writing client libraries", "Standard and runtime collectors"), read from
//! Linux's `/proc` at each scrape. On other systems, and for any file that cannot be read, the
//! metric is left out rather than reported as zero.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// `/proc` reports times in clock ticks of `USER_HZ`, which Linux fixes at 100 for user space
/// on every architecture it exposes `/proc` on (proc(5), `times(2)`: "sysconf(_SC_CLK_TCK)";
/// the kernel's `USER_HZ` is 100).
const USER_HZ: f64 = 100.0;

/// What one scrape read about this process.
#[derive(Debug, Default, PartialEq)]
pub struct ProcessSample {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub threads: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    pub start_time_seconds: Option<f64>,
}

impl ProcessSample {
    /// Reads `/proc/self`.
    pub fn read() -> Self {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        let stat = read("/proc/self/stat").and_then(|s| parse_stat(&s));
        let status = read("/proc/self/status").map(|s| parse_status(&s)).unwrap_or_default();
        let boot_time = read("/proc/stat").and_then(|s| parse_boot_time(&s));
        ProcessSample {
            cpu_seconds: stat.map(|s| (s.utime + s.stime) as f64 / USER_HZ),
            resident_bytes: status.rss_kib.map(|k| k * 1024),
            virtual_bytes: status.vm_kib.map(|k| k * 1024),
            threads: status.threads,
            open_fds: std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as u64),
            max_fds: read("/proc/self/limits").and_then(|s| parse_max_open_files(&s)),
            start_time_seconds: stat
                .zip(boot_time)
                .map(|(s, boot)| boot as f64 + s.start_ticks as f64 / USER_HZ),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Stat {
    utime: u64,
    stime: u64,
    start_ticks: u64,
}

/// Fields 14 (`utime`), 15 (`stime`) and 22 (`starttime`) of `/proc/<pid>/stat` (proc(5)).
/// The command name (field 2) is in parentheses and may itself hold spaces and parentheses,
/// so the fields are counted from the last `)`.
fn parse_stat(s: &str) -> Option<Stat> {
    let after = &s[s.rfind(')')? + 1..];
    // `after` starts at field 3.
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat { utime: field(14)?, stime: field(15)?, start_ticks: field(22)? })
}

#[derive(Debug, Default, PartialEq)]
struct Status {
    rss_kib: Option<u64>,
    vm_kib: Option<u64>,
    threads: Option<u64>,
}

/// `VmRSS`, `VmSize` (in kB) and `Threads` of `/proc/<pid>/status`.
fn parse_status(s: &str) -> Status {
    let mut out = Status::default();
    for line in s.lines() {
        let Some((key, value)) = line.split_once(':') else { continue };
        let number = value.split_whitespace().next().and_then(|v| v.parse::<u64>().ok());
        match key {
            "VmRSS" => out.rss_kib = number,
            "VmSize" => out.vm_kib = number,
            "Threads" => out.threads = number,
            _ => {}
        }
    }
    out
}

/// `btime` of `/proc/stat`: the boot time, in Unix seconds.
fn parse_boot_time(s: &str) -> Option<u64> {
    s.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

/// The soft limit of "Max open files" in `/proc/<pid>/limits` (absent when unlimited).
fn parse_max_open_files(s: &str) -> Option<u64> {
    let line = s.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

/// Registers with an unprefixed registry; reads `/proc/self` at each scrape.
#[derive(Debug, Default)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = ProcessSample::read();
        if let Some(v) = s.cpu_seconds {
            let m = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(v).encode(m)?;
        }
        let counts: [(&str, &str, Option<u64>); 5] = [
            ("process_resident_memory_bytes", "Resident memory size in bytes", s.resident_bytes),
            ("process_virtual_memory_bytes", "Virtual memory size in bytes", s.virtual_bytes),
            ("process_threads", "Number of OS threads in the process", s.threads),
            ("process_open_fds", "Number of open file descriptors", s.open_fds),
            ("process_max_fds", "Maximum number of open file descriptors", s.max_fds),
        ];
        for (name, help, value) in counts {
            if let Some(v) = value.and_then(|v| i64::try_from(v).ok()) {
                let m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                ConstGauge::new(v).encode(m)?;
            }
        }
        if let Some(v) = s.start_time_seconds {
            let m = encoder.encode_descriptor(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(v).encode(m)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A command name with spaces and a parenthesis, as a thread may name itself.
        let line = "4242 (graven (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 9 0 \
                    123456 1000000 500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_stat(line), Some(Stat { utime: 250, stime: 75, start_ticks: 123456 }));
        assert_eq!(parse_stat("4242 (no end"), None);
        assert_eq!(parse_stat("4242 (short) S 1 2"), None);
    }

    #[test]
    fn status_limits_and_boot_time_parse() {
        let status = "Name:\tgraven\nVmSize:\t  123456 kB\nVmRSS:\t   2048 kB\nThreads:\t9\n";
        assert_eq!(
            parse_status(status),
            Status { rss_kib: Some(2048), vm_kib: Some(123456), threads: Some(9) }
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_max_open_files(limits), Some(1024));
        let unlimited = "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_max_open_files(unlimited), None);
        assert_eq!(parse_boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 5\n"), Some(1_700_000_000));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_reads_plausibly() {
        let s = ProcessSample::read();
        assert!(s.resident_bytes.is_some_and(|b| b > 0), "{s:?}");
        assert!(s.virtual_bytes >= s.resident_bytes, "{s:?}");
        assert!(s.threads.is_some_and(|t| t >= 1), "{s:?}");
        assert!(s.open_fds.is_some_and(|n| n >= 3), "{s:?}");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        let start = s.start_time_seconds.unwrap();
        assert!(start <= now + 2.0 && start > now - 86_400.0 * 365.0, "{start} vs {now}");
        assert!(s.cpu_seconds.is_some_and(|c| c >= 0.0));
    }
}
