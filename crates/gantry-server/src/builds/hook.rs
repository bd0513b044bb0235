//! Hook builds: recorded durably in the request, prepared in the background.
//!
//! The webhook request records the delivery and a `pending` build holding the trigger in
//! one store transaction, then answers. A background task fetches the commit, compiles the
//! pipeline and attaches the workflows (or ends the build in `error` or `skipped`) by build
//! id. A server that stops in between still has the build: recovery prepares it again at
//! the next start, and a replay of the delivery still creates nothing.

use gantry_forge::{HookEvent, HookKind};
use gantry_store::{Build, BuildEvent, NewBuild, Preparation, Repo, RunStatus, now_ms};

use super::prepare::{Trigger, prepare};
use crate::error::{ApiError, ApiResult};
use crate::live::{EventKind, LiveEvent};
use crate::state::AppState;

/// Hook builds prepared (fetched and compiled) at once.
pub const PREPARE_SLOTS: usize = 4;

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

/// Records the delivery and its build (`pending`, not prepared yet) in one transaction;
/// `None` when the delivery was seen before.
pub async fn accept_hook(
    state: &AppState,
    repo: &Repo,
    delivery_id: &str,
    trigger: &Trigger,
) -> ApiResult<Option<Build>> {
    let facts = serde_json::to_string(trigger)
        .map_err(|e| ApiError::internal(format!("cannot record the hook's trigger: {e}")))?;
    let build = NewBuild {
        repo_id: repo.id,
        event: trigger.event,
        git_ref: trigger.git_ref.clone(),
        sha: trigger.sha.clone(),
        before: trigger.before.clone(),
        message: trigger.message.clone(),
        author: trigger.author.clone(),
        sender: trigger.sender.clone(),
        status: RunStatus::Pending,
        error: None,
        parent_id: None,
        deploy_target: None,
        diagnostics: None,
        created_at: now_ms(),
    };
    let recorded = state
        .store
        .record_hook_build(delivery_id, &build, &facts)
        .await?;
    if let Some(build) = &recorded {
        announce(state, repo, build.number, RunStatus::Pending, None);
        tracing::info!(repo = %repo.full_name(), build.number = build.number, git.sha = %build.sha, "build created; preparing it");
    }
    Ok(recorded)
}

/// Fetches, compiles and attaches the recorded build's workflows off the request path.
pub fn spawn_preparation(state: AppState, repo: Repo, build: Build, trigger: Trigger) {
    tokio::spawn(async move {
        let work = async {
            // The semaphore is never closed, so acquiring only waits.
            let _slot = state.prepare_slots.acquire().await;
            finish(&state, &repo, &build, &trigger).await
        };
        // A stop here leaves the build recorded: the next start prepares it.
        let outcome = tokio::select! {
            outcome = work => outcome,
            () = state.shutdown.cancelled() => return,
        };
        if let Err(error) = outcome {
            tracing::error!(repo = %repo.full_name(), build.number = build.number, error = %error, "could not prepare the hook's build; it is prepared again at the next start");
        }
    });
}

/// Prepares the build and stores the outcome.
async fn finish(state: &AppState, repo: &Repo, build: &Build, trigger: &Trigger) -> ApiResult<()> {
    let number = u64::try_from(build.number).unwrap_or_default();
    let prepared = prepare(state, repo, trigger, Some(number)).await;
    let preparation = Preparation {
        sha: prepared.sha,
        status: prepared.status,
        error: prepared.error,
        diagnostics: prepared.diagnostics,
        workflows: prepared.workflows,
        at: now_ms(),
    };
    settle(state, repo, build, &preparation).await
}

/// Stores a preparation's outcome, then wakes the runner and tells followers.
async fn settle(
    state: &AppState,
    repo: &Repo,
    build: &Build,
    preparation: &Preparation,
) -> ApiResult<()> {
    if !state
        .store
        .finish_preparation(build.id, preparation)
        .await?
    {
        tracing::info!(repo = %repo.full_name(), build.number = build.number, "the build ended while it was prepared; nothing attached");
        return Ok(());
    }
    if !preparation.workflows.is_empty() {
        state.live.announce_work();
    }
    state.metrics.build_created(preparation.status.as_str());
    announce(
        state,
        repo,
        build.number,
        preparation.status,
        preparation.error.clone(),
    );
    tracing::info!(
        repo = %repo.full_name(),
        build.number = build.number,
        build.status = preparation.status.as_str(),
        "build prepared"
    );
    Ok(())
}

/// Prepares again the hook builds that a stop left unprepared; returns how many.
pub async fn resume_preparations(state: &AppState) -> ApiResult<usize> {
    let mut resumed = 0;
    for entry in state.store.preparing_builds().await? {
        let build = entry.build;
        if build.status != RunStatus::Pending {
            // Cancelled before it was prepared: only its trigger is left, and goes.
            let drop_trigger = failed(&build, "the build ended before it was prepared".into());
            state
                .store
                .finish_preparation(build.id, &drop_trigger)
                .await?;
            continue;
        }
        let Some(repo) = state.store.repo_by_id(build.repo_id).await? else {
            continue; // the repository is being deleted with its builds
        };
        match serde_json::from_str::<Trigger>(&entry.trigger) {
            Ok(trigger) => spawn_preparation(state.clone(), repo, build, trigger),
            Err(error) => {
                let message = format!(
                    "the hook's recorded trigger cannot be read ({error}); push again or \
                     trigger the build through the API"
                );
                settle(state, &repo, &build, &failed(&build, message)).await?;
            }
        }
        resumed += 1;
    }
    Ok(resumed)
}

/// A preparation that ends the build in `error` saying why.
fn failed(build: &Build, message: String) -> Preparation {
    Preparation {
        sha: build.sha.clone(),
        status: RunStatus::Error,
        error: Some(message),
        diagnostics: None,
        workflows: Vec::new(),
        at: now_ms(),
    }
}

fn announce(state: &AppState, repo: &Repo, number: i64, status: RunStatus, error: Option<String>) {
    state.live.publish_event(LiveEvent {
        kind: EventKind::Build,
        repo_id: repo.id,
        repo: repo.full_name(),
        build: number,
        step: None,
        status,
        error,
    });
}
