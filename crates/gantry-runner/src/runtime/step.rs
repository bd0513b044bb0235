//! Running one step: secrets, attempts with timeout and retries, approvals, detached
//! steps and services.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use gantry_pipeline::plan::{Step, StepKind};

use super::prepare::Prepared;
use super::step_log::StepLog;
use super::{RunContext, human};
use crate::approval::ApprovalDecision;
use crate::backend::{BackendError, LogStream, StepExit};
use crate::report::{StepReport, StepStatus};

/// How long a step's log may keep flowing after its process ended (output of children
/// that outlived it) before the runtime stops reading.
const LOG_DRAIN: Duration = Duration::from_secs(5);

/// How one attempt ended.
enum Attempt {
    Succeeded,
    Failed {
        exit_code: Option<i64>,
        error: String,
    },
    Cancelled,
}

/// Runs `step` to a final report. `failed_so_far` is the pipeline status it starts under;
/// `prepared` is its preparation, if it had one (it must be over before the step starts).
pub(super) async fn run_step(
    ctx: Arc<RunContext>,
    step: Step,
    failed_so_far: bool,
    prepared: Option<Prepared>,
) -> StepReport {
    let report = StepReport::pending(&step.name);
    if step.kind == StepKind::Approval {
        return approve(&ctx, &step, report).await;
    }
    let secrets = match resolve_secrets(&ctx.secrets, &step) {
        Ok(secrets) => secrets,
        Err(error) => return ctx.finish(report, StepStatus::Failure, Some(error)).await,
    };
    let step = with_build_status(step, failed_so_far);
    if step.detach {
        return start_background(&ctx, &step, &secrets, report, prepared).await;
    }
    run_attempts(&ctx, &step, &secrets, report, prepared).await
}

/// Starts a service or detached step: success once started; its log is read until the
/// end of the run, and it is destroyed with the workflow.
pub(super) async fn start_background(
    ctx: &Arc<RunContext>,
    step: &Step,
    secrets: &[(String, String)],
    mut report: StepReport,
    prepared: Option<Prepared>,
) -> StepReport {
    ctx.cleanup.starting(step);
    report.attempt = 1;
    ctx.mark_running(&mut report).await;
    let start = async {
        if let Some(prepared) = prepared {
            prepared.finished().await;
        }
        ctx.backend.start_step(&ctx.id, step, secrets).await
    };
    let started = tokio::select! {
        biased;
        () = ctx.cancel.cancelled() => {
            ctx.cleanup.destroy_step(step).await;
            return ctx.finish(report, StepStatus::Cancelled, None).await;
        }
        started = start => started,
    };
    if let Err(e) = started {
        ctx.cleanup.destroy_step(step).await;
        return ctx
            .finish(report, StepStatus::Failure, Some(e.to_string()))
            .await;
    }
    let mut log = StepLog::new(&step.name, Arc::clone(&ctx.events), Arc::clone(&ctx.masker));
    match ctx.backend.logs(&ctx.id, step).await {
        Ok(output) => ctx
            .cleanup
            .spawn_background(async move { log.follow(output).await }),
        Err(e) => log.note(&format!("gantry: cannot read the log: {e}")).await,
    }
    ctx.finish(report, StepStatus::Success, None).await
}

/// Runs a step until an attempt succeeds or its retries are used up.
async fn run_attempts(
    ctx: &Arc<RunContext>,
    step: &Step,
    secrets: &[(String, String)],
    mut report: StepReport,
    mut prepared: Option<Prepared>,
) -> StepReport {
    let mut log = StepLog::new(&step.name, Arc::clone(&ctx.events), Arc::clone(&ctx.masker));
    let limit = step
        .timeout_secs
        .map_or(ctx.default_timeout, Duration::from_secs);
    let attempts = step.retries.saturating_add(1);
    let mut attempt = 1;
    loop {
        report.attempt = attempt;
        report.exit_code = None;
        ctx.mark_running(&mut report).await;
        ctx.cleanup.starting(step);
        let outcome = tokio::select! {
            biased;
            () = ctx.cancel.cancelled() => Attempt::Cancelled,
            timed = tokio::time::timeout(limit, attempt_once(ctx, step, secrets, &mut log, prepared.take())) => {
                timed.unwrap_or_else(|_| Attempt::Failed {
                    exit_code: None,
                    error: format!("timed out after {}", human::duration(limit)),
                })
            }
        };
        // Destroyed before the last lines are sent: a slow consumer must not keep a
        // timed-out or cancelled step alive.
        ctx.cleanup.destroy_step(step).await;
        log.flush().await;
        match outcome {
            Attempt::Succeeded => {
                report.exit_code = Some(0);
                return ctx.finish(report, StepStatus::Success, None).await;
            }
            Attempt::Cancelled => return ctx.finish(report, StepStatus::Cancelled, None).await,
            Attempt::Failed { exit_code, error } => {
                report.exit_code = exit_code;
                if attempt >= attempts {
                    return ctx.finish(report, StepStatus::Failure, Some(error)).await;
                }
                let note =
                    format!("gantry: attempt {attempt} of {attempts} failed ({error}); retrying");
                log.note(&note).await;
                attempt += 1;
            }
        }
    }
}

