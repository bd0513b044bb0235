//! The scheduler and the in-process runner: claims queued workflows under a lease, runs
//! them with [`gantry_runner::Runtime`], and writes what happens to the store and the hub.
//!
//! Its settings come from [`ServerConfig`](crate::ServerConfig): `runner_capacity`
//! (workflows at once) and `docker_labels` (added to every Docker object). A private
//! repository's clone step gets the repository secrets `netrc_username`, `netrc_password`
//! (and optionally `netrc_machine`) as masked `CI_NETRC_*` variables.

pub(crate) mod approver;
pub mod backend;
pub(crate) mod finish;
pub mod plan;
mod workflow;
pub(crate) mod writer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use gantry_runner::Backend;
use gantry_store::{RunStatus, Step, now_ms};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::live::{EventKind, LiveEvent};
use crate::state::AppState;

pub use finish::finish_build;
pub use writer::step_status;

/// How long a claim holds a workflow without being extended.
pub const LEASE_MS: i64 = 60_000;
/// How often the runner looks at the queue when nobody announced work.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How often expired leases (of runners that vanished) are put back in the queue.
const REQUEUE_INTERVAL: Duration = Duration::from_secs(15);
/// How long to wait before trying an unreachable backend again.
const BACKEND_RETRY: Duration = Duration::from_secs(5);
/// Claims of one workflow before it is given up.
pub(crate) const MAX_ATTEMPTS: i64 = 3;

/// Cancellation handles of the builds running in this process, by build id.
#[derive(Debug, Clone, Default)]
pub struct Cancels {
    running: Arc<Mutex<HashMap<i64, (CancellationToken, usize)>>>,
}

