//! What people do to existing builds: cancel, restart, promote, approve or reject.

use gantry_forge::PullRequestInfo;
use gantry_store::{
    Approval, ApprovalDecision, Build, BuildDetail, BuildEvent, NewStep, NewWorkflow, Repo,
    RunStatus, StatusChange, StepChange, now_ms,
};

use super::approval::DecidedApproval;
use super::create::{create, record};
use super::prepare::{Prepared, Trigger};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::live::{EventKind, LiveEvent};
use crate::state::AppState;

/// Stops a build: queued work is dropped, running steps are killed, and whatever has not
/// finished ends `killed`.
pub async fn cancel(
    state: &AppState,
    repo: &Repo,
    detail: &BuildDetail,
    by: &Principal,
) -> ApiResult<()> {
    let build = &detail.build;
    if build.status.is_terminal() {
        return Err(ApiError::conflict(format!(
            "build {} already ended `{}`; nothing to cancel",
            build.number,
            build.status.as_str()
        )));
    }
    let reason = format!("cancelled by {}", by.subject());
    state.store.cancel_build_items(build.id, &reason).await?;
    let at = now_ms();
    let killed = StatusChange {
        status: RunStatus::Killed,
        at,
        error: None,
    };
    for workflow in &detail.workflows {
        // The runners running it hear the cancel from the build's event.
        for step in workflow.steps.iter().filter(|s| !s.status.is_terminal()) {
            let change = StepChange {
                status: RunStatus::Killed,
                at,
                exit_code: None,
                error: None,
                runner_id: None,
            };
            state.store.update_step(step.id, &change).await?;
        }
        state
            .store
            .update_workflow_status(workflow.workflow.id, &killed)
            .await?;
    }
    if state.store.update_build_status(build.id, &killed).await? {
        state.live.publish_event(LiveEvent {
            kind: EventKind::Build,
            repo_id: build.repo_id,
            repo: repo.full_name(),
            build: build.number,
            step: None,
            status: RunStatus::Killed,
            error: None,
        });
    }
    tracing::info!(build.id = build.id, by = by.subject(), "build cancelled");
    Ok(())
}

/// A new build of the same commit, child of `detail`: every workflow again, or only the
/// workflows that did not succeed (a workflow is the unit: its steps share a workspace).
pub async fn restart(
    state: &AppState,
    repo: &Repo,
    detail: &BuildDetail,
    failed_only: bool,
    by: &Principal,
) -> ApiResult<BuildDetail> {
    let build = &detail.build;
    if !build.status.is_terminal() {
        return Err(ApiError::conflict(format!(
            "build {} is still `{}`; cancel it or wait before restarting",
            build.number,
            build.status.as_str()
        )));
    }
    let trigger = Trigger {
        parent_id: Some(build.id),
        deploy_target: build.deploy_target.clone(),
        ..trigger_of_build(build, by)
    };
    if detail.workflows.is_empty() {
        // It never compiled: fetch and compile again, since the repository's secrets or
        // settings may have changed since.
        return create(state, repo, &trigger).await;
    }
    let workflows: Vec<NewWorkflow> = detail
        .workflows
        .iter()
        .filter(|w| !failed_only || w.workflow.status != RunStatus::Success)
        .map(|w| NewWorkflow {
            name: w.workflow.name.clone(),
            plan: w.workflow.plan.clone(),
            labels: w.workflow.labels.clone(),
            steps: w
                .steps
                .iter()
                .map(|s| NewStep {
                    name: s.name.clone(),
                    kind: s.kind.clone(),
                    needs: s.needs.clone(),
                })
                .collect(),
        })
        .collect();
    if workflows.is_empty() {
        return Err(ApiError::conflict(format!(
            "every workflow of build {} succeeded; restart all of it instead",
            build.number
        )));
    }
    let prepared = Prepared {
        status: RunStatus::Pending,
        error: None,
        diagnostics: None,
        workflows,
        sha: build.sha.clone(),
    };
    record(state, repo, &trigger, prepared).await
}

