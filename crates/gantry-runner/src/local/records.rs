//! Records of running step processes, so that a runner started again after a `kill -9`
//! (or a crash) stops the steps its previous run left running.
//!
//! Each step leads its own process group. While it runs, its workflow directory holds
//! `processes/<pgid>`, a file with the group leader's start time (field 22 of
//! `/proc/<pid>/stat`, in clock ticks since boot). The record is removed once the step
//! ended and its group was killed. A record left behind names a group of a run that died:
//! [`kill_recorded`] kills it, but only if the process with that id is still the one
//! that was recorded (same start time), so a reused process id is never killed.

use std::path::{Path, PathBuf};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Directory of the records, inside a workflow directory.
pub(super) const PROCESSES_DIR: &str = "processes";

/// What `/proc/<pid>/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ProcStat {
    /// Its process group.
    pub(super) group: i32,
    /// When it started, in clock ticks since boot.
    pub(super) started: u64,
    /// True for a zombie (ended, not reaped yet) or a dead process.
    pub(super) ended: bool,
}

/// Reads `/proc/<pid>/stat`; None when the process is gone (or there is no `/proc`).
pub(super) fn proc_stat(pid: &str) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Parses a `/proc/<pid>/stat` line. The command name (field 2) is in parentheses and may
/// hold spaces and parentheses itself, so fields are counted from its last `)`.
fn parse_stat(text: &str) -> Option<ProcStat> {
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state), so field N is fields[N - 3].
    let state = *fields.first()?;
    Some(ProcStat {
        group: fields.get(2)?.parse().ok()?,
        started: fields.get(19)?.parse().ok()?,
        ended: matches!(state, "Z" | "X" | "x"),
    })
}

/// Writes the record of a step whose process (the leader of group `pid`) just started.
/// Nothing is written when `/proc` cannot tell its start time (the process already
/// ended, or no `/proc`): there is then nothing a restart could check it against.
pub(super) fn write(dir: &Path, pid: i32) -> std::io::Result<Option<PathBuf>> {
    let Some(stat) = proc_stat(&pid.to_string()) else {
        return Ok(None);
    };
    std::fs::create_dir_all(dir)?;
    let path = dir.join(pid.to_string());
    let temp = dir.join(format!(".{pid}.tmp"));
    std::fs::write(&temp, format!("{}\n", stat.started))?;
    std::fs::rename(&temp, &path)?;
    Ok(Some(path))
}

/// Removes a record; one already gone is fine.
pub(super) fn remove(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "removing a step record failed")
        }
    }
}

/// Kills the process groups recorded under `workflow_dir` that are still the recorded
/// ones, and removes their records. Returns how many groups were killed.
pub(super) fn kill_recorded(workflow_dir: &Path) -> usize {
    let dir = workflow_dir.join(PROCESSES_DIR);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let own_group = proc_stat("self").map(|s| s.group);
    let mut killed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let pgid = (entry.file_name().to_str())
            .and_then(|name| name.parse::<i32>().ok())
            .filter(|pgid| *pgid > 1 && Some(*pgid) != own_group);
        let started = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok());
        if let (Some(pgid), Some(started)) = (pgid, started)
            && group_is_the_recorded_one(pgid, started)
        {
            match killpg(Pid::from_raw(pgid), Signal::SIGKILL) {
                Ok(()) => {
                    killed += 1;
                    tracing::info!(
                        pgid,
                        workflow = %workflow_dir.display(),
                        "killed a step left running by a runner that died"
                    );
                }
                Err(nix::errno::Errno::ESRCH) => {}
                Err(e) => tracing::warn!(pgid, error = %e, "killing a leftover step failed"),
            }
        }
        remove(&path);
    }
    killed
}

/// Whether group `pgid` still has live members of the group recorded with leader start
/// time `started`.
///
/// - The leader lives on (or is an unreaped zombie): it is ours only if its start time
///   is the recorded one and it still leads group `pgid`.
/// - The leader is gone: a process id stays reserved while a group of that id has
///   members, so live members of group `pgid` that started no earlier than the leader
///   belong to it.
fn group_is_the_recorded_one(pgid: i32, started: u64) -> bool {
    if let Some(leader) = proc_stat(&pgid.to_string()) {
        let ours = leader.started == started && leader.group == pgid;
        return ours && (!leader.ended || group_has_live_member(pgid, started));
    }
    group_has_live_member(pgid, started)
}

/// Whether a live process in group `pgid` started at or after `started`.
fn group_has_live_member(pgid: i32, started: u64) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            return false;
        };
        proc_stat(pid).is_some_and(|s| s.group == pgid && !s.ended && s.started >= started)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_whatever_the_command_name_holds() {
        let line = "4242 (sh -c (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 2297856 200 18446744073709551615";
        let stat = parse_stat(line).expect("parses");
        assert_eq!(
            stat,
            ProcStat {
                group: 4242,
                started: 987_654,
                ended: false
            }
        );
        let zombie = line.replace(") S 1", ") Z 1");
        assert!(parse_stat(&zombie).expect("parses").ended);
        assert_eq!(parse_stat("4242 (sh) S 1"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let me = proc_stat("self").expect("/proc/self/stat");
        assert!(me.started > 0 && me.group > 0 && !me.ended);
    }
}
