//! What a run tells its caller: step states, log lines, the final outcome.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::log_batch::LogBatch;

/// Where a step is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not started yet (waiting for its `needs` or a free slot).
    Pending,
    /// Started on the backend.
    Running,
    /// Waiting for a person to approve it.
    Blocked,
    /// Finished with exit code 0 (or approved, or a detached step that started).
    Success,
    /// Finished badly: exit code, timeout, backend error, rejection, missing secret.
    Failure,
    /// Not run because its `run_on` did not match the pipeline status.
    Skipped,
    /// Stopped or never started because the run was cancelled.
    Cancelled,
}

impl StepStatus {
    /// True once the status can no longer change.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Success | Self::Failure | Self::Skipped | Self::Cancelled
        )
    }

    /// Lower-case name, as shown to people and in `CI_BUILD_STATUS`-like places.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Blocked => "blocked",
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Skipped => "skipped",
            Self::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for StepStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of one step (or service), sent each time it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepReport {
    /// Step (or service) name.
    pub step: String,
    /// Where it is.
    pub status: StepStatus,
    /// The process's exit code, once it ended.
    pub exit_code: Option<i64>,
    /// Why it failed, masked (no secret value appears in it).
    pub error: Option<String>,
    /// Which attempt this is (1 for the first run, 2 after one retry...); 0 if never started.
    pub attempt: u32,
    /// When its first attempt started.
    pub started: Option<SystemTime>,
    /// When it reached a final status.
    pub finished: Option<SystemTime>,
}

impl StepReport {
    /// A report for a step that has not started.
    pub fn pending(step: &str) -> Self {
        Self {
            step: step.to_owned(),
            status: StepStatus::Pending,
            exit_code: None,
            error: None,
            attempt: 0,
            started: None,
            finished: None,
        }
    }
}

/// Something a run reports while it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunEvent {
    /// A step changed state.
    Step(StepReport),
    /// A step wrote lines.
    Logs(LogBatch),
}

/// How a whole pipeline ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PipelineStatus {
    /// Every step succeeded, was skipped, or failed with `failure: ignore`.
    Success,
    /// A step failed.
    Failure,
    /// The run was cancelled.
    Cancelled,
    /// The run could not be carried out (workflow setup failed, the plan was unusable).
    Error,
}

impl PipelineStatus {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Cancelled => "cancelled",
            Self::Error => "error",
        }
    }
}

impl std::fmt::Display for PipelineStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of [`Runtime::run`](crate::Runtime::run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOutcome {
    /// How the pipeline ended.
    pub status: PipelineStatus,
    /// The final report of every service, then every step, in plan order.
    pub steps: Vec<StepReport>,
    /// Why the run could not be carried out (with [`PipelineStatus::Error`]), masked.
    pub error: Option<String>,
}
