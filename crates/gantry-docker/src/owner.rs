//! Who owns a workflow's objects, and whether that owner is still alive.

/// The owner string of this process when it runs pipelines itself: `exec:<hostname>:<pid>`.
pub fn exec_owner() -> String {
    format!("exec:{}:{}", local_hostname(), std::process::id())
}

/// This machine's host name, as the kernel reports it (`unknown` if unreadable).
pub fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}
