//! Recording builds: from a verified hook (in the background), and from an API trigger.

use gantry_forge::{HookEvent, HookKind};
use gantry_store::{BuildDetail, BuildEvent, NewBuild, Repo, now_ms};

use super::prepare::{Prepared, Trigger, prepare};
use crate::error::ApiResult;
use crate::live::{EventKind, LiveEvent};
use crate::state::AppState;

/// Hook builds prepared (fetched and compiled) at once.
pub const PREPARE_SLOTS: usize = 4;

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
    let prepared = prepare(state, repo, trigger).await;
    record(state, repo, trigger, prepared).await
}

/// The trigger a verified hook event asks for; `None` for a ping.
pub fn trigger_of_hook(event: &HookEvent) -> Option<Trigger> {
    let kind = match event.kind {
        HookKind::Push => BuildEvent::Push,
        HookKind::Tag => BuildEvent::Tag,
        HookKind::PullRequest => BuildEvent::PullRequest,
        HookKind::Ping => return None,
    };
    Some(Trigger {
        event: kind,
        git_ref: event.git_ref.clone(),
        branch: event.branch.clone(),
        tag: event.tag.clone(),
        sha: event.sha.clone(),
        before: event.before.clone(),
        message: event.message.clone(),
        author: event.author.clone(),
        sender: event.author.clone(),
        pull_request: event.pull_request.clone(),
        link: event.link.clone(),
        parent_id: None,
        deploy_target: None,
    })
}

/// Fetches, compiles and records the hook's build off the request path.
pub fn spawn_from_hook(state: AppState, repo: Repo, trigger: Trigger) {
    tokio::spawn(async move {
        let work = async {
            // The semaphore is never closed, so acquiring only waits.
            let _slot = state.prepare_slots.acquire().await;
            create(&state, &repo, &trigger).await
        };
        let outcome = tokio::select! {
            outcome = work => outcome,
            () = state.shutdown.cancelled() => return,
        };
        if let Err(error) = outcome {
            tracing::error!(repo = %repo.full_name(), git.sha = %trigger.sha, error = %error, "could not record the hook's build");
        }
    });
}
