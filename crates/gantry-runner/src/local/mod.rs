//! The local backend: steps run as host processes, for `gantry exec`.
//!
//! - Commands steps (and services or clone steps with commands) run `/bin/sh -c script`;
//!   plugin steps and services without commands run their `entrypoint`; a plugin without
//!   one needs the Docker backend. A clone step without commands does nothing (the
//!   workspace is used as it is).
//! - The environment is the host's `PATH`, `HOME` and `LANG`, then the step's
//!   environment, then its secrets. `CI_WORKSPACE`/`DRONE_WORKSPACE`, when the step has
//!   them, point at the local workspace.
//! - Every process leads its own process group: when it ends, or is destroyed, the whole
//!   group is killed, so no background child outlives its step (as in a container).
//!   Services reach each other on `localhost`, not by name.
//! - Not supported (a warning is logged once per backend): memory and CPU limits,
//!   volumes, privileged mode. OOM is therefore never reported.
//! - With temporary workspaces, each running step is recorded in the runner's state
//!   directory next to the workflow directories (its process group, start time, the boot
//!   and the random mark in its environment, see `records`). `reap_leftovers`, which a runner
//!   calls when it starts, kills the steps a runner that died (`kill -9`, crash) left
//!   running, then removes their workflow directories. A fixed workspace (`gantry exec`)
//!   keeps no records.

mod process;
mod records;
mod workspace;

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use gantry_pipeline::plan::{Plan, Step, StepKind};

use self::process::{Launch, LocalProcess, wait_exit};
use crate::backend::{Backend, BackendError, LogStream, StepExit, WorkflowId};

/// Where the local backend's workflows run.
#[derive(Debug, Clone)]
enum WorkspaceMode {
    /// Every workflow runs in this directory, which is never removed.
    Fixed(PathBuf),
    /// Each workflow gets a fresh directory under this one, removed at its end.
    TempUnder(PathBuf),
}

/// One workflow's state.
struct LocalWorkflow {
    /// The directory steps run in.
    workspace: PathBuf,
    /// The directory `destroy_workflow` removes (temporary workspaces only).
    removable: Option<PathBuf>,
    /// Where running steps are recorded (temporary workspaces only).
    records: Option<PathBuf>,
    /// The plan's workspace path, which step `workdir`s are relative to.
    plan_workspace: String,
    /// Started steps that were not destroyed yet.
    processes: HashMap<String, LocalProcess>,
}

/// Runs steps as host processes (`/bin/sh -c script`), for `gantry exec`.
pub struct LocalBackend {
    mode: WorkspaceMode,
    workflows: Mutex<HashMap<WorkflowId, LocalWorkflow>>,
    /// Unsupported features already warned about.
    warned: Mutex<BTreeSet<&'static str>>,
}

impl LocalBackend {
    /// Runs every workflow in `dir` itself (e.g. the current directory), never removing it.
    pub fn in_directory(dir: impl Into<PathBuf>) -> Self {
        Self::with_mode(WorkspaceMode::Fixed(dir.into()))
    }

    /// Gives each workflow a fresh directory under `base_dir`, removed by `destroy_workflow`.
    pub fn with_temp_workspaces(base_dir: impl Into<PathBuf>) -> Self {
        Self::with_mode(WorkspaceMode::TempUnder(base_dir.into()))
    }

    fn with_mode(mode: WorkspaceMode) -> Self {
        Self {
            mode,
            workflows: Mutex::new(HashMap::new()),
            warned: Mutex::new(BTreeSet::new()),
        }
    }

