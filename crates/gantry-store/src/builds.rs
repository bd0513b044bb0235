//! Builds, and the workflows and steps inside them.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;

use crate::error::StoreResult;
use crate::status::{BuildEvent, RunStatus};
use crate::time::Millis;

/// A stored build. `number` counts up per repository from 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Build {
    /// Store id.
    pub id: i64,
    /// The repository.
    pub repo_id: i64,
    /// Per-repository number, assigned at creation without gaps or duplicates.
    pub number: i64,
    /// What started it.
    pub event: BuildEvent,
    /// The git ref (`refs/heads/main`, `refs/tags/v1`, `refs/pull/3/head`).
    pub git_ref: String,
    /// The commit built.
    pub sha: String,
    /// The commit before the push (empty when unknown).
    pub before: String,
    /// Commit message.
    pub message: String,
    /// Commit author as the forge reports it (display only, never an identity).
    pub author: String,
    /// Who or what triggered it: forge login, API user, `cron:<job>`.
    pub sender: String,
    /// Current status.
    pub status: RunStatus,
    /// Why it ended in `error`, if it did.
    pub error: Option<String>,
    /// The build this one restarts or promotes.
    pub parent_id: Option<i64>,
    /// Promote target (`production`, ...).
    pub deploy_target: Option<String>,
    /// Compile diagnostics as JSON text, when the pipeline did not compile cleanly.
    pub diagnostics: Option<String>,
    /// Creation time.
    pub created_at: Millis,
    /// When it started running.
    pub started_at: Option<Millis>,
    /// When it reached a terminal status.
    pub finished_at: Option<Millis>,
}

/// What `create_build` needs.
#[derive(Debug, Clone)]
pub struct NewBuild {
    /// The repository.
    pub repo_id: i64,
    /// What started it.
    pub event: BuildEvent,
    /// The git ref.
    pub git_ref: String,
    /// The commit.
    pub sha: String,
    /// The commit before (empty when unknown).
    pub before: String,
    /// Commit message.
    pub message: String,
    /// Commit author (display only).
    pub author: String,
    /// Who triggered it.
    pub sender: String,
    /// Initial status: `pending` (queued), `blocked` (waits for approval) or `error`
    /// (did not compile; then `error` and `diagnostics` say why).
    pub status: RunStatus,
    /// Why it is in `error`.
    pub error: Option<String>,
    /// Restarted or promoted build.
    pub parent_id: Option<i64>,
    /// Promote target.
    pub deploy_target: Option<String>,
    /// Compile diagnostics, JSON text.
    pub diagnostics: Option<String>,
    /// Creation time.
    pub created_at: Millis,
}

/// A workflow: one run of the pipeline (one per matrix combination).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Workflow {
    /// Store id.
    pub id: i64,
    /// The build it belongs to.
    pub build_id: i64,
    /// Name (the matrix combination, or the pipeline's name).
    pub name: String,
    /// The compiled plan as JSON text, shipped to the runner unchanged.
    pub plan: String,
    /// Runner labels it requires.
    pub labels: BTreeMap<String, String>,
    /// Current status.
    pub status: RunStatus,
    /// Why it ended in `error`.
    pub error: Option<String>,
    /// When it started.
    pub started_at: Option<Millis>,
    /// When it finished.
    pub finished_at: Option<Millis>,
}

/// What a new workflow holds.
#[derive(Debug, Clone)]
pub struct NewWorkflow {
    /// Name.
    pub name: String,
    /// Compiled plan, JSON text.
    pub plan: String,
    /// Required runner labels.
    pub labels: BTreeMap<String, String>,
    /// Its steps in plan order.
    pub steps: Vec<NewStep>,
}

/// How a person decided an approval step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalDecision {
    /// Go on: the step succeeds.
    Approved,
    /// Stop: the step fails.
    Rejected,
}

impl ApprovalDecision {
    /// Stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalDecision::Approved => "approved",
            ApprovalDecision::Rejected => "rejected",
        }
    }
}

/// Who decided an approval step, when, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    /// The person (forge login).
    pub by: String,
    /// When.
    pub at: Millis,
    /// The decision.
    pub decision: ApprovalDecision,
}

