//! The DAG runtime: runs one [`Plan`] on a [`Backend`].

use std::sync::Arc;

use gantry_pipeline::plan::Plan;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::approval::{Approver, NoApprover};
use crate::backend::{Backend, WorkflowId};
use crate::config::RunConfig;
use crate::report::{PipelineStatus, RunEvent, RunOutcome, StepReport};

/// Runs plans on one backend.
pub struct Runtime {
    backend: Arc<dyn Backend>,
    config: RunConfig,
    approver: Arc<dyn Approver>,
}

impl Runtime {
    /// A runtime over `backend`; approval steps are rejected until an approver is set.
    pub fn new(backend: Arc<dyn Backend>, config: RunConfig) -> Self {
        Self {
            backend,
            config,
            approver: Arc::new(NoApprover),
        }
    }

    /// Sets who decides approval steps.
    pub fn with_approver(mut self, approver: Arc<dyn Approver>) -> Self {
        self.approver = approver;
        self
    }

    /// Runs `plan` as workflow `id`, sending step states and log lines on `events`.
    pub async fn run(
        &self,
        id: &WorkflowId,
        plan: &Plan,
        events: mpsc::Sender<RunEvent>,
        cancel: CancellationToken,
    ) -> RunOutcome {
        let _ = (
            &self.backend,
            &self.config,
            &self.approver,
            id,
            events,
            cancel,
        );
        RunOutcome {
            status: PipelineStatus::Error,
            steps: plan
                .steps
                .iter()
                .map(|s| StepReport::pending(&s.name))
                .collect(),
            error: Some("the runtime is not implemented yet".into()),
        }
    }
}
