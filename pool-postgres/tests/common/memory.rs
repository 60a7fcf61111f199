//! The test process's resident memory, to show that a workload leaves
//! nothing behind ([`resident_bytes`]).

/// The process's resident set size (`VmRSS` in `/proc/self/status`, the
/// same figure as the second field of `/proc/self/statm`, but in kB rather
/// than in pages of a size we would have to ask for).
pub fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line in /proc/self/status");
    kb * 1024
}

/// Bytes as MiB, for messages.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