/// Starts the step (once its preparation, if any, is over), follows its log and waits for
/// it.
async fn attempt_once(
    ctx: &RunContext,
    step: &Step,
    secrets: &[(String, String)],
    log: &mut StepLog,
    prepared: Option<Prepared>,
) -> Attempt {
    if let Some(prepared) = prepared {
        prepared.finished().await;
    }
    if let Err(e) = ctx.backend.start_step(&ctx.id, step, secrets).await {
        return Attempt::Failed {
            exit_code: None,
            error: e.to_string(),
        };
    }
    let output = match ctx.backend.logs(&ctx.id, step).await {
        Ok(output) => Some(output),
        Err(e) => {
            log.note(&format!("gantry: cannot read the log: {e}")).await;
            None
        }
    };
    match wait_following(ctx, step, output, log).await {
        Ok(exit) => judge_exit(exit, step),
        Err(e) => Attempt::Failed {
            exit_code: None,
            error: e.to_string(),
        },
    }
}

/// Waits for the step while following its log; once it ended, lets the log drain.
async fn wait_following(
    ctx: &RunContext,
    step: &Step,
    output: Option<LogStream>,
    log: &mut StepLog,
) -> Result<StepExit, BackendError> {
    let wait = ctx.backend.wait_step(&ctx.id, step);
    let Some(output) = output else {
        return wait.await;
    };
    let follow = log.follow(output);
    tokio::pin!(wait, follow);
    tokio::select! {
        exit = &mut wait => {
            let _ = tokio::time::timeout(LOG_DRAIN, &mut follow).await;
            exit
        }
        () = &mut follow => wait.await,
    }
}

/// Success, or the failure an exit stands for.
fn judge_exit(exit: StepExit, step: &Step) -> Attempt {
    if exit.oom_killed {
        let error = match step.resources.memory {
            Some(limit) => format!("killed: out of memory (limit {})", human::bytes(limit)),
            None => "killed: out of memory".to_owned(),
        };
        return Attempt::Failed {
            exit_code: Some(exit.code),
            error,
        };
    }
    if exit.code != 0 {
        return Attempt::Failed {
            exit_code: Some(exit.code),
            error: format!("exit code {}", exit.code),
        };
    }
    Attempt::Succeeded
}

/// Asks the approver, within the step's approval timeout (none: wait until cancelled).
async fn approve(ctx: &RunContext, step: &Step, mut report: StepReport) -> StepReport {
    report.status = StepStatus::Blocked;
    report.started = Some(std::time::SystemTime::now());
    ctx.send(&report).await;
    let decide = ctx.approver.decide(&ctx.id, step);
    let limit = step.approval_timeout_secs.map(Duration::from_secs);
    let decision = tokio::select! {
        biased;
        () = ctx.cancel.cancelled() => {
            return ctx.finish(report, StepStatus::Cancelled, None).await;
        }
        decision = async {
            match limit {
                Some(limit) => tokio::time::timeout(limit, decide).await.ok(),
                None => Some(decide.await),
            }
        } => decision,
    };
    match decision {
        Some(ApprovalDecision::Approved { by }) => {
            let mut log =
                StepLog::new(&step.name, Arc::clone(&ctx.events), Arc::clone(&ctx.masker));
            log.note(&format!("approved by {by}")).await;
            ctx.finish(report, StepStatus::Success, None).await
        }
        Some(ApprovalDecision::Rejected { by, reason }) => {
            let error = format!("rejected by {by}: {reason}");
            ctx.finish(report, StepStatus::Failure, Some(error)).await
        }
        None => {
            let waited = human::duration(limit.unwrap_or_default());
            let error = format!("approval timed out after {waited}");
            ctx.finish(report, StepStatus::Failure, Some(error)).await
        }
    }
}

/// The step's secret env (name, value) pairs, or a clear error naming a missing one.
pub(super) fn resolve_secrets(
    known: &BTreeMap<String, String>,
    step: &Step,
) -> Result<Vec<(String, String)>, String> {
    step.secrets
        .iter()
        .map(|wanted| match known.get(&wanted.secret) {
            Some(value) => Ok((wanted.env.clone(), value.clone())),
            None => Err(format!(
                "secret `{}` (for ${}) is not defined: add it to the repository's secrets \
                 (with `gantry exec`: --secret {}=VALUE or --secrets-file)",
                wanted.secret, wanted.env, wanted.secret
            )),
        })
        .collect()
}

/// The step with the pipeline status it starts under in its environment.
pub(super) fn with_build_status(mut step: Step, failed_so_far: bool) -> Step {
    let status = if failed_so_far { "failure" } else { "success" };
    for name in [
        "CI_BUILD_STATUS",
        "DRONE_BUILD_STATUS",
        "CI_PIPELINE_STATUS",
    ] {
        step.environment.insert(name.to_owned(), status.to_owned());
    }
    step
}
