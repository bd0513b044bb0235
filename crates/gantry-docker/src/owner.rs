//! Who owns a workflow's objects, and whether that owner is known to be gone.
//!
//! Every object carries `gantry.owner`. For `gantry exec` the owner is
//! `exec:<hostname>:<pid>`; such an owner is dead when it names this host and no process
//! with that pid exists (read from `/proc`). Any other owner (a server or a remote runner)
//! is never judged here: its objects are left alone until a caller with a policy for them
//! removes them. A reused pid only makes reaping late, never wrong.

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

/// `owner` is an `exec:` owner on `this_host` whose process no longer exists.
pub fn is_dead_exec_owner(owner: &str, this_host: &str) -> bool {
    let Some((host, pid)) = parse_exec_owner(owner) else {
        return false;
    };
    host == this_host && !process_exists(pid)
}

/// Splits `exec:<hostname>:<pid>`; `None` for any other form.
fn parse_exec_owner(owner: &str) -> Option<(&str, u32)> {
    let rest = owner.strip_prefix("exec:")?;
    let (host, pid) = rest.rsplit_once(':')?;
    let pid: u32 = pid.parse().ok()?;
    (!host.is_empty() && pid > 0).then_some((host, pid))
}

fn process_exists(pid: u32) -> bool {
    // Without /proc nothing can be known: treat the owner as alive.
    if !std::path::Path::new("/proc/self").exists() {
        return true;
    }
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_exec_owners() {
        assert_eq!(parse_exec_owner("exec:box:42"), Some(("box", 42)));
        assert_eq!(parse_exec_owner("exec:a:b:7"), Some(("a:b", 7)));
        assert_eq!(parse_exec_owner("server:box"), None);
        assert_eq!(parse_exec_owner("exec::7"), None);
        assert_eq!(parse_exec_owner("exec:box:0"), None);
        assert_eq!(parse_exec_owner("exec:box:x"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_vanished_pid_is_dead() {
        let host = local_hostname();
        assert!(!is_dead_exec_owner(&exec_owner(), &host));
        // Above the kernel's pid_max limit (2^22): never a live pid.
        let ghost = format!("exec:{host}:{}", (1u32 << 22) + 7);
        assert!(is_dead_exec_owner(&ghost, &host));
    }

    #[test]
    fn other_hosts_and_other_owner_kinds_are_left_alone() {
        let ghost_pid = (1u32 << 22) + 7;
        assert!(!is_dead_exec_owner(
            &format!("exec:elsewhere:{ghost_pid}"),
            "here"
        ));
        assert!(!is_dead_exec_owner("server:gantry-0", "here"));
    }
}
