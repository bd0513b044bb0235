//! Gantry backend over the Docker Engine API.

mod config;
mod owner;

use async_trait::async_trait;
use gantry_pipeline::plan::{Plan, Step};
use gantry_runner::{Backend, BackendError, LogStream, StepExit, WorkflowId};

pub use config::DockerConfig;
pub use owner::exec_owner;

/// Runs steps as containers on a Docker engine.
pub struct DockerBackend {
    docker: bollard::Docker,
    config: DockerConfig,
}

impl DockerBackend {
    /// Connects to the engine named by the config (or `DOCKER_HOST`, or the local socket).
    pub async fn connect(config: DockerConfig) -> Result<Self, BackendError> {
        let docker = bollard::Docker::connect_with_local_defaults()
            .map_err(|e| BackendError::Unavailable(e.to_string()))?;
        Ok(Self { docker, config })
    }
}

fn not_yet() -> BackendError {
    BackendError::Other("the Docker backend is not implemented yet".into())
}

#[async_trait]
impl Backend for DockerBackend {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn probe(&self) -> Result<(), BackendError> {
        let _ = (&self.docker, &self.config);
        Err(not_yet())
    }

    async fn reap_leftovers(&self) -> Result<usize, BackendError> {
        Err(not_yet())
    }

    async fn setup_workflow(&self, _id: &WorkflowId, _plan: &Plan) -> Result<(), BackendError> {
        Err(not_yet())
    }

    async fn start_step(
        &self,
        _id: &WorkflowId,
        _step: &Step,
        _secrets: &[(String, String)],
    ) -> Result<(), BackendError> {
        Err(not_yet())
    }

    async fn logs(&self, _id: &WorkflowId, _step: &Step) -> Result<LogStream, BackendError> {
        Err(not_yet())
    }

    async fn wait_step(&self, _id: &WorkflowId, _step: &Step) -> Result<StepExit, BackendError> {
        Err(not_yet())
    }

    async fn destroy_step(&self, _id: &WorkflowId, _step: &Step) -> Result<(), BackendError> {
        Ok(())
    }

    async fn destroy_workflow(&self, _id: &WorkflowId) -> Result<(), BackendError> {
        Ok(())
    }
}
