//! Running one claimed workflow: plan, secrets, lease, timeout, cancellation, statuses.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use gantry_runner::{Backend, PipelineStatus, RunConfig, RunOutcome, Runtime};
use gantry_store::{BuildDetail, QueueItem, Repo, RunStatus, StatusChange, now_ms};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::approver::StoreApprover;
use super::writer::RunWriter;
use super::{LEASE_MS, RunTarget, backend, finish, plan};
use crate::state::AppState;

/// Events a run may have in flight before the runtime waits for the writer.
const EVENT_BUFFER: usize = 256;

/// Why a run was stopped other than by a person's cancel request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopReason {
    Timeout { minutes: i64 },
    LeaseLost,
    Shutdown,
}

impl StopReason {
    fn message(self) -> String {
        match self {
            StopReason::Timeout { minutes } => format!(
                "the build ran longer than the repository's timeout of {minutes} minute{} and \
                 was stopped; raise the timeout in the repository settings if it needs longer",
                if minutes == 1 { "" } else { "s" }
            ),
            StopReason::LeaseLost => "this runner lost its claim on the workflow (the database \
                 was unreachable too long); restart the build"
                .into(),
            StopReason::Shutdown => {
                "the server shut down while the build ran; restart the build".into()
            }
        }
    }
}

/// One claimed queue item being run by the in-process runner.
pub struct WorkflowRun {
    state: AppState,
    backend: Arc<dyn Backend>,
    runner_id: String,
    stop: Arc<Mutex<Option<StopReason>>>,
}

impl WorkflowRun {
    /// A run on `backend` for the runner `runner_id`.
    pub fn new(state: AppState, backend: Arc<dyn Backend>, runner_id: String) -> Self {
        WorkflowRun {
            state,
            backend,
            runner_id,
            stop: Arc::default(),
        }
    }

    /// Runs the item's workflow to its end and completes the item.
    pub async fn run(self, item: QueueItem) {
        let token = self.state.cancels.register(item.build_id);
        let keeper = self.keep_lease(&item, token.clone());
        if let Err(message) = self.execute(&item, token).await {
            tracing::warn!(build.id = item.build_id, workflow.id = item.workflow_id, error = %message, "workflow could not run");
            self.fail_workflow(&item, message).await;
        }
        keeper.cancel();
        if let Err(error) = self.state.store.complete(item.id, &self.runner_id).await {
            tracing::error!(queue.item = item.id, error = %error, "completing a queue item failed");
        }
        self.state.cancels.release(item.build_id);
    }

