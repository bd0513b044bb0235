//! Hook builds: recorded durably in the request, prepared in the background.
//!
//! The webhook request records the delivery and a `pending` build holding the trigger in
//! one store transaction, then answers. A background task fetches the commit, compiles the
//! pipeline and attaches the workflows (or ends the build in `error` or `skipped`) by build
//! id. A server that stops in between still has the build, and a replay of the delivery
//! still creates nothing.
//!
//! A preparation runs under a claim with a lease, renewed while it runs: with several
//! replicas on one database each build is prepared by one of them. Every server sweeps
//! every few seconds for claims that ran out (a replica scaled away mid-preparation) or
//! were released (a failed attempt), and a restart takes back its own at once.

use std::time::Duration;

use gantry_forge::{HookEvent, HookKind};
use gantry_store::{
    Build, BuildEvent, NewBuild, Preparation, PreparationClaim, PreparingBuild, Repo, RunStatus,
    now_ms,
};

use super::prepare::{Trigger, prepare};
use crate::error::{ApiError, ApiResult};
use crate::live::{EventKind, LiveEvent};
use crate::run::backend;
use crate::state::AppState;

/// Hook builds prepared (fetched and compiled) at once.
pub const PREPARE_SLOTS: usize = 4;
/// How long a claim on a preparation lasts unless renewed (it is renewed every third).
pub const PREPARATION_LEASE: Duration = Duration::from_secs(60);
/// How often every server looks for preparations whose claim ran out or was released.
pub const PREPARATION_SWEEP: Duration = Duration::from_secs(5);
/// Claims after which a build that could never be prepared ends in `error`.
pub const MAX_PREPARATION_ATTEMPTS: i64 = 5;

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

/// Fetches, compiles and attaches the recorded build's workflows off the request path,
/// once this server holds the claim on its preparation.
pub fn spawn_preparation(state: AppState, repo: Repo, build: Build, trigger: Trigger) {
    tokio::spawn(async move {
        match state
            .store
            .claim_preparation(build.id, &claim(&state))
            .await
        {
            Ok(Some(_)) => run_claimed(state, repo, build, trigger).await,
            Ok(None) => {} // another replica's sweep took it first
            Err(error) => {
                tracing::error!(repo = %repo.full_name(), build.number = build.number, error = %error, "could not claim the hook's build for preparation; a sweep takes it");
            }
        }
    });
}

/// Prepares a build whose claim this server holds, renewing the claim meanwhile.
async fn run_claimed(state: AppState, repo: Repo, build: Build, trigger: Trigger) {
    let work = async {
        // The semaphore is never closed, so acquiring only waits.
        let _slot = state.prepare_slots.acquire().await;
        finish(&state, &repo, &build, &trigger).await
    };
    tokio::pin!(work);
    let mut renewal = tokio::time::interval(PREPARATION_LEASE / 3);
    renewal.tick().await; // the first tick is at once: the claim is fresh
    // A stop here leaves the build recorded and claimed: a restart takes back its own
    // claims, another replica takes it once the lease ran out.
    let outcome = loop {
        tokio::select! {
            outcome = &mut work => break outcome,
            _ = renewal.tick() => renew(&state, &build).await,
            () = state.shutdown.cancelled() => return,
        }
    };
    if let Err(error) = outcome {
        // Released at once, so the next sweep (here or on a replica) retries it.
        let released = state
            .store
            .release_preparation(build.id, &claimer(&state))
            .await;
        tracing::error!(repo = %repo.full_name(), build.number = build.number, error = %error, claim.released = released.is_ok(), "could not prepare the hook's build; a sweep prepares it again");
    }
}

