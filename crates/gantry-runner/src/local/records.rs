//! Records of running step processes, so that a runner started again after a `kill -9`
//! (or a crash) stops the steps its previous run left running.
//!
//! Each step leads its own process group and carries a random mark of its own in its
//! environment ([`MARK_ENV`]), which its children inherit. While it runs, the runner's
//! state directory `<base>/.gantry-records/gantry-<id>/` (next to the workflow directory,
//! not inside it; created by the runner, mode 0700, removed once empty) holds `<pgid>`, a file with the boot
//! id (`/proc/sys/kernel/random/boot_id`), the group leader's start time (field 22 of
//! `/proc/<pid>/stat`, in clock ticks since boot) and the mark. The record is removed
//! once the step ended and its group was killed. A record left behind names a group of a
//! run that died: [`kill_recorded`] kills it, but only if it is still that group:
//!
//! - a record of another boot is ignored (process ids and start times start again);
//! - while the leader lives, it must have the recorded start time and lead the group;
//! - once the leader is gone, a live member of the group must carry the recorded mark.
//!
//! So a process group that merely reuses a recorded id is never killed. The state
//! directory must be a real directory of the runner's user: a symbolic link is refused,
//! and only names that parse as process group ids (and the runner's own temporary files)
//! are removed from it.

use std::io::Read as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// The runner's state directory under the base directory of temporary workspaces. Its
/// name starts with `.`, which no workflow directory's does.
pub(super) const STATE_DIR: &str = ".gantry-records";

/// The environment variable holding a step's mark.
pub(super) const MARK_ENV: &str = "GANTRY_STEP_MARK";

/// Where the steps of the workflow directory named `workflow` (`gantry-<id>`) under
/// `base` are recorded.
pub(super) fn records_dir(base: &Path, workflow: &std::ffi::OsStr) -> PathBuf {
    base.join(STATE_DIR).join(workflow)
}

/// A new random mark for a step (32 hex digits).
pub(super) fn new_mark() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// This boot's id; None without `/proc`.
fn boot_id() -> Option<String> {
    let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id = text.trim();
    (!id.is_empty() && !id.contains(char::is_whitespace)).then(|| id.to_owned())
}

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

/// A step's record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    boot: String,
    started: u64,
    mark: String,
}

impl Record {
    fn parse(text: &str) -> Option<Record> {
        let mut fields = text.split_whitespace();
        let record = Record {
            boot: fields.next()?.to_owned(),
            started: fields.next()?.parse().ok()?,
            mark: fields.next()?.to_owned(),
        };
        let plain_mark =
            record.mark.len() == 32 && record.mark.bytes().all(|b| b.is_ascii_hexdigit());
        (fields.next().is_none() && plain_mark).then_some(record)
    }
}

/// Makes `dir` a directory of this user (mode 0700) if it is not one yet; a symbolic
/// link, or anything else of that name, is refused.
fn ensure_own_dir(dir: &Path) -> std::io::Result<()> {
    if !own_dir(dir)? {
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        if !own_dir(dir)? {
            return Err(std::io::Error::other(format!(
                "{} is not a directory of this user (a symbolic link?)",
                dir.display()
            )));
        }
    }
    Ok(())
}

/// This process's user (the owner of `/proc/self`).
fn own_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|meta| meta.uid())
}

