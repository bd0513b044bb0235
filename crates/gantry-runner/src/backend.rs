//! The seam between the runtime and whatever runs containers.

use std::pin::Pin;

use async_trait::async_trait;
use gantry_pipeline::plan::{Plan, Step};

/// Identifies one run of a plan on a backend. Every backend object (network, volume,
/// container, process) is named and labelled after it, so a crashed run's leftovers can be
/// found and removed later.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkflowId(pub String);

impl std::fmt::Display for WorkflowId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Raw output as the backend read it: not split into lines, not masked.
#[derive(Debug, Clone)]
pub struct LogChunk {
    /// The stream it came from.
    pub stream: OutputStream,
    /// The bytes, cut anywhere (mid-line, mid-UTF-8 character).
    pub data: Vec<u8>,
}

/// A step's output, ending when the step's process ends.
pub type LogStream =
    Pin<Box<dyn futures_util::Stream<Item = Result<LogChunk, BackendError>> + Send>>;

/// How a step's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepExit {
    /// Exit code (0 is success).
    pub code: i64,
    /// The kernel killed it for exceeding its memory limit.
    pub oom_killed: bool,
}

/// What went wrong in a backend, phrased for the person reading the step's error.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The engine cannot be reached.
    #[error("{0}")]
    Unavailable(String),
    /// The image does not exist locally and could not (or may not) be pulled.
    #[error("image `{image}` not found: {detail}")]
    ImageNotFound {
        /// The image reference.
        image: String,
        /// Why pulling did not help.
        detail: String,
    },
    /// Anything else, with the engine's words.
    #[error("{0}")]
    Other(String),
}

/// A place that runs steps: the local Docker engine, a Kubernetes cluster, host processes.
///
/// # Contract
///
/// For one workflow the runtime calls, in order:
///
/// 1. [`setup_workflow`](Backend::setup_workflow) once (network, workspace volume, and
///    leftovers of an earlier run with the same id removed);
/// 2. for each service and step, possibly concurrently for *different* steps:
///    [`start_step`](Backend::start_step), then [`logs`](Backend::logs) and
///    [`wait_step`](Backend::wait_step) (the runtime polls both at once; `logs` ends when the
///    process ends), then [`destroy_step`](Backend::destroy_step). A retried step is
///    destroyed and started again under the same name. A detached step or service is
///    started and its logs read, but it is not waited for; it is destroyed at the end;
///
///    before a step is started, possibly while the steps it needs still run, the runtime
///    may call [`prepare_step`](Backend::prepare_step) for it once, with the environment
///    it expects the step to start with. A prepared step is then started, or destroyed
///    with `destroy_step` without ever being started (it was skipped, the run failed or
///    was cancelled); `start_step` is never called while its `prepare_step` still runs;
/// 3. [`destroy_workflow`](Backend::destroy_workflow) once, always — also after a failed
///    setup or start, a timeout or a cancellation — on a path that is never cancelled.
///
/// What the runtime does around these calls, which a backend may rely on:
///
/// - it calls `destroy_step` after every attempt (successful ones too) and, at the end of
///   the run, again for every started or prepared step whose destroy failed or never
///   happened;
/// - it may drop a `prepare_step`, `start_step`, `logs` or `wait_step` future half-way
///   (cancellation, timeout); `destroy_step` for that step follows, so a half-created
///   container or process must be findable by the step's name;
/// - if the `logs` stream has not ended a few seconds after `wait_step` returned (a child
///   process holding the output open), the runtime stops reading it;
/// - approval steps never reach the backend.
///
/// `destroy_step` and `destroy_workflow` are idempotent: they succeed when the objects are
/// already gone or were never created, and they stop, kill and remove whatever is still
/// there. A backend must be `Send + Sync`; the runtime shares one as `Arc<dyn Backend>`
/// across all workflows and steps.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Short name for messages (`docker`, `local`).
    fn name(&self) -> &'static str;

    /// Checks that the backend can run work now (engine reachable).
    async fn probe(&self) -> Result<(), BackendError>;

    /// Removes every object left by earlier runs that this backend created (by label),
    /// e.g. after a crash. Returns how many objects were removed.
    async fn reap_leftovers(&self) -> Result<usize, BackendError>;

    /// Creates what the workflow's steps share (network, workspace).
    async fn setup_workflow(&self, id: &WorkflowId, plan: &Plan) -> Result<(), BackendError>;

    /// Gets a step ready to start quickly (e.g. creates its container, not started), while
    /// the steps it needs may still be running. The default does nothing.
    ///
    /// - It may be called for a step before its needs are done, and the step may then never
    ///   start: whatever it creates must be removed by `destroy_step` and
    ///   `destroy_workflow`, and be findable by the step's name if the call is dropped
    ///   half-way.
    /// - It must not pull an image or do anything with an effect the step could observe
    ///   before it starts; a backend may ignore it, and the runtime ignores its errors.
    /// - `start_step` must still work when `prepare_step` was never called, failed, or was
    ///   called with a different step, environment or secrets (then what was prepared is
    ///   thrown away, not used).
    async fn prepare_step(
        &self,
        _id: &WorkflowId,
        _step: &Step,
        _secrets: &[(String, String)],
    ) -> Result<(), BackendError> {
        Ok(())
    }

    /// Creates and starts one step or service, with `secrets` (env name → value) added to
    /// its environment. Pulls the image first according to its pull policy. Uses what
    /// [`prepare_step`](Backend::prepare_step) made only if it was made for exactly this
    /// step, environment and secrets.
    async fn start_step(
        &self,
        id: &WorkflowId,
        step: &Step,
        secrets: &[(String, String)],
    ) -> Result<(), BackendError>;

    /// Follows the step's output from its start until the process ends.
    async fn logs(&self, id: &WorkflowId, step: &Step) -> Result<LogStream, BackendError>;

    /// Waits for the step's process to end.
    async fn wait_step(&self, id: &WorkflowId, step: &Step) -> Result<StepExit, BackendError>;

    /// Stops and removes the step's process/container. Idempotent.
    async fn destroy_step(&self, id: &WorkflowId, step: &Step) -> Result<(), BackendError>;

    /// Removes everything the workflow created. Idempotent.
    async fn destroy_workflow(&self, id: &WorkflowId) -> Result<(), BackendError>;
}