/// Extends this server's claim while it still prepares the build.
async fn renew(state: &AppState, build: &Build) {
    let until = now_ms() + lease_ms();
    match state
        .store
        .renew_preparation(build.id, &claimer(state), until)
        .await
    {
        // Lost: another replica prepares it too; whichever stores first wins, the other's
        // outcome is dropped by the store.
        Ok(false) => tracing::warn!(
            build.id = build.id,
            "the claim on a preparation ran out while it was prepared"
        ),
        Ok(true) => {}
        Err(error) => {
            tracing::warn!(build.id = build.id, error = %error, "renewing the claim on a preparation failed")
        }
    }
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

/// At start: takes back this server's own claims (a stop left them unprepared) and those
/// whose lease ran out, and starts the periodic sweep; returns how many it took.
pub async fn resume_preparations(state: &AppState) -> ApiResult<usize> {
    let taken = take_stale_preparations(state, true, i64::MAX).await?;
    let sweeper = state.clone();
    tokio::spawn(async move {
        let mut sweep = tokio::time::interval(PREPARATION_SWEEP);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = sweep.tick() => {}
                () = sweeper.shutdown.cancelled() => return,
            }
            // Only as many as there are free slots: the rest stay for idler replicas.
            let free = sweeper.prepare_slots.available_permits();
            if free == 0 {
                continue;
            }
            let limit = i64::try_from(free).unwrap_or(1);
            if let Err(error) = take_stale_preparations(&sweeper, false, limit).await {
                tracing::warn!(error = %error, "sweeping hook builds whose preparation stopped failed");
            }
        }
    });
    Ok(taken)
}

/// Claims preparations nobody holds a live claim on (and this server's own when
/// `reclaim_own`), and prepares them; returns how many.
async fn take_stale_preparations(
    state: &AppState,
    reclaim_own: bool,
    limit: i64,
) -> ApiResult<usize> {
    let claimed = state
        .store
        .claim_stale_preparations(&claim(state), reclaim_own, limit)
        .await?;
    let taken = claimed.len();
    for entry in claimed {
        if let Err(error) = start_claimed(state, entry).await {
            tracing::error!(error = %error, "could not start a claimed preparation; a sweep retries it");
        }
    }
    if taken > 0 {
        tracing::info!(
            preparation.taken = taken,
            "preparing hook builds whose preparation stopped"
        );
    }
    Ok(taken)
}

/// Prepares a claimed build, or ends it when it was cancelled, cannot be read, or failed
/// too often.
async fn start_claimed(state: &AppState, entry: PreparingBuild) -> ApiResult<()> {
    let build = entry.build;
    if build.status != RunStatus::Pending {
        // Cancelled before it was prepared: only its trigger is left, and goes.
        let drop_trigger = failed(&build, "the build ended before it was prepared".into());
        state
            .store
            .finish_preparation(build.id, &drop_trigger)
            .await?;
        return Ok(());
    }
    let Some(repo) = state.store.repo_by_id(build.repo_id).await? else {
        return Ok(()); // the repository is being deleted with its builds
    };
    if entry.attempts > MAX_PREPARATION_ATTEMPTS {
        let message = format!(
            "the build could not be prepared in {MAX_PREPARATION_ATTEMPTS} attempts (each \
             stopped with its server or failed storing the outcome; see the server's log): \
             push again or restart the build"
        );
        return settle(state, &repo, &build, &failed(&build, message)).await;
    }
    match serde_json::from_str::<Trigger>(&entry.trigger) {
        Ok(trigger) => {
            tokio::spawn(run_claimed(state.clone(), repo, build, trigger));
            Ok(())
        }
        Err(error) => {
            let message = format!(
                "the hook's recorded trigger cannot be read ({error}); push again or \
                 trigger the build through the API"
            );
            settle(state, &repo, &build, &failed(&build, message)).await
        }
    }
}

/// This server's name on the claims it takes: the same across its restarts, so a
/// restart takes back its own claims without waiting for their lease.
fn claimer(state: &AppState) -> String {
    backend::runner_id(&state.config.data_dir)
}

fn lease_ms() -> i64 {
    i64::try_from(PREPARATION_LEASE.as_millis()).unwrap_or(i64::MAX)
}

/// A claim by this server, starting now.
fn claim(state: &AppState) -> PreparationClaim {
    let now = now_ms();
    PreparationClaim {
        claimer: claimer(state),
        now,
        until: now + lease_ms(),
    }
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