/// Whether `dir` is a real directory (not a symbolic link) of this user; Ok(false) when
/// there is nothing of that name, an error when there is something else.
fn own_dir(dir: &Path) -> std::io::Result<bool> {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() && Some(meta.uid()) == own_uid() => Ok(true),
        Ok(_) => Err(std::io::Error::other(format!(
            "{} is not a directory of this user (a symbolic link?)",
            dir.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Writes the record of a step whose process (the leader of group `pid`) just started
/// with `mark` in its environment. Nothing is written when `/proc` cannot tell its start
/// time or the boot id (the process already ended, or no `/proc`): there is then nothing
/// a restart could check it against.
pub(super) fn write(dir: &Path, pid: i32, mark: &str) -> std::io::Result<Option<PathBuf>> {
    let (Some(stat), Some(boot)) = (proc_stat(&pid.to_string()), boot_id()) else {
        return Ok(None);
    };
    // The state directory goes once empty: another workflow may remove it between the
    // two, which creating it again mends.
    let mut attempts = 0;
    loop {
        if let Some(state) = dir.parent() {
            ensure_own_dir(state)?;
        }
        match ensure_own_dir(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempts < 3 => attempts += 1,
            other => break other?,
        }
    }
    let path = dir.join(pid.to_string());
    let temp = dir.join(format!(".{pid}.tmp"));
    std::fs::write(&temp, format!("{boot} {} {mark}\n", stat.started))?;
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

/// Reads a record file: a regular file (never through a symbolic link, never blocking on
/// a pipe), at most a few hundred bytes.
fn read_record(path: &Path) -> Option<Record> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let mut text = String::new();
    file.take(512).read_to_string(&mut text).ok()?;
    Record::parse(&text)
}

/// The process group id a record's file name holds, or None for a name the runner does
/// not write (such a file is left alone). Temporary files (`.<pgid>.tmp`) are removed but
/// never acted on.
fn record_name(name: &str) -> Option<(i32, bool)> {
    let pgid = |digits: &str| {
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse::<i32>().ok())
            .flatten()
    };
    if let Some(temp) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) {
        return pgid(temp).map(|g| (g, false));
    }
    pgid(name).map(|g| (g, true))
}

/// Kills the process groups recorded in `records` (a workflow's directory in the state
/// directory) that are still the recorded ones, removes their records and then the
/// directory if nothing else is in it. Returns how many groups were killed. A directory
/// that is a symbolic link, or not this user's, is left alone.
pub(super) fn kill_recorded(records: &Path) -> usize {
    match own_dir(records) {
        Ok(true) => {}
        Ok(false) => return 0,
        Err(e) => {
            tracing::warn!(path = %records.display(), error = %e, "step records ignored");
            return 0;
        }
    }
    let Ok(entries) = std::fs::read_dir(records) else {
        return 0;
    };
    let own_group = proc_stat("self").map(|s| s.group);
    let boot = boot_id();
    let mut killed = 0;
    for entry in entries.flatten() {
        let Some((pgid, is_record)) = entry.file_name().to_str().and_then(record_name) else {
            continue;
        };
        let path = entry.path();
        let record = if is_record { read_record(&path) } else { None };
        if let Some(record) = record
            && pgid > 1
            && Some(pgid) != own_group
            && boot.as_deref() == Some(record.boot.as_str())
            && group_is_the_recorded_one(pgid, &record)
        {
            match killpg(Pid::from_raw(pgid), Signal::SIGKILL) {
                Ok(()) => {
                    killed += 1;
                    tracing::info!(
                        pgid,
                        records = %records.display(),
                        "killed a step left running by a runner that died"
                    );
                }
                Err(nix::errno::Errno::ESRCH) => {}
                Err(e) => tracing::warn!(pgid, error = %e, "killing a leftover step failed"),
            }
        }
        remove(&path);
    }
    remove_records_dir(records);
    killed
}

/// Removes a workflow's records directory once it is empty (anything the runner did not
/// write stays, and so does the directory then), and the state directory once that is.
pub(super) fn remove_records_dir(records: &Path) {
    if own_dir(records).unwrap_or(false) {
        let _ = std::fs::remove_dir(records);
    }
    if let Some(state) = records.parent()
        && own_dir(state).unwrap_or(false)
    {
        let _ = std::fs::remove_dir(state);
    }
}

/// Whether group `pgid` still has live members of the group recorded (on this boot).
///
/// - The leader lives on (or is an unreaped zombie): it is ours only if its start time
///   is the recorded one and it still leads group `pgid`; a zombie leader's group must
///   also have a live member carrying the mark.
/// - The leader is gone: a live member of group `pgid` must carry the recorded mark in
///   its environment. A group that only reuses the id has none.
fn group_is_the_recorded_one(pgid: i32, record: &Record) -> bool {
    if let Some(leader) = proc_stat(&pgid.to_string()) {
        let ours = leader.started == record.started && leader.group == pgid;
        return ours && (!leader.ended || group_has_marked_member(pgid, &record.mark));
    }
    group_has_marked_member(pgid, &record.mark)
}

/// Whether a live process in group `pgid` has `MARK_ENV=mark` in its environment.
fn group_has_marked_member(pgid: i32, mark: &str) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    let wanted = format!("{MARK_ENV}={mark}");
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            return false;
        };
        proc_stat(pid).is_some_and(|s| s.group == pgid && !s.ended)
            && environ_holds(pid, wanted.as_bytes())
    })
}

/// Whether `/proc/<pid>/environ` (readable for this user's processes) holds `entry`.
fn environ_holds(pid: &str, entry: &[u8]) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .is_ok_and(|environ| environ.split(|b| *b == 0).any(|e| e == entry))
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
    fn records_parse_only_when_whole() {
        let mark = "0123456789abcdef0123456789abcdef";
        let text = format!("7c3a-boot 987654 {mark}\n");
        assert_eq!(
            Record::parse(&text),
            Some(Record {
                boot: "7c3a-boot".into(),
                started: 987_654,
                mark: mark.into()
            })
        );
        assert_eq!(Record::parse("987654\n"), None, "an older record");
        assert_eq!(Record::parse("b 1 short"), None);
        assert_eq!(Record::parse(&format!("b x {mark}")), None);
        assert_eq!(Record::parse(&format!("b 1 {mark} more")), None);
    }

    #[test]
    fn only_pgid_names_and_own_temporary_files_are_records() {
        assert_eq!(record_name("4242"), Some((4242, true)));
        assert_eq!(record_name(".4242.tmp"), Some((4242, false)));
        for other in [
            "notes",
            "+12",
            "-1",
            "12a",
            "",
            ".tmp",
            "..tmp",
            "99999999999",
        ] {
            assert_eq!(record_name(other), None, "{other}");
        }
    }

    #[test]
    fn this_process_can_be_read() {
        let me = proc_stat("self").expect("/proc/self/stat");
        assert!(me.started > 0 && me.group > 0 && !me.ended);
    }
}