/// A new build of a successful build's commit with event `promote` and a deploy target.
pub async fn promote(
    state: &AppState,
    repo: &Repo,
    build: &Build,
    target: &str,
    by: &Principal,
) -> ApiResult<BuildDetail> {
    check_target(target)?;
    if build.status != RunStatus::Success {
        return Err(ApiError::conflict(format!(
            "build {} is `{}`; only a successful build can be promoted",
            build.number,
            build.status.as_str()
        )));
    }
    let trigger = Trigger {
        event: BuildEvent::Promote,
        parent_id: Some(build.id),
        deploy_target: Some(target.to_string()),
        ..trigger_of_build(build, by)
    };
    create(state, repo, &trigger).await
}

/// Records a person's decision on an approval step and tells the waiting runner.
pub async fn decide(
    state: &AppState,
    detail: &BuildDetail,
    step_key: &str,
    decision: ApprovalDecision,
    by: &Principal,
) -> ApiResult<Approval> {
    let step = find_step(detail, step_key)?;
    if step.kind != "approval" {
        return Err(ApiError::conflict(format!(
            "step `{}` is a `{}` step, not an approval step",
            step.name, step.kind
        )));
    }
    let approval = Approval {
        by: by.subject().to_string(),
        at: now_ms(),
        decision,
    };
    if !state.store.decide_approval(step.id, &approval).await? {
        return Err(ApiError::conflict(format!(
            "step `{}` is `{}`: it was already decided or no longer waits",
            step.name,
            step.status.as_str()
        )));
    }
    state.approvals.announce(DecidedApproval {
        step_id: step.id,
        approval: approval.clone(),
    });
    tracing::info!(
        step.id = step.id,
        by = by.subject(),
        decision = decision.as_str(),
        "approval decided"
    );
    Ok(approval)
}

/// The step a path names: its id, or a name that only one workflow of the build has.
pub fn find_step<'a>(detail: &'a BuildDetail, key: &str) -> ApiResult<&'a gantry_store::Step> {
    let steps = detail.workflows.iter().flat_map(|w| &w.steps);
    if let Ok(id) = key.parse::<i64>()
        && let Some(step) = steps.clone().find(|s| s.id == id)
    {
        return Ok(step);
    }
    let named: Vec<_> = steps.filter(|s| s.name == key).collect();
    match named.as_slice() {
        [one] => Ok(one),
        [] => Err(ApiError::not_found(format!(
            "build {} has no step `{key}`",
            detail.build.number
        ))),
        _ => Err(ApiError::conflict(format!(
            "several workflows of build {} have a step `{key}`; name it by its id",
            detail.build.number
        ))),
    }
}

/// The trigger that builds the same commit again, by `by`.
fn trigger_of_build(build: &Build, by: &Principal) -> Trigger {
    Trigger {
        event: build.event,
        git_ref: build.git_ref.clone(),
        branch: build
            .git_ref
            .strip_prefix("refs/heads/")
            .unwrap_or_default()
            .to_string(),
        tag: build
            .git_ref
            .strip_prefix("refs/tags/")
            .unwrap_or_default()
            .to_string(),
        sha: build.sha.clone(),
        before: build.before.clone(),
        message: build.message.clone(),
        author: build.author.clone(),
        sender: by.subject().to_string(),
        pull_request: (build.event == BuildEvent::PullRequest).then(|| PullRequestInfo {
            number: pull_number(&build.git_ref),
            base_branch: String::new(),
            base_sha: String::new(),
            head_sha: build.sha.clone(),
            // The stored build does not say where the head came from: assume a fork, so a
            // rebuilt pull request never gains secrets (rule 2).
            from_fork: true,
            action: "restart".into(),
        }),
        link: String::new(),
        parent_id: None,
        deploy_target: None,
    }
}

/// `refs/pull/7/head` → 7 (0 when the ref says nothing).
fn pull_number(git_ref: &str) -> u64 {
    git_ref
        .split('/')
        .find_map(|part| part.parse().ok())
        .unwrap_or(0)
}

fn check_target(target: &str) -> ApiResult<()> {
    let ok = !target.is_empty()
        && target.len() <= 64
        && target
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "deploy target `{}` must be 1 to 64 letters, digits, `-`, `_` or `.`",
            target.chars().take(80).collect::<String>()
        )))
    }
}