    /// Extends the lease until the returned token is cancelled; cancels the run if the
    /// lease is lost.
    fn keep_lease(&self, item: &QueueItem, run: CancellationToken) -> CancellationToken {
        let done = CancellationToken::new();
        let (state, runner_id, stop, item_id) = (
            self.state.clone(),
            self.runner_id.clone(),
            Arc::clone(&self.stop),
            item.id,
        );
        let until_done = done.clone();
        tokio::spawn(async move {
            let every = Duration::from_millis(u64::try_from(LEASE_MS / 3).unwrap_or(20_000));
            loop {
                tokio::select! {
                    () = until_done.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
                let held = state
                    .store
                    .extend_lease(item_id, &runner_id, now_ms() + LEASE_MS)
                    .await;
                if let Ok(false) = held {
                    set_stop(&stop, StopReason::LeaseLost);
                    run.cancel();
                    return;
                }
            }
        });
        done
    }

    async fn load(&self, item: &QueueItem) -> Result<(Repo, BuildDetail), String> {
        let store_error = |e: gantry_store::StoreError| format!("reading the build failed: {e}");
        let repo = self
            .state
            .store
            .repo_by_id(item.repo_id)
            .await
            .map_err(store_error)?
            .ok_or("its repository was deleted")?;
        let build = self
            .state
            .store
            .build_by_id(item.build_id)
            .await
            .map_err(store_error)?
            .ok_or("the build was deleted")?;
        Ok((repo, build))
    }

    async fn execute(&self, item: &QueueItem, token: CancellationToken) -> Result<(), String> {
        let (repo, build) = self.load(item).await?;
        let Some(workflow) = build
            .workflows
            .iter()
            .find(|w| w.workflow.id == item.workflow_id)
        else {
            return Err("the workflow is not part of its build any more".into());
        };
        if build.build.status.is_terminal() || workflow.workflow.status.is_terminal() {
            return Ok(()); // cancelled (or ended) before it was claimed: nothing to run
        }
        let target = RunTarget {
            runner_id: self.runner_id.clone(),
            repo_id: repo.id,
            repo: repo.full_name(),
            build_id: build.build.id,
            build_number: build.build.number,
            workflow_id: workflow.workflow.id,
            approval_steps: workflow
                .steps
                .iter()
                .filter(|s| s.kind == "approval")
                .map(|s| s.name.clone())
                .collect(),
            steps: workflow.steps.clone(),
        };
        let prepared = plan::prepare(&self.state, &repo, &workflow.workflow).await?;
        self.mark_running(&target).await;
        let timer = self.arm_timeout(&repo, token.clone());
        let outcome = self.run_plan(&target, prepared, token).await;
        timer.cancel();
        self.record_outcome(&target, &outcome).await;
        Ok(())
    }

    /// Cancels the run when the repository's timeout passes or the server shuts down.
    fn arm_timeout(&self, repo: &Repo, run: CancellationToken) -> CancellationToken {
        let done = CancellationToken::new();
        let minutes = repo.timeout_minutes.max(1);
        let limit = Duration::from_secs(u64::try_from(minutes).unwrap_or(60) * 60);
        let (stop, shutdown, until_done) = (
            Arc::clone(&self.stop),
            self.state.shutdown.clone(),
            done.clone(),
        );
        tokio::spawn(async move {
            let reason = tokio::select! {
                () = until_done.cancelled() => return,
                () = tokio::time::sleep(limit) => StopReason::Timeout { minutes },
                () = shutdown.cancelled() => StopReason::Shutdown,
            };
            set_stop(&stop, reason);
            run.cancel();
        });
        done
    }

    async fn mark_running(&self, target: &RunTarget) {
        let change = StatusChange {
            status: RunStatus::Running,
            at: now_ms(),
            error: None,
        };
        let store = &self.state.store;
        if let Err(error) = store
            .update_workflow_status(target.workflow_id, &change)
            .await
        {
            tracing::error!(workflow.id = target.workflow_id, error = %error, "storing a workflow status failed");
        }
        match store.update_build_status(target.build_id, &change).await {
            Ok(true) => target.announce_build(&self.state, RunStatus::Running, None),
            Ok(false) => {}
            Err(error) => {
                tracing::error!(build.id = target.build_id, error = %error, "storing a build status failed")
            }
        }
    }

    async fn run_plan(
        &self,
        target: &RunTarget,
        prepared: plan::PreparedRun,
        token: CancellationToken,
    ) -> RunOutcome {
        let step_ids = target
            .steps
            .iter()
            .map(|s| (s.name.clone(), s.id))
            .collect();
        let approver = StoreApprover::new(self.state.clone(), target.build_id, step_ids);
        let config = RunConfig {
            secrets: prepared.secrets,
            ..RunConfig::default()
        };
        let runtime =
            Runtime::new(Arc::clone(&self.backend), config).with_approver(Arc::new(approver));
        let (events_tx, events_rx) = mpsc::channel(EVENT_BUFFER);
        let writer = RunWriter::new(self.state.clone(), target.clone());
        let writing = tokio::spawn(writer.run(events_rx));
        let id = backend::workflow_id(target.build_id, target.workflow_id);
        let outcome = runtime.run(&id, &prepared.plan, events_tx, token).await;
        drop(runtime);
        if let Err(error) = writing.await {
            tracing::error!(error = %error, "the run's status writer stopped");
        }
        outcome
    }

    async fn record_outcome(&self, target: &RunTarget, outcome: &RunOutcome) {
        let stop = *self.stop.lock().unwrap_or_else(PoisonError::into_inner);
        let (status, error) = match (outcome.status, stop) {
            (PipelineStatus::Success, _) => (RunStatus::Success, None),
            (PipelineStatus::Failure, _) => (RunStatus::Failure, None),
            (PipelineStatus::Cancelled, Some(reason)) => (RunStatus::Error, Some(reason.message())),
            (PipelineStatus::Cancelled, None) => (RunStatus::Killed, None),
            (PipelineStatus::Error, _) => (
                RunStatus::Error,
                Some(
                    outcome
                        .error
                        .clone()
                        .unwrap_or_else(|| "the run failed".into()),
                ),
            ),
        };
        finish::finish_workflow(&self.state, target, status, error).await;
    }

    async fn fail_workflow(&self, item: &QueueItem, message: String) {
        let Ok((repo, build)) = self.load(item).await else {
            return;
        };
        let target = RunTarget {
            runner_id: self.runner_id.clone(),
            repo_id: repo.id,
            repo: repo.full_name(),
            build_id: build.build.id,
            build_number: build.build.number,
            workflow_id: item.workflow_id,
            steps: Vec::new(),
            approval_steps: Vec::new(),
        };
        finish::finish_workflow(&self.state, &target, RunStatus::Error, Some(message)).await;
    }
}

fn set_stop(stop: &Mutex<Option<StopReason>>, reason: StopReason) {
    let mut stop = stop.lock().unwrap_or_else(PoisonError::into_inner);
    // The first reason wins: a timeout that fires during shutdown stays a timeout.
    stop.get_or_insert(reason);
}
