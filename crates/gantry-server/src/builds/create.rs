//! Recording a prepared build at once (API triggers, restarts, promotions).

use gantry_store::{BuildDetail, NewBuild, Repo, now_ms};

use super::prepare::{Prepared, Trigger, prepare};
use crate::error::ApiResult;
use crate::live::{EventKind, LiveEvent};
use crate::state::AppState;

/// Stores a prepared build (enqueued when `pending`) and tells followers and the runner.
pub async fn record(
    state: &AppState,
    repo: &Repo,
    trigger: &Trigger,
    prepared: Prepared,
) -> ApiResult<BuildDetail> {
    let build = NewBuild {
        repo_id: repo.id,
        event: trigger.event,
        git_ref: trigger.git_ref.clone(),
        sha: prepared.sha.clone(),
        before: trigger.before.clone(),
        message: trigger.message.clone(),
        author: trigger.author.clone(),
        sender: trigger.sender.clone(),
        status: prepared.status,
        error: prepared.error.clone(),
        parent_id: trigger.parent_id,
        deploy_target: trigger.deploy_target.clone(),
        diagnostics: prepared.diagnostics.clone(),
        created_at: now_ms(),
    };
    let detail = state
        .store
        .create_build(&build, &prepared.workflows)
        .await?;
    state.metrics.build_created(detail.build.status.as_str());
    state.live.publish_event(LiveEvent {
        kind: EventKind::Build,
        repo_id: repo.id,
        repo: repo.full_name(),
        build: detail.build.number,
        step: None,
        status: detail.build.status,
        error: detail.build.error.clone(),
    });
    if !detail.workflows.is_empty() {
        state.live.announce_work();
    }
    tracing::info!(
        repo = %repo.full_name(),
        build.number = detail.build.number,
        build.status = detail.build.status.as_str(),
        "build created"
    );
    Ok(detail)
}

/// Prepares and records a build in one go (API triggers wait for it).
pub async fn create(state: &AppState, repo: &Repo, trigger: &Trigger) -> ApiResult<BuildDetail> {
    let prepared = prepare(state, repo, trigger, None).await;
    record(state, repo, trigger, prepared).await
}
