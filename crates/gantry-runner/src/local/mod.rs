//! The local backend: steps run as host processes.

use std::path::PathBuf;

use async_trait::async_trait;
use gantry_pipeline::plan::{Plan, Step};

use crate::backend::{Backend, BackendError, LogStream, StepExit, WorkflowId};

/// Where the local backend's workflows run.
#[derive(Debug, Clone)]
#[allow(dead_code)] // read once the backend is filled in
enum WorkspaceMode {
    /// Every workflow runs in this directory, which is never removed.
    Fixed(PathBuf),
    /// Each workflow gets a fresh directory under this one, removed at its end.
    TempUnder(PathBuf),
}

/// Runs steps as host processes (`/bin/sh -c script`), for `gantry exec`.
pub struct LocalBackend {
    mode: WorkspaceMode,
}

impl LocalBackend {
    /// Runs every workflow in `dir` itself (e.g. the current directory), never removing it.
    pub fn in_directory(dir: impl Into<PathBuf>) -> Self {
        Self {
            mode: WorkspaceMode::Fixed(dir.into()),
        }
    }

    /// Gives each workflow a fresh directory under `base_dir`, removed by `destroy_workflow`.
    pub fn with_temp_workspaces(base_dir: impl Into<PathBuf>) -> Self {
        Self {
            mode: WorkspaceMode::TempUnder(base_dir.into()),
        }
    }
}

fn not_yet() -> BackendError {
    BackendError::Other("the local backend is not implemented yet".into())
}

#[async_trait]
impl Backend for LocalBackend {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn probe(&self) -> Result<(), BackendError> {
        let _ = &self.mode;
        Err(not_yet())
    }

    async fn reap_leftovers(&self) -> Result<usize, BackendError> {
        Ok(0)
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
