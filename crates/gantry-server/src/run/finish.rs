//! Final statuses: a workflow's when its run ends, and the build's once all of its
//! workflows ended.

use gantry_store::{RunStatus, StatusChange, StepChange, now_ms};

use super::RunTarget;
use crate::live::{EventKind, LiveEvent};
use crate::state::AppState;

/// Stores a workflow's final status, closes what its steps left open, then finishes the
/// build if this was its last active workflow.
///
/// An error is the store's: what was written stays (statuses move only forward, and the
/// same final status again changes nothing), so calling it again completes the rest.
pub async fn finish_workflow(
    state: &AppState,
    target: &RunTarget,
    status: RunStatus,
    error: Option<String>,
) -> Result<(), String> {
    let change = StatusChange {
        status,
        at: now_ms(),
        error: error.clone(),
    };
    (state.store)
        .update_workflow_status(target.workflow_id, &change)
        .await
        .map_err(|e| {
            tracing::error!(workflow.id = target.workflow_id, error = %e, "storing a workflow status failed");
            format!("storing the workflow's status failed: {e}")
        })?;
    close_open_steps(state, target, error).await?;
    finish_build(state, target.build_id).await
}

/// Steps the runtime never ended (the run could not start) end here, and every step's
/// live followers are told that no more lines will come.
async fn close_open_steps(
    state: &AppState,
    target: &RunTarget,
    error: Option<String>,
) -> Result<(), String> {
    let build = match state.store.build_by_id(target.build_id).await {
        Ok(Some(build)) => build,
        // Deleted: nothing is left to close.
        Ok(None) => return Ok(()),
        Err(e) => return Err(format!("reading the build's steps failed: {e}")),
    };
    let steps = build
        .workflows
        .into_iter()
        .filter(|w| w.workflow.id == target.workflow_id)
        .flat_map(|w| w.steps);
    for step in steps {
        if !step.status.is_terminal() {
            let status = if step.status == RunStatus::Pending {
                RunStatus::Skipped
            } else {
                RunStatus::Error
            };
            let change = StepChange {
                status,
                at: now_ms(),
                exit_code: None,
                error: error.clone(),
                runner_id: None,
            };
            let stored = (state.store.update_step(step.id, &change).await)
                .map_err(|e| format!("closing step `{}` failed: {e}", step.name))?;
            if stored {
                state.live.publish_event(LiveEvent {
                    kind: EventKind::Step,
                    repo_id: target.repo_id,
                    repo: target.repo.clone(),
                    build: target.build_number,
                    step: Some(step.name.clone()),
                    status,
                    error: error.clone(),
                });
            }
        }
        state.live.end_step(step.id);
    }
    Ok(())
}

/// The build's status from its workflows' final ones: the worst of them.
pub fn build_status(workflows: &[RunStatus]) -> RunStatus {
    let rank = |s: &RunStatus| match s {
        RunStatus::Error => 5,
        RunStatus::Failure => 4,
        RunStatus::Killed => 3,
        RunStatus::Success => 2,
        _ => 1,
    };
    workflows
        .iter()
        .copied()
        .max_by_key(rank)
        .unwrap_or(RunStatus::Skipped)
}

/// Ends the build once every workflow of it has ended; does nothing before. An error is
/// the store's (calling it again finishes the build).
pub async fn finish_build(state: &AppState, build_id: i64) -> Result<(), String> {
    let detail = match state.store.build_by_id(build_id).await {
        Ok(Some(detail)) => detail,
        Ok(None) => return Ok(()),
        Err(e) => return Err(format!("reading the build failed: {e}")),
    };
    let statuses: Vec<RunStatus> = detail.workflows.iter().map(|w| w.workflow.status).collect();
    if statuses.iter().any(|s| !s.is_terminal()) || detail.build.status.is_terminal() {
        return Ok(());
    }
    let status = build_status(&statuses);
    let error = detail
        .workflows
        .iter()
        .find_map(|w| w.workflow.error.clone())
        .filter(|_| status == RunStatus::Error);
    let change = StatusChange {
        status,
        at: now_ms(),
        error: error.clone(),
    };
    match state.store.update_build_status(build_id, &change).await {
        Ok(true) => {
            let repo = state
                .store
                .repo_by_id(detail.build.repo_id)
                .await
                .ok()
                .flatten();
            state.live.publish_event(LiveEvent {
                kind: EventKind::Build,
                repo_id: detail.build.repo_id,
                repo: repo.map(|r| r.full_name()).unwrap_or_default(),
                build: detail.build.number,
                step: None,
                status,
                error,
            });
        }
        Ok(false) => {}
        Err(e) => {
            tracing::error!(build.id = build_id, error = %e, "storing a build status failed");
            return Err(format!("storing the build's status failed: {e}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_workflow_status_is_the_builds() {
        use RunStatus::*;
        assert_eq!(build_status(&[Success, Success]), Success);
        assert_eq!(build_status(&[Success, Failure]), Failure);
        assert_eq!(build_status(&[Killed, Failure, Error]), Error);
        assert_eq!(build_status(&[Skipped, Success]), Success);
        assert_eq!(build_status(&[Skipped]), Skipped);
    }
}