    /// The directory the workflow's steps run in, once it is set up.
    pub fn workspace_of(&self, id: &WorkflowId) -> Option<PathBuf> {
        self.lock().get(id).map(|w| w.workspace.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<WorkflowId, LocalWorkflow>> {
        self.workflows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Logs `message` the first time `feature` is seen.
    fn warn_once(&self, feature: &'static str, message: &str) {
        let mut warned = self.warned.lock().unwrap_or_else(PoisonError::into_inner);
        if warned.insert(feature) {
            tracing::warn!(backend = "local", feature, "{message}");
        }
    }

    fn warn_unsupported(&self, plan: &Plan) {
        for step in plan.services.iter().chain(&plan.steps) {
            if step.resources.memory.is_some() || step.resources.millicpus.is_some() {
                self.warn_once(
                    "limits",
                    "memory and CPU limits are ignored by the local backend",
                );
            }
            if !step.volumes.is_empty() {
                self.warn_once("volumes", "volumes are ignored by the local backend");
            }
            if step.privileged {
                self.warn_once(
                    "privileged",
                    "`privileged` means nothing to the local backend",
                );
            }
        }
    }

    /// Takes a step's process out of its workflow (if it is there).
    fn take_process(&self, id: &WorkflowId, name: &str) -> Option<LocalProcess> {
        self.lock()
            .get_mut(id)
            .and_then(|w| w.processes.remove(name))
    }

    /// What to run for `step` in workflow `id`.
    fn launch(
        &self,
        id: &WorkflowId,
        step: &Step,
        secrets: &[(String, String)],
    ) -> Result<Launch, BackendError> {
        let (workspace, plan_workspace, records) = {
            let workflows = self.lock();
            let workflow = workflows.get(id).ok_or_else(|| not_set_up(id))?;
            (
                workflow.workspace.clone(),
                workflow.plan_workspace.clone(),
                workflow.records.clone(),
            )
        };
        let mut env = environment(step, secrets, &workspace);
        // A recorded step carries a mark of its own, which its children inherit: what a
        // restarted runner checks before killing what is left of its group.
        let records = match records {
            Some(dir) => {
                let mark = records::new_mark().map_err(|e| {
                    BackendError::Other(format!("cannot make the step's random mark: {e}"))
                })?;
                env.push((records::MARK_ENV.into(), mark.clone().into()));
                Some((dir, mark))
            }
            None => None,
        };
        Ok(Launch {
            argv: command_line(step)?,
            dir: workspace::step_dir(&workspace, &plan_workspace, &step.workdir)?,
            env,
            records,
        })
    }
}

fn not_set_up(id: &WorkflowId) -> BackendError {
    BackendError::Other(format!(
        "workflow `{id}` is not set up on the local backend (setup_workflow was not called \
         or the workflow was already destroyed)"
    ))
}

fn not_started(step: &Step) -> BackendError {
    BackendError::Other(format!(
        "step `{}` is not running on the local backend",
        step.name
    ))
}

/// Program and arguments for a step.
fn command_line(step: &Step) -> Result<Vec<String>, BackendError> {
    let shell = |script: String| vec!["/bin/sh".to_owned(), "-c".to_owned(), script];
    if step.kind == StepKind::Approval {
        return Err(BackendError::Other(format!(
            "step `{}` is an approval: it runs no process",
            step.name
        )));
    }
    if !step.commands.is_empty() {
        return Ok(shell(step.script()));
    }
    if let Some(entrypoint) = step.entrypoint.as_ref().filter(|e| !e.is_empty()) {
        return Ok(entrypoint.clone());
    }
    match step.kind {
        StepKind::Clone => Ok(shell(
            "echo 'clone skipped: the local backend uses the workspace as it is'".to_owned(),
        )),
        StepKind::Plugin => Err(BackendError::Other(format!(
            "plugin steps need the docker backend: step `{}` (image `{}`) has no commands \
             or entrypoint to run on this host",
            step.name, step.image
        ))),
        StepKind::Service => Err(BackendError::Other(format!(
            "service `{}` (image `{}`) has no commands or entrypoint: services need the \
             docker backend unless they say what to run",
            step.name, step.image
        ))),
        StepKind::Commands | StepKind::Approval => Ok(shell(step.script())),
    }
}

/// The step's whole environment on top of a minimal inherited one.
fn environment(
    step: &Step,
    secrets: &[(String, String)],
    workspace: &Path,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = Vec::new();
    for name in ["PATH", "HOME", "LANG"] {
        if let Some(value) = std::env::var_os(name) {
            env.push((name.into(), value));
        }
    }
    if !env.iter().any(|(name, _)| name == "PATH") {
        env.push(("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()));
    }
    for (name, value) in &step.environment {
        let value = if matches!(name.as_str(), "CI_WORKSPACE" | "DRONE_WORKSPACE") {
            workspace.as_os_str().to_owned()
        } else {
            value.into()
        };
        env.push((name.into(), value));
    }
    env.extend(secrets.iter().map(|(n, v)| (n.into(), v.into())));
    env
}

#[async_trait]
impl Backend for LocalBackend {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn probe(&self) -> Result<(), BackendError> {
        if tokio::fs::metadata("/bin/sh").await.is_err() {
            return Err(BackendError::Unavailable(
                "the local backend needs /bin/sh, which is missing".into(),
            ));
        }
        match &self.mode {
            WorkspaceMode::Fixed(dir) => workspace::check_fixed(dir).await,
            WorkspaceMode::TempUnder(_) => Ok(()),
        }
    }

    async fn reap_leftovers(&self) -> Result<usize, BackendError> {
        let WorkspaceMode::TempUnder(base) = &self.mode else {
            return Ok(0);
        };
        let active: Vec<PathBuf> = self
            .lock()
            .values()
            .filter_map(|w| w.removable.clone())
            .collect();
        workspace::reap(base, &active).await
    }

    async fn setup_workflow(&self, id: &WorkflowId, plan: &Plan) -> Result<(), BackendError> {
        self.destroy_workflow(id).await?;
        self.warn_unsupported(plan);
        let (workspace, removable, records) = match &self.mode {
            WorkspaceMode::Fixed(dir) => {
                workspace::check_fixed(dir).await?;
                (dir.clone(), None, None)
            }
            WorkspaceMode::TempUnder(base) => {
                let dir = workspace::workflow_dir(base, id)?;
                let records = dir.file_name().map(|name| records::records_dir(base, name));
                (workspace::create_temp(&dir).await?, Some(dir), records)
            }
        };
        let workflow = LocalWorkflow {
            workspace,
            records,
            removable,
            plan_workspace: plan.workspace.clone(),
            processes: HashMap::new(),
        };
        self.lock().insert(id.clone(), workflow);
        Ok(())
    }

    async fn start_step(
        &self,
        id: &WorkflowId,
        step: &Step,
        secrets: &[(String, String)],
    ) -> Result<(), BackendError> {
        let launch = self.launch(id, step, secrets)?;
        if let Some(earlier) = self.take_process(id, &step.name) {
            earlier.kill().await;
        }
        let process = LocalProcess::spawn(launch)?;
        // The workflow may have been destroyed while the process started.
        let orphan = {
            let mut workflows = self.lock();
            match workflows.get_mut(id) {
                Some(workflow) => {
                    workflow.processes.insert(step.name.clone(), process);
                    None
                }
                None => Some(process),
            }
        };
        match orphan {
            None => Ok(()),
            Some(process) => {
                process.kill().await;
                Err(not_set_up(id))
            }
        }
    }

    async fn logs(&self, id: &WorkflowId, step: &Step) -> Result<LogStream, BackendError> {
        let mut workflows = self.lock();
        let process = workflows
            .get_mut(id)
            .and_then(|w| w.processes.get_mut(&step.name))
            .ok_or_else(|| not_started(step))?;
        process.take_output().ok_or_else(|| {
            BackendError::Other(format!(
                "the log of step `{}` is already being read",
                step.name
            ))
        })
    }

    async fn wait_step(&self, id: &WorkflowId, step: &Step) -> Result<StepExit, BackendError> {
        let mut exit = self
            .lock()
            .get(id)
            .and_then(|w| w.processes.get(&step.name))
            .map(LocalProcess::exit_watch)
            .ok_or_else(|| not_started(step))?;
        wait_exit(&mut exit).await
    }

    async fn destroy_step(&self, id: &WorkflowId, step: &Step) -> Result<(), BackendError> {
        if let Some(process) = self.take_process(id, &step.name) {
            process.kill().await;
        }
        Ok(())
    }

    async fn destroy_workflow(&self, id: &WorkflowId) -> Result<(), BackendError> {
        let Some(workflow) = self.lock().remove(id) else {
            return Ok(());
        };
        let kills = workflow.processes.into_values().map(LocalProcess::kill);
        futures_util::future::join_all(kills).await;
        if let Some(records) = &workflow.records {
            records::remove_records_dir(records);
        }
        match workflow.removable {
            Some(dir) => workspace::remove_dir(&dir).await,
            None => Ok(()),
        }
    }
}
