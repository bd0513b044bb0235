//! A branch name to the commit it points to, asked of the repository itself.

use std::time::Duration;

use tokio::process::Command;

use crate::error::ApiError;

/// The longest `git ls-remote` may take.
const LS_REMOTE_TIMEOUT: Duration = Duration::from_secs(60);

/// The commit `branch` points to at `clone_url`.
pub async fn resolve_branch(clone_url: &str, branch: &str) -> Result<String, ApiError> {
    check_branch(branch)?;
    let wanted = format!("refs/heads/{branch}");
    let mut command = Command::new("git");
    command
        .args(["ls-remote", "--", clone_url, &wanted])
        .env("GIT_TERMINAL_PROMPT", "0")
        .kill_on_drop(true);
    let output = tokio::time::timeout(LS_REMOTE_TIMEOUT, command.output())
        .await
        .map_err(|_| {
            ApiError::internal(format!(
                "asking {clone_url} for branch `{branch}` timed out"
            ))
        })?
        .map_err(|e| ApiError::internal(format!("cannot run git: {e}; is git installed?")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(ApiError::invalid(format!(
            "cannot list branches of {clone_url}: {}",
            stderr.trim().chars().take(300).collect::<String>()
        )));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .filter_map(|line| line.split_once('\t'))
        .find(|(_, name)| *name == wanted)
        .map(|(sha, _)| sha.to_string())
        .ok_or_else(|| {
            ApiError::not_found(format!("branch `{branch}` does not exist in {clone_url}"))
        })
}

/// Refuses names git would read as options or that no branch can have.
fn check_branch(branch: &str) -> Result<(), ApiError> {
    let bad = branch.is_empty()
        || branch.len() > 250
        || branch.starts_with('-')
        || branch.contains("..")
        || branch
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c));
    if bad {
        return Err(ApiError::invalid(format!(
            "`{}` is not a valid branch name",
            branch.chars().take(100).collect::<String>()
        )));
    }
    Ok(())
}
