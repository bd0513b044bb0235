//! A pass-through to the real Docker backend that holds one step's `wait_step` until
//! another step's `prepare_step` has returned, so a test can be sure the runtime prepared
//! a container before the step it needs ended.

use std::sync::Arc;

use async_trait::async_trait;
use gantry_docker::DockerBackend;
use gantry_pipeline::plan::{Plan, Step};
use gantry_runner::{Backend, BackendError, LogStream, StepExit, WorkflowId};
use tokio::sync::watch;

/// Holds `wait_step` of `held` until `prepare_step` of `prepared` has returned (whatever
/// its result, which is kept for the test to check).
pub struct Gated {
    inner: Arc<DockerBackend>,
    held: String,
    prepared: String,
    outcome: watch::Sender<Option<Result<(), String>>>,
}

impl Gated {
    pub fn new(inner: Arc<DockerBackend>, held: &str, prepared: &str) -> Self {
        Self {
            inner,
            held: held.to_string(),
            prepared: prepared.to_string(),
            outcome: watch::channel(None).0,
        }
    }

    /// What `prepare_step` of the watched step returned, if it was called.
    pub fn prepare_outcome(&self) -> Option<Result<(), String>> {
        self.outcome.borrow().clone()
    }
}

#[async_trait]
impl Backend for Gated {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn probe(&self) -> Result<(), BackendError> {
        self.inner.probe().await
    }

    async fn reap_leftovers(&self) -> Result<usize, BackendError> {
        self.inner.reap_leftovers().await
    }

    async fn setup_workflow(&self, id: &WorkflowId, plan: &Plan) -> Result<(), BackendError> {
        self.inner.setup_workflow(id, plan).await
    }

    async fn prepare_step(
        &self,
        id: &WorkflowId,
        step: &Step,
        secrets: &[(String, String)],
    ) -> Result<(), BackendError> {
        let result = self.inner.prepare_step(id, step, secrets).await;
        if step.name == self.prepared {
            let seen = result.as_ref().map(|_| ()).map_err(ToString::to_string);
            self.outcome.send_replace(Some(seen));
        }
        result
    }

    async fn start_step(
        &self,
        id: &WorkflowId,
        step: &Step,
        secrets: &[(String, String)],
    ) -> Result<(), BackendError> {
        self.inner.start_step(id, step, secrets).await
    }

    async fn logs(&self, id: &WorkflowId, step: &Step) -> Result<LogStream, BackendError> {
        self.inner.logs(id, step).await
    }

    async fn wait_step(&self, id: &WorkflowId, step: &Step) -> Result<StepExit, BackendError> {
        if step.name == self.held {
            let mut outcome = self.outcome.subscribe();
            let _ = outcome.wait_for(Option::is_some).await;
        }
        self.inner.wait_step(id, step).await
    }

    async fn destroy_step(&self, id: &WorkflowId, step: &Step) -> Result<(), BackendError> {
        self.inner.destroy_step(id, step).await
    }

    async fn destroy_workflow(&self, id: &WorkflowId) -> Result<(), BackendError> {
        self.inner.destroy_workflow(id).await
    }
}