/// A step of a workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Store id.
    pub id: i64,
    /// The workflow.
    pub workflow_id: i64,
    /// Name, unique in the workflow.
    pub name: String,
    /// Kind from the plan (`clone`, `commands`, `plugin`, `service`, `approval`).
    pub kind: String,
    /// Names of the steps it waits for.
    pub needs: Vec<String>,
    /// Position in the plan.
    pub position: i64,
    /// Current status.
    pub status: RunStatus,
    /// Exit code once it exited.
    pub exit_code: Option<i64>,
    /// Why it ended in `error`.
    pub error: Option<String>,
    /// The runner that ran it.
    pub runner_id: Option<String>,
    /// When it started.
    pub started_at: Option<Millis>,
    /// When it finished.
    pub finished_at: Option<Millis>,
    /// The approval decision, for an approval step that was decided.
    pub approval: Option<Approval>,
}

/// A step as the plan declares it.
#[derive(Debug, Clone)]
pub struct NewStep {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// Steps it waits for.
    pub needs: Vec<String>,
}

/// A workflow with its steps in plan order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkflowDetail {
    /// The workflow.
    pub workflow: Workflow,
    /// Its steps.
    pub steps: Vec<Step>,
}

/// A build with its workflows and steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildDetail {
    /// The build.
    pub build: Build,
    /// Its workflows in creation order.
    pub workflows: Vec<WorkflowDetail>,
}

/// A status change request for a build or workflow.
#[derive(Debug, Clone)]
pub struct StatusChange {
    /// The new status (never `pending`).
    pub status: RunStatus,
    /// When it happened: sets `started_at` on the first move out of `pending` and
    /// `finished_at` on a terminal status.
    pub at: Millis,
    /// Why, for `error`.
    pub error: Option<String>,
}

/// A status change request for a step.
#[derive(Debug, Clone)]
pub struct StepChange {
    /// The new status (never `pending`).
    pub status: RunStatus,
    /// When it happened.
    pub at: Millis,
    /// Exit code, when it exited.
    pub exit_code: Option<i64>,
    /// Why, for `error`.
    pub error: Option<String>,
    /// The runner running it.
    pub runner_id: Option<String>,
}

/// Which page of a repository's builds to list, newest first.
#[derive(Debug, Clone, Copy)]
pub struct BuildPage {
    /// Only builds numbered below this (the last number of the previous page).
    pub before_number: Option<i64>,
    /// At most this many (1 ..= 500; 0 means 50).
    pub limit: u32,
}

/// Builds, workflows and steps.
///
/// Status updates move forward only: a row in a terminal status never changes, nothing
/// goes back to `pending`, and an update that would not change anything returns false.
#[async_trait]
pub trait BuildStore: Send + Sync {
    /// Creates a build with its workflows and steps in one transaction, numbering it
    /// atomically per repository. When its status is `pending`, every workflow is
    /// enqueued in the same transaction (see [`QueueStore`](crate::QueueStore)).
    async fn create_build(
        &self,
        build: &NewBuild,
        workflows: &[NewWorkflow],
    ) -> StoreResult<BuildDetail>;
    /// Build `number` of a repository with its workflows and steps.
    async fn build_by_number(&self, repo_id: i64, number: i64) -> StoreResult<Option<BuildDetail>>;
    /// A build by id with its workflows and steps.
    async fn build_by_id(&self, id: i64) -> StoreResult<Option<BuildDetail>>;
    /// A repository's builds, newest first (without workflows).
    async fn list_builds(&self, repo_id: i64, page: BuildPage) -> StoreResult<Vec<Build>>;
    /// Moves a build forward; true if it changed.
    async fn update_build_status(&self, build_id: i64, change: &StatusChange) -> StoreResult<bool>;
    /// Moves a workflow forward; true if it changed.
    async fn update_workflow_status(
        &self,
        workflow_id: i64,
        change: &StatusChange,
    ) -> StoreResult<bool>;
    /// Moves a step forward; true if it changed.
    async fn update_step(&self, step_id: i64, change: &StepChange) -> StoreResult<bool>;
    /// Records a decision on a `pending` or `blocked` approval step not yet decided: the
    /// step becomes `success` (approved) or `failure` (rejected). True if recorded.
    async fn decide_approval(&self, step_id: i64, approval: &Approval) -> StoreResult<bool>;
}

/// The largest page `list_builds` returns.
pub const MAX_BUILD_PAGE: u32 = 500;
