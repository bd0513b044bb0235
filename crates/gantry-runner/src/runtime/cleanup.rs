//! Cleanup that always runs: every step the run started is destroyed, then the workflow.
//!
//! The cancel token never reaches this path. When [`Runtime::run`](crate::Runtime::run)
//! ends normally it awaits [`CleanupGuard::finish`], which does the work in a spawned
//! task; if the `run` future is dropped instead, the guard's `Drop` spawns the same task,
//! so nothing is left behind either way (as long as the tokio runtime itself lives on).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use gantry_pipeline::plan::Step;
use tokio::task::JoinSet;

use crate::backend::{Backend, WorkflowId};

use super::StepDone;

/// How long log readers of services and detached steps may take to drain after their
/// processes were destroyed, before they are stopped.
const BACKGROUND_DRAIN: Duration = Duration::from_secs(2);

/// What a run has started on the backend and not yet destroyed.
pub(super) struct Cleanup {
    backend: Arc<dyn Backend>,
    id: WorkflowId,
    /// Step name → (the step, destroyed since its last start).
    started: Mutex<BTreeMap<String, (Step, bool)>>,
    /// Log readers of services and detached steps.
    background: Mutex<JoinSet<()>>,
    /// Preparations of steps, and destroys of prepared steps that will not start.
    preparations: Mutex<JoinSet<()>>,
}

impl Cleanup {
    pub(super) fn new(backend: Arc<dyn Backend>, id: WorkflowId) -> Arc<Self> {
        Arc::new(Self {
            backend,
            id,
            started: Mutex::new(BTreeMap::new()),
            background: Mutex::new(JoinSet::new()),
            preparations: Mutex::new(JoinSet::new()),
        })
    }

    /// Notes that `step` is about to be prepared or started, so it is destroyed at the end
    /// even if that is interrupted half-way or it never starts.
    pub(super) fn starting(&self, step: &Step) {
        let mut started = self.started.lock().unwrap_or_else(PoisonError::into_inner);
        started.insert(step.name.clone(), (step.clone(), false));
    }

    /// Destroys one step now (after it ended, timed out or was cancelled).
    pub(super) async fn destroy_step(&self, step: &Step) {
        match self.backend.destroy_step(&self.id, step).await {
            Ok(()) => {
                let mut started = self.started.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(entry) = started.get_mut(&step.name) {
                    entry.1 = true;
                }
            }
            Err(e) => tracing::warn!(
                workflow.id = %self.id, step.name = %step.name, error = %e,
                "destroying a step failed; retried at the end of the run"
            ),
        }
    }

    /// Runs `reader` until the end of the run (log readers of services, detached steps).
    pub(super) fn spawn_background(&self, reader: impl Future<Output = ()> + Send + 'static) {
        let mut background = self
            .background
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        background.spawn(reader);
    }

    /// Runs `work` (a preparation) until it ends or cleanup begins.
    pub(super) fn spawn_preparation(&self, work: impl Future<Output = ()> + Send + 'static) {
        let mut preparations = self
            .preparations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while preparations.try_join_next().is_some() {}
        preparations.spawn(work);
    }

    /// Stops every preparation, waiting until they are gone, so none creates anything after
    /// the destroy calls.
    async fn stop_preparations(&self) {
        let mut preparations = {
            let mut preparations = self
                .preparations
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            std::mem::take(&mut *preparations)
        };
        preparations.shutdown().await;
    }

    /// Destroys whatever is still there, then the workflow, then stops log readers.
    async fn destroy_everything(&self) {
        let remaining: Vec<Step> = {
            let started = self.started.lock().unwrap_or_else(PoisonError::into_inner);
            started
                .values()
                .filter(|(_, destroyed)| !destroyed)
                .map(|(step, _)| step.clone())
                .collect()
        };
        let destroys = remaining.iter().map(|step| self.destroy_step(step));
        futures_util::future::join_all(destroys).await;
        if let Err(e) = self.backend.destroy_workflow(&self.id).await {
            tracing::warn!(workflow.id = %self.id, error = %e, "destroying the workflow failed");
        }
        let mut readers = {
            let mut background = self
                .background
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            std::mem::take(&mut *background)
        };
        let drained = async { while readers.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(BACKGROUND_DRAIN, drained).await;
        readers.abort_all();
    }
}

/// Owns the run's step tasks and makes sure cleanup happens exactly once.
pub(super) struct CleanupGuard {
    cleanup: Arc<Cleanup>,
    /// The running step tasks (owned here so cleanup can wait for them to stop first).
    pub(super) tasks: JoinSet<StepDone>,
    armed: bool,
}

impl CleanupGuard {
    pub(super) fn new(cleanup: Arc<Cleanup>) -> Self {
        Self {
            cleanup,
            tasks: JoinSet::new(),
            armed: true,
        }
    }

    /// Cleans up and waits until it is done. Dropping this future does not stop cleanup.
    pub(super) async fn finish(mut self) {
        self.armed = false;
        let tasks = std::mem::take(&mut self.tasks);
        let handle = tokio::spawn(clean_up(Arc::clone(&self.cleanup), tasks));
        if let Err(e) = handle.await {
            tracing::error!(workflow.id = %self.cleanup.id, error = %e, "cleanup task failed");
        }
    }
}

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let tasks = std::mem::take(&mut self.tasks);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(clean_up(Arc::clone(&self.cleanup), tasks));
            }
            Err(_) => tracing::error!(
                workflow.id = %self.cleanup.id,
                "run dropped outside a tokio runtime: its steps could not be cleaned up; \
                 `reap_leftovers` removes them later"
            ),
        }
    }
}

/// Stops the step tasks and preparations (waiting until they are gone, so none starts or
/// creates anything after the destroy calls), then destroys everything.
async fn clean_up(cleanup: Arc<Cleanup>, mut tasks: JoinSet<StepDone>) {
    tasks.shutdown().await;
    cleanup.stop_preparations().await;
    cleanup.destroy_everything().await;
}
