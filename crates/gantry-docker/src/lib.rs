//! Gantry backend over the Docker Engine API (bollard).
//!
//! Each workflow gets one bridge network (`gantry-<id>`), one sandbox container on it
//! (also `gantry-<id>`: the pod-style sandbox, see [`DockerConfig::sandbox_image`]), one workspace volume (`gantry-<id>-workspace`, or
//! a bound host directory for `gantry exec`) and one volume per named mount; each step or
//! service becomes a container `gantry-<id>-<step>` that joins the sandbox's network
//! namespace. Services and detached steps are reached by name. Every object is labelled
//! `gantry.workflow`, `gantry.owner` (and `gantry.step` on step containers) plus the
//! configured extra labels, so `destroy_workflow` and `reap_leftovers` find them by label.
//! `<id>` is the workflow id made safe for Docker names, followed by a hash of it.

mod cleanup;
mod config;
mod connect;
mod errors;
mod image;
mod names;
mod oom;
mod owner;
mod pause;
mod prepare;
mod reap;
mod removal;
mod sandbox;
mod spec;
mod step;
#[cfg(test)]
mod unit_fixtures;
mod workflow;

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use gantry_pipeline::plan::{Plan, Step};
use gantry_runner::{Backend, BackendError, LogStream, StepExit, WorkflowId};

pub use config::{DEFAULT_PIDS_LIMIT, DockerConfig};
pub use names::{LABEL_OWNER, LABEL_STEP, LABEL_WORKFLOW, container_name, sandbox_name};
pub use owner::exec_owner;
pub use sandbox::builtin_image as builtin_sandbox_image;

/// Runs steps as containers on a Docker engine.
pub struct DockerBackend {
    docker: bollard::Docker,
    host: String,
    config: DockerConfig,
    /// What `setup_workflow` made, by workflow: needed to start that workflow's steps.
    workflows: Mutex<HashMap<WorkflowId, spec::WorkflowContext>>,
    /// Steps whose container was seen exiting: removing them needs no stop or kill.
    exited: Mutex<HashSet<removal::StepKey>>,
    /// Containers created by `prepare_step` and not started yet, with their create body.
    prepared: Mutex<HashMap<removal::StepKey, bollard::models::ContainerCreateBody>>,
    /// Containers of exited steps being removed in the background.
    removals: removal::BackgroundRemovals,
}

impl DockerBackend {
    /// Connects to the engine named by the config (else `DOCKER_HOST`, else the local
    /// socket) and agrees on an API version; fails with "cannot reach the Docker engine at
    /// …" when nothing answers.
    pub async fn connect(config: DockerConfig) -> Result<Self, BackendError> {
        let host = connect::resolve_host(config.host.as_deref());
        let docker = connect::connect(&host, config.request_timeout_secs).await?;
        Ok(Self {
            docker,
            host,
            config,
            workflows: Mutex::new(HashMap::new()),
            exited: Mutex::new(HashSet::new()),
            prepared: Mutex::new(HashMap::new()),
            removals: removal::BackgroundRemovals::default(),
        })
    }

    /// The engine address in use (`unix:///var/run/docker.sock`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The configuration this backend was connected with.
    pub fn config(&self) -> &DockerConfig {
        &self.config
    }

    /// The underlying bollard client, for callers that need an engine call the `Backend`
    /// trait has no word for (tests, diagnostics).
    pub fn client(&self) -> &bollard::Docker {
        &self.docker
    }

    fn lock_workflows(&self) -> MutexGuard<'_, HashMap<WorkflowId, spec::WorkflowContext>> {
        // A panic elsewhere cannot leave this map half-written: keep using it.
        self.workflows.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_exited(&self) -> MutexGuard<'_, HashSet<removal::StepKey>> {
        self.exited.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_prepared(
        &self,
    ) -> MutexGuard<'_, HashMap<removal::StepKey, bollard::models::ContainerCreateBody>> {
        self.prepared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Backend for DockerBackend {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn probe(&self) -> Result<(), BackendError> {
        self.docker
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| connect::unreachable(&self.host, &e))
    }

    async fn reap_leftovers(&self) -> Result<usize, BackendError> {
        self.reap().await
    }

    async fn setup_workflow(&self, id: &WorkflowId, plan: &Plan) -> Result<(), BackendError> {
        self.setup(id, plan).await
    }

    /// Creates the step's container, not started (never pulling; nothing with the pull
    /// policy `always`).
    async fn prepare_step(
        &self,
        id: &WorkflowId,
        step: &Step,
        secrets: &[(String, String)],
    ) -> Result<(), BackendError> {
        self.prepare(id, step, secrets).await
    }

    async fn start_step(
        &self,
        id: &WorkflowId,
        step: &Step,
        secrets: &[(String, String)],
    ) -> Result<(), BackendError> {
        self.start(id, step, secrets).await
    }

    async fn logs(&self, id: &WorkflowId, step: &Step) -> Result<LogStream, BackendError> {
        Ok(self.follow_logs(id, step))
    }

    async fn wait_step(&self, id: &WorkflowId, step: &Step) -> Result<StepExit, BackendError> {
        self.wait(id, step).await
    }

    async fn destroy_step(&self, id: &WorkflowId, step: &Step) -> Result<(), BackendError> {
        self.remove_step(id, step).await
    }

    async fn destroy_workflow(&self, id: &WorkflowId) -> Result<(), BackendError> {
        self.teardown(id).await
    }
}
