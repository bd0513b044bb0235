//! The DAG runtime: runs one [`Plan`] on a [`Backend`].

mod cleanup;
mod events;
mod human;
mod prepare;
mod schedule;
mod step;
mod step_log;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gantry_pipeline::plan::{FailurePolicy, Plan};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use self::cleanup::{Cleanup, CleanupGuard};
use self::events::RunEvents;
use self::schedule::Scheduler;
use crate::approval::{Approver, NoApprover};
use crate::backend::{Backend, WorkflowId};
use crate::config::RunConfig;
use crate::mask::Masker;
use crate::report::{PipelineStatus, RunEvent, RunOutcome, StepReport, StepStatus};

/// What a step task hands back: the step's index in the plan and its final report.
type StepDone = (usize, StepReport);

/// Runs plans on one backend.
///
/// Every secret value of [`RunConfig::secrets`] is masked in every log line and error
/// this runtime reports, whichever step uses it.
pub struct Runtime {
    backend: Arc<dyn Backend>,
    concurrency: usize,
    default_timeout: Duration,
    secrets: Arc<BTreeMap<String, String>>,
    masker: Arc<Masker>,
    approver: Arc<dyn Approver>,
    delivery_grace: Duration,
}

/// Everything the tasks of one run share.
struct RunContext {
    backend: Arc<dyn Backend>,
    id: WorkflowId,
    concurrency: usize,
    default_timeout: Duration,
    secrets: Arc<BTreeMap<String, String>>,
    masker: Arc<Masker>,
    approver: Arc<dyn Approver>,
    events: Arc<RunEvents>,
    cancel: CancellationToken,
    cleanup: Arc<Cleanup>,
}

impl Runtime {
    /// A runtime over `backend`; approval steps are rejected until an approver is set.
    pub fn new(backend: Arc<dyn Backend>, config: RunConfig) -> Self {
        let masker = Masker::new(config.secrets.values().map(String::as_str));
        Self {
            backend,
            concurrency: config.concurrency,
            default_timeout: config.default_timeout,
            secrets: Arc::new(config.secrets),
            masker: Arc::new(masker),
            approver: Arc::new(NoApprover),
            delivery_grace: config.delivery_grace,
        }
    }

    /// Sets who decides approval steps.
    pub fn with_approver(mut self, approver: Arc<dyn Approver>) -> Self {
        self.approver = approver;
        self
    }

    /// Runs `plan` as workflow `id`, sending step states and log lines on `events`.
    ///
    /// Log lines come in [`LogBatch`](crate::LogBatch)es of at most 1024 lines and about
    /// 64 KiB of text, so a channel of a few dozen events is plenty; a full channel makes
    /// the steps' log readers wait (their output then waits in the pipe or the engine),
    /// which bounds the memory a slow receiver can make the run hold.
    ///
    /// Delivery: until `cancel` fires, every event is delivered, in order per step, and a
    /// consumer that stops reading holds the run (never its steps' timeouts: a step that
    /// times out is destroyed before its last lines are sent). A receiver that is dropped
    /// stops nothing; its events are discarded. Once `cancel` fires, the consumer can no
    /// longer hold the run: each step's final report still waits for room, up to
    /// [`RunConfig::delivery_grace`] counted from the first send that found the channel
    /// full (one deadline for the whole run), so a consumer that is still reading gets
    /// every final report; log lines and other reports are sent only if there is room at
    /// once. Whatever was dropped, the returned [`RunOutcome`] holds every final report.
    ///
    /// Cancelling `cancel` destroys running steps and cancels pending ones. Cleanup
    /// (destroying every started step, then the workflow) always runs before this returns
    /// — and also when this future is dropped early.
    pub async fn run(
        &self,
        id: &WorkflowId,
        plan: &Plan,
        events: mpsc::Sender<RunEvent>,
        cancel: CancellationToken,
    ) -> RunOutcome {
        let cleanup = Cleanup::new(Arc::clone(&self.backend), id.clone());
        let mut guard = CleanupGuard::new(Arc::clone(&cleanup));
        let ctx = Arc::new(RunContext {
            backend: Arc::clone(&self.backend),
            id: id.clone(),
            concurrency: self.concurrency,
            default_timeout: self.default_timeout,
            secrets: Arc::clone(&self.secrets),
            masker: Arc::clone(&self.masker),
            approver: Arc::clone(&self.approver),
            events: Arc::new(RunEvents::new(events, cancel.clone(), self.delivery_grace)),
            cancel,
            cleanup,
        });
        let outcome = drive(&ctx, plan, &mut guard).await;
        guard.finish().await;
        outcome
    }
}

