//! The IR: a compiled, validated pipeline ready to run.
//!
//! A [`Plan`] is plain serialisable data. The server compiles it once and ships it to a
//! runner unchanged; runners and backends never look at YAML. Everything a backend needs
//! to start a container (or a host process) is here, already substituted and checked.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::paths::path_problem;

/// One runnable workflow: a pipeline for one matrix combination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Pipeline name (`default` for `.pipeline.yml`, the `name:` of a Drone pipeline).
    pub name: String,
    /// The matrix combination this plan runs (empty without a matrix).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub matrix: BTreeMap<String, String>,
    /// Runner labels required to take this plan (`labels:` in the YAML).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Absolute path of the shared workspace inside every container.
    pub workspace: String,
    /// Sidecars started before the first step and removed at the end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<Step>,
    /// Steps in YAML order (the clone step first, when enabled). `needs` forms a DAG.
    pub steps: Vec<Step>,
    /// Names of the plans of the same build that must finish first (Drone's pipeline
    /// `depends_on`; a dependency skipped for this build is replaced by its own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Under which outcome of `depends_on` the plan runs: by default only when every
    /// dependency succeeded; Drone's `trigger.status` can ask for `failure` too (or only).
    #[serde(default, skip_serializing_if = "RunOn::is_default")]
    pub run_on: RunOn,
}

/// What a step is, which decides how a backend starts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// The implicit checkout step.
    Clone,
    /// `commands:` run through `/bin/sh -e` ([`Step::script`]).
    Commands,
    /// No commands: the image's own entrypoint runs, configured by `PLUGIN_*` env.
    Plugin,
    /// A long-running sidecar from `services:`.
    Service,
    /// Blocks until a person approves or rejects; runs no container.
    Approval,
}

/// Image pull policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PullPolicy {
    /// Pull only when the image is not present locally.
    #[default]
    IfNotExists,
    /// Always pull before starting.
    Always,
    /// Never pull; a missing image is an error.
    Never,
}

/// What a failed step does to the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// The pipeline fails.
    #[default]
    Fail,
    /// The failure is shown but the pipeline goes on as if the step succeeded.
    Ignore,
}

/// `when.status` of a step: under which pipeline status (so far) it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOn {
    /// Run when nothing has failed so far (the default).
    pub success: bool,
    /// Run when something has failed so far.
    pub failure: bool,
}

impl RunOn {
    /// True for the default: run on success only.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl Default for RunOn {
    fn default() -> Self {
        Self {
            success: true,
            failure: false,
        }
    }
}

/// An environment variable whose value is a repository secret, resolved at run time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretEnv {
    /// The variable name in the step (`TOKEN`, `PLUGIN_PASSWORD`).
    pub env: String,
    /// The secret's name in the repository.
    pub secret: String,
}

/// A volume mounted into a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Volume name: a workflow-scoped volume the backend creates and removes (Drone's
    /// `temp: {}` volumes), shared by every step that mounts the same name.
    pub name: String,
    /// Host path to bind instead (absolute); only ever set for trusted repositories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<String>,
    /// Path in the container (absolute).
    pub target: String,
}

/// Resource limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Resources {
    /// Memory limit in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    /// CPU limit in millicpus (1000 = one core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub millicpus: Option<u64>,
}

/// One step (or service) of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Unique within the plan; `[a-z0-9_-]`; also the service's host name.
    pub name: String,
    /// How it runs.
    pub kind: StepKind,
    /// Image reference (empty for approval steps).
    #[serde(default)]
    pub image: String,
    /// Pull policy for `image`.
    #[serde(default)]
    pub pull: PullPolicy,
    /// Entrypoint override (the image's own when `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Shell commands, already substituted (empty for plugins, services without commands).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<String>,
    /// Environment (CI_*, DRONE_*, matrix, PLUGIN_*, user `environment`), not secrets.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Environment variables whose values come from repository secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretEnv>,
    /// Names of steps that must finish before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
    /// Pipeline status under which it runs.
    #[serde(default)]
    pub run_on: RunOn,
    /// What its failure does to the pipeline.
    #[serde(default)]
    pub failure: FailurePolicy,
    /// Kill it after this many seconds (`None`: the runner's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// Rerun a failed attempt up to this many times.
    #[serde(default)]
    pub retries: u32,
    /// Keep running in the background once started; removed at the end of the workflow.
    #[serde(default)]
    pub detach: bool,
    /// Privileged container (trusted repositories only).
    #[serde(default)]
    pub privileged: bool,
    /// Volumes (host paths only for trusted repositories).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Mount>,
    /// Resource limits.
    #[serde(default)]
    pub resources: Resources,
    /// Working directory: the workspace path.
    pub workdir: String,
    /// Approval timeout in seconds, for [`StepKind::Approval`] steps (always set for them:
    /// the runtime never waits forever).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_timeout_secs: Option<u64>,
}

impl Step {
    /// The shell script that runs `commands`: `set -e`, each command echoed as `+ cmd`
    /// before it runs. Backends run it with `/bin/sh -c`.
    pub fn script(&self) -> String {
        let mut out = String::from("set -e\n");
        for cmd in &self.commands {
            out.push_str("printf '%s\\n' ");
            out.push_str(&shell_quote(&format!("+ {cmd}")));
            out.push('\n');
            out.push_str(cmd);
            out.push('\n');
        }
        out
    }
}

/// Quote `s` as one POSIX shell word.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Plan {
    /// Steps grouped into levels by longest path from a root: display only — the runtime
    /// schedules on `needs`, not on levels.
    pub fn levels(&self) -> Vec<Vec<&str>> {
        let index: BTreeMap<&str, usize> = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i))
            .collect();
        let mut depth = vec![0usize; self.steps.len()];
        // Steps are validated acyclic and `needs` refer to earlier or later steps; iterate
        // to a fixed point (bounded by the step count).
        for _ in 0..self.steps.len() {
            let mut changed = false;
            for (i, s) in self.steps.iter().enumerate() {
                for n in &s.needs {
                    if let Some(&j) = index.get(n.as_str())
                        && depth[i] < depth[j] + 1
                    {
                        depth[i] = depth[j] + 1;
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        let max = depth.iter().copied().max().map_or(0, |m| m + 1);
        let mut levels = vec![Vec::new(); max];
        for (i, s) in self.steps.iter().enumerate() {
            levels[depth[i]].push(s.name.as_str());
        }
        levels
    }

    /// Every secret name the plan's steps and services reference (sorted, unique).
    pub fn secret_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .services
            .iter()
            .chain(&self.steps)
            .flat_map(|s| s.secrets.iter().map(|e| e.secret.clone()))
            .collect();
        names.sort();
        names.dedup();
        names
    }
}
