//! Workspace directories of the local backend.
//!
//! With temporary workspaces each workflow gets `<base>/gantry-<id>/`, holding the
//! `workspace/` the steps run in and an `owner` file with the runner's process id and
//! start time; the records of its running steps are in the runner's state directory,
//! `<base>/.gantry-records/gantry-<id>/` (see `records`). `reap_leftovers` removes only
//! directories whose runner is gone, after killing the steps recorded for them.

use std::path::{Component, Path, PathBuf};

use crate::backend::{BackendError, WorkflowId};

/// Prefix of every workflow directory under the base directory.
const DIR_PREFIX: &str = "gantry-";
/// Name of the file holding the owning runner's process id.
const OWNER_FILE: &str = "owner";
/// Name of the directory steps run in, inside a workflow directory.
const WORKSPACE_DIR: &str = "workspace";

/// `<base>/gantry-<id>`, after checking that `id` is a plain directory name.
pub(super) fn workflow_dir(base: &Path, id: &WorkflowId) -> Result<PathBuf, BackendError> {
    let name = &id.0;
    let plain = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !plain {
        return Err(BackendError::Other(format!(
            "workflow id `{}` cannot name a directory: use 1-200 ASCII letters, digits, \
             `-`, `_` or `.` (not starting with `.`)",
            name.escape_debug()
        )));
    }
    Ok(base.join(format!("{DIR_PREFIX}{name}")))
}

/// Creates a fresh workflow directory (removing one left by an earlier run with the same
/// id) and returns the workspace inside it.
pub(super) async fn create_temp(dir: &Path) -> Result<PathBuf, BackendError> {
    remove_dir(dir).await?;
    let workspace = dir.join(WORKSPACE_DIR);
    tokio::fs::create_dir_all(&workspace)
        .await
        .map_err(|e| io_error("create the workspace", &workspace, &e))?;
    let owner = dir.join(OWNER_FILE);
    let started =
        super::records::proc_stat("self").map_or(String::new(), |s| s.started.to_string());
    tokio::fs::write(&owner, format!("{} {started}\n", std::process::id()))
        .await
        .map_err(|e| io_error("write", &owner, &e))?;
    Ok(workspace)
}

/// Checks that a fixed workspace exists and is a directory.
pub(super) async fn check_fixed(dir: &Path) -> Result<(), BackendError> {
    match tokio::fs::metadata(dir).await {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(BackendError::Other(format!(
            "workspace {} is not a directory",
            dir.display()
        ))),
        Err(e) => Err(io_error("use the workspace", dir, &e)),
    }
}

/// Removes a directory tree; a missing one is fine.
pub(super) async fn remove_dir(dir: &Path) -> Result<(), BackendError> {
    match tokio::fs::remove_dir_all(dir).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("remove", dir, &e)),
    }
}

/// The directory a step runs in: its `workdir` (an absolute path under the plan's
/// workspace) mapped onto the local workspace.
pub(super) fn step_dir(
    local: &Path,
    plan_workspace: &str,
    workdir: &str,
) -> Result<PathBuf, BackendError> {
    let inside = Path::new(workdir)
        .strip_prefix(plan_workspace)
        .unwrap_or(Path::new(""));
    if inside
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(BackendError::Other(format!(
            "working directory `{workdir}` leaves the workspace: remove `..` from it"
        )));
    }
    Ok(local.join(inside))
}

/// Removes workflow directories under `base` whose owning runner process is gone (or
/// unknown) and that `active` does not list, first killing the steps recorded in them
/// that still run. Returns how many directories were removed.
pub(super) async fn reap(base: &Path, active: &[PathBuf]) -> Result<usize, BackendError> {
    let mut entries = match tokio::fs::read_dir(base).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_error("list", base, &e)),
    };
    let mut removed = 0;
    while let Some(entry) = entries
        .next_entry()
        .await
        .map_err(|e| io_error("list", base, &e))?
    {
        let path = entry.path();
        let name = entry.file_name();
        let ours = name.to_string_lossy().starts_with(DIR_PREFIX);
        if !ours || active.contains(&path) || owner_alive(&path).await {
            continue;
        }
        super::records::kill_recorded(&super::records::records_dir(base, &name));
        remove_dir(&path).await?;
        removed += 1;
    }
    reap_orphan_records(base, active);
    Ok(removed)
}

/// Kills what the records of workflows whose directory is gone still name (a runner that
/// died between removing the two), and removes those records.
fn reap_orphan_records(base: &Path, active: &[PathBuf]) {
    let Ok(entries) = std::fs::read_dir(base.join(super::records::STATE_DIR)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let workflow = base.join(&name);
        let ours = name.to_string_lossy().starts_with(DIR_PREFIX);
        if ours && !active.contains(&workflow) && std::fs::symlink_metadata(&workflow).is_err() {
            super::records::kill_recorded(&entry.path());
        }
    }
}

/// Whether the runner process recorded in a workflow directory still exists.
async fn owner_alive(dir: &Path) -> bool {
    let Ok(text) = tokio::fs::read_to_string(dir.join(OWNER_FILE)).await else {
        return false;
    };
    // "<pid> <start time>"; the start time is missing in directories of older versions.
    let mut fields = text.split_whitespace();
    let Some(pid) = fields.next().and_then(|p| p.parse::<i32>().ok()) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    if u32::try_from(pid).ok() == Some(std::process::id()) {
        // Ours, but not active: left behind by a run that never cleaned up.
        return false;
    }
    let signal_zero = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None);
    if matches!(signal_zero, Err(nix::errno::Errno::ESRCH)) {
        return false;
    }
    // Alive, unless the id now belongs to another process (a reused process id).
    let recorded = fields.next().and_then(|t| t.parse::<u64>().ok());
    let now = super::records::proc_stat(&pid.to_string()).map(|s| s.started);
    match (recorded, now) {
        (Some(recorded), Some(now)) => recorded == now,
        _ => true,
    }
}

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> BackendError {
    BackendError::Other(format!("cannot {what} {}: {e}", path.display()))
}