/// Sets up the workflow, starts services, schedules the steps.
async fn drive(ctx: &Arc<RunContext>, plan: &Plan, guard: &mut CleanupGuard) -> RunOutcome {
    for step in plan.services.iter().chain(&plan.steps) {
        ctx.send(&StepReport::pending(&step.name)).await;
    }
    let setup = tokio::select! {
        biased;
        () = ctx.cancel.cancelled() => None,
        setup = ctx.backend.setup_workflow(&ctx.id, plan) => Some(setup),
    };
    match setup {
        None => return not_run(ctx, plan, StepStatus::Cancelled, None).await,
        Some(Err(e)) => {
            let error = format!("setting up the workflow failed: {e}");
            return not_run(ctx, plan, StepStatus::Skipped, Some(error)).await;
        }
        Some(Ok(())) => {}
    }
    let (mut reports, services_failed) = start_services(ctx, plan).await;
    let scheduled = Scheduler::new(Arc::clone(ctx), plan, services_failed)
        .run(&mut guard.tasks)
        .await;
    reports.extend(scheduled.reports);
    let status = if reports.iter().any(|r| r.status == StepStatus::Cancelled) {
        PipelineStatus::Cancelled
    } else if scheduled.error.is_some() {
        PipelineStatus::Error
    } else if scheduled.failed {
        PipelineStatus::Failure
    } else {
        PipelineStatus::Success
    };
    RunOutcome {
        status,
        steps: reports,
        error: scheduled.error.map(|e| ctx.masker.mask(&e).into_owned()),
    }
}

/// Starts every service, in order. Returns their reports and whether one failed (and
/// its failure is not ignored).
async fn start_services(ctx: &Arc<RunContext>, plan: &Plan) -> (Vec<StepReport>, bool) {
    let mut reports = Vec::with_capacity(plan.services.len());
    let mut failed = false;
    for service in &plan.services {
        let report = StepReport::pending(&service.name);
        let report = match step::resolve_secrets(&ctx.secrets, service) {
            Err(error) => ctx.finish(report, StepStatus::Failure, Some(error)).await,
            Ok(secrets) => {
                let service = step::with_build_status(service.clone(), false);
                step::start_background(ctx, &service, &secrets, report, None).await
            }
        };
        if report.status == StepStatus::Failure && service.failure == FailurePolicy::Fail {
            failed = true;
        }
        reports.push(report);
    }
    (reports, failed)
}

/// The outcome of a run whose steps never started.
async fn not_run(
    ctx: &RunContext,
    plan: &Plan,
    status: StepStatus,
    error: Option<String>,
) -> RunOutcome {
    let mut reports = Vec::new();
    for step in plan.services.iter().chain(&plan.steps) {
        let report = StepReport::pending(&step.name);
        reports.push(ctx.finish(report, status, None).await);
    }
    RunOutcome {
        status: match status {
            StepStatus::Cancelled => PipelineStatus::Cancelled,
            _ => PipelineStatus::Error,
        },
        steps: reports,
        error: error.map(|e| ctx.masker.mask(&e).into_owned()),
    }
}

impl RunContext {
    /// Sends a step report; a caller that stopped listening does not stop the run.
    async fn send(&self, report: &StepReport) {
        self.events.send(RunEvent::Step(report.clone())).await;
    }

    /// Marks the report running (first start time kept) and sends it.
    async fn mark_running(&self, report: &mut StepReport) {
        report.status = StepStatus::Running;
        report.started.get_or_insert_with(SystemTime::now);
        self.send(report).await;
    }

    /// Gives the report its final status and masked error, sends it and returns it.
    async fn finish(
        &self,
        mut report: StepReport,
        status: StepStatus,
        error: Option<String>,
    ) -> StepReport {
        report.status = status;
        report.error = error.map(|e| self.masker.mask(&e).into_owned());
        report.finished = Some(SystemTime::now());
        self.send(&report).await;
        report
    }
}