impl Cancels {
    fn lock(&self) -> MutexGuard<'_, HashMap<i64, (CancellationToken, usize)>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Cancels a running build's steps; false when it runs nowhere in this process.
    pub fn cancel(&self, build_id: i64) -> bool {
        match self.lock().get(&build_id) {
            Some((token, _)) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// The build's token, shared by its workflows running here; pair with `release`.
    fn register(&self, build_id: i64) -> CancellationToken {
        let mut running = self.lock();
        let entry = running
            .entry(build_id)
            .or_insert_with(|| (CancellationToken::new(), 0));
        entry.1 += 1;
        entry.0.clone()
    }

    /// One workflow of the build stopped running here.
    fn release(&self, build_id: i64) {
        let mut running = self.lock();
        if let Some(entry) = running.get_mut(&build_id) {
            entry.1 = entry.1.saturating_sub(1);
            if entry.1 == 0 {
                running.remove(&build_id);
            }
        }
    }

    /// Builds running in this process.
    pub fn running(&self) -> usize {
        self.lock().len()
    }
}

/// Who a workflow run belongs to: enough to write its statuses and announce them.
#[derive(Debug, Clone)]
pub struct RunTarget {
    /// The in-process runner's id.
    pub runner_id: String,
    /// Repository id.
    pub repo_id: i64,
    /// `owner/name`.
    pub repo: String,
    /// Build id.
    pub build_id: i64,
    /// Build number.
    pub build_number: i64,
    /// Workflow id.
    pub workflow_id: i64,
    /// The workflow's steps.
    pub steps: Vec<Step>,
    /// Names of its approval steps.
    pub approval_steps: Vec<String>,
}

impl RunTarget {
    /// Tells `/api/events` followers that the build's status changed.
    pub fn announce_build(&self, state: &AppState, status: RunStatus, error: Option<String>) {
        state.live.publish_event(LiveEvent {
            kind: EventKind::Build,
            repo_id: self.repo_id,
            repo: self.repo.clone(),
            build: self.build_number,
            step: None,
            status,
            error,
        });
    }
}

/// After `state.shutdown` was cancelled: waits (at most `limit`) until the workflows
/// running here have stopped and recorded their final status, so a graceful stop leaves
/// no build `running`.
pub async fn drain(state: &AppState, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while state.cancels.running() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts the scheduler and the in-process runner in the background.
pub fn spawn(state: AppState) {
    tokio::spawn(async move {
        let Some(backend) = open_backend(&state).await else {
            return;
        };
        tokio::spawn(requeue_expired(state.clone()));
        claim_loop(state, backend).await;
    });
}

/// Opens the backend, retrying while it is unreachable (a Docker engine that starts
/// after the server); None when the server shuts down first.
async fn open_backend(state: &AppState) -> Option<Arc<dyn Backend>> {
    let mut failures = 0u32;
    loop {
        match backend::open(&state.config).await {
            Ok(backend) => return Some(backend),
            Err(error) => {
                // Said loudly once, then quietly: the retry goes on.
                let error = format!("{error:#}");
                if failures == 0 {
                    tracing::error!(error = %error, "the in-process runner cannot start yet; builds stay queued, retrying every 5 s");
                } else {
                    tracing::debug!(error = %error, "the in-process runner still cannot start");
                }
                failures += 1;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(BACKEND_RETRY) => {}
            () = state.shutdown.cancelled() => return None,
        }
    }
}

/// Claims work while there is capacity, until the server shuts down.
async fn claim_loop(state: AppState, backend: Arc<dyn Backend>) {
    let runner_id = backend::runner_id(&state.config.data_dir);
    let labels = backend::runner_labels(&state.config);
    // At least 1: `launch` refused 0 (`ServerConfig::check`).
    let slots = Arc::new(Semaphore::new(state.config.runner_capacity));
    tracing::info!(runner.id = %runner_id, runner.labels = ?labels, "in-process runner started");
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return,
            },
            () = state.shutdown.cancelled() => return,
        };
        match state
            .store
            .claim_next(&runner_id, &labels, now_ms(), LEASE_MS)
            .await
        {
            Ok(Some(item)) => {
                let run = workflow::WorkflowRun::new(
                    state.clone(),
                    Arc::clone(&backend),
                    runner_id.clone(),
                );
                tokio::spawn(async move {
                    run.run(item).await;
                    drop(slot);
                });
            }
            Ok(None) => {
                drop(slot);
                wait_for_work(&state).await;
            }
            Err(error) => {
                drop(slot);
                // A stop closes the database under a claim in flight: nothing went wrong.
                if !state.shutdown.is_cancelled() {
                    tracing::error!(error = %error, "claiming queued work failed");
                }
                wait_for_work(&state).await;
            }
        }
    }
}

async fn wait_for_work(state: &AppState) {
    tokio::select! {
        () = state.live.work_announced() => {}
        () = tokio::time::sleep(POLL_INTERVAL) => {}
        () = state.shutdown.cancelled() => {}
    }
}

/// Puts work of vanished runners back in the queue now and then.
async fn requeue_expired(state: AppState) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(REQUEUE_INTERVAL) => {}
            () = state.shutdown.cancelled() => return,
        }
        match state.store.requeue_expired(now_ms(), MAX_ATTEMPTS).await {
            Ok(outcome) => {
                if !outcome.requeued.is_empty() {
                    state.live.announce_work();
                }
                for item in &outcome.failed {
                    give_up(&state, item).await;
                }
            }
            Err(error) => tracing::warn!(error = %error, "requeueing expired work failed"),
        }
    }
}

/// A workflow whose runners kept vanishing ends in `error` (its open steps closed), and
/// its build with it, rather than staying `pending` forever.
pub(crate) async fn give_up(state: &AppState, item: &gantry_store::QueueItem) {
    let message = item.error.clone().unwrap_or_else(|| {
        format!("no runner finished this workflow in {MAX_ATTEMPTS} attempts; restart the build")
    });
    let (Ok(Some(repo)), Ok(Some(build))) = (
        state.store.repo_by_id(item.repo_id).await,
        state.store.build_by_id(item.build_id).await,
    ) else {
        return;
    };
    let target = RunTarget {
        runner_id: String::new(),
        repo_id: repo.id,
        repo: repo.full_name(),
        build_id: build.build.id,
        build_number: build.build.number,
        workflow_id: item.workflow_id,
        steps: Vec::new(),
        approval_steps: Vec::new(),
    };
    finish::finish_workflow(state, &target, RunStatus::Error, Some(message)).await;
}
