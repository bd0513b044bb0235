//! Row shapes as both databases return them, their column lists, and their conversion
//! into the public types.

use std::collections::BTreeMap;

use sqlx::FromRow;

use crate::builds::{Approval, ApprovalDecision, Build, Step, Workflow};
use crate::error::{StoreError, StoreResult};
use crate::queue::{QueueItem, QueueState};
use crate::repos::Repo;
use crate::status::{BuildEvent, ForgeKind, RunStatus};
use crate::tokens::{ApiToken, TokenRole};

macro_rules! repo_columns {
    () => {
        "id, owner, name, forge, clone_url, webhook_secret, config_path, is_trusted, \
         timeout_minutes, is_private, created_at, updated_at"
    };
}
macro_rules! build_columns {
    () => {
        "id, repo_id, number, event, git_ref, sha, before_sha, message, author, sender, \
         status, error, parent_id, deploy_target, diagnostics, created_at, started_at, \
         finished_at"
    };
}
macro_rules! workflow_columns {
    () => {
        "id, build_id, name, plan, labels, status, error, started_at, finished_at"
    };
}
macro_rules! step_columns {
    () => {
        "id, workflow_id, name, kind, needs, position, status, exit_code, error, runner_id, \
         started_at, finished_at, approved_by, approval_at, approval_decision"
    };
}
macro_rules! queue_columns {
    () => {
        "id, workflow_id, build_id, repo_id, labels, state, runner_id, lease_until, attempts, \
         enqueued_at, error"
    };
}
macro_rules! token_columns {
    () => {
        "id, name, subject, role, scope, created_at, last_used_at, revoked_at, runner_labels, \
         runner_repos"
    };
}
pub(crate) use {
    build_columns, queue_columns, repo_columns, step_columns, token_columns, workflow_columns,
};

fn corrupt(table: &'static str, error: StoreError) -> StoreError {
    StoreError::Corrupt {
        table,
        reason: error.to_string(),
    }
}

pub(crate) fn json_map(table: &'static str, text: &str) -> StoreResult<BTreeMap<String, String>> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        table,
        reason: format!("labels are not a JSON object of strings: {e}"),
    })
}

pub(crate) fn json_list(table: &'static str, text: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        table,
        reason: format!("repositories are not a JSON array of strings: {e}"),
    })
}

/// Labels as stored: a JSON object, keys sorted.
pub(crate) fn labels_json(labels: &BTreeMap<String, String>) -> String {
    serde_json::to_string(labels).unwrap_or_else(|_| "{}".to_string())
}

#[derive(FromRow)]
pub(crate) struct RepoRow {
    id: i64,
    owner: String,
    name: String,
    forge: String,
    clone_url: String,
    webhook_secret: String,
    config_path: String,
    is_trusted: bool,
    timeout_minutes: i64,
    is_private: bool,
    created_at: i64,
    updated_at: i64,
}

impl RepoRow {
    pub(crate) fn into_repo(self) -> StoreResult<Repo> {
        Ok(Repo {
            id: self.id,
            owner: self.owner,
            name: self.name,
            forge: ForgeKind::parse(&self.forge).map_err(|e| corrupt("repos", e))?,
            clone_url: self.clone_url,
            webhook_secret: self.webhook_secret,
            config_path: self.config_path,
            trusted: self.is_trusted,
            timeout_minutes: self.timeout_minutes,
            private: self.is_private,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct BuildRow {
    id: i64,
    repo_id: i64,
    number: i64,
    event: String,
    git_ref: String,
    sha: String,
    before_sha: String,
    message: String,
    author: String,
    sender: String,
    status: String,
    error: Option<String>,
    parent_id: Option<i64>,
    deploy_target: Option<String>,
    diagnostics: Option<String>,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
}

impl BuildRow {
    pub(crate) fn into_build(self) -> StoreResult<Build> {
        Ok(Build {
            id: self.id,
            repo_id: self.repo_id,
            number: self.number,
            event: BuildEvent::parse(&self.event).map_err(|e| corrupt("builds", e))?,
            git_ref: self.git_ref,
            sha: self.sha,
            before: self.before_sha,
            message: self.message,
            author: self.author,
            sender: self.sender,
            status: RunStatus::parse(&self.status).map_err(|e| corrupt("builds", e))?,
            error: self.error,
            parent_id: self.parent_id,
            deploy_target: self.deploy_target,
            diagnostics: self.diagnostics,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct WorkflowRow {
    id: i64,
    build_id: i64,
    name: String,
    plan: String,
    labels: String,
    status: String,
    error: Option<String>,
    started_at: Option<i64>,
    finished_at: Option<i64>,
}

impl WorkflowRow {
    pub(crate) fn into_workflow(self) -> StoreResult<Workflow> {
        Ok(Workflow {
            id: self.id,
            build_id: self.build_id,
            name: self.name,
            plan: self.plan,
            labels: json_map("workflows", &self.labels)?,
            status: RunStatus::parse(&self.status).map_err(|e| corrupt("workflows", e))?,
            error: self.error,
            started_at: self.started_at,
            finished_at: self.finished_at,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct StepRow {
    id: i64,
    workflow_id: i64,
    name: String,
    kind: String,
    needs: String,
    position: i64,
    status: String,
    exit_code: Option<i64>,
    error: Option<String>,
    runner_id: Option<String>,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    approved_by: Option<String>,
    approval_at: Option<i64>,
    approval_decision: Option<String>,
}

impl StepRow {
    pub(crate) fn into_step(self) -> StoreResult<Step> {
        let needs = serde_json::from_str(&self.needs).map_err(|e| StoreError::Corrupt {
            table: "steps",
            reason: format!("needs is not a JSON list of names: {e}"),
        })?;
        let approval = match (self.approved_by, self.approval_at, self.approval_decision) {
            (Some(by), Some(at), Some(decision)) => Some(Approval {
                by,
                at,
                decision: match decision.as_str() {
                    "approved" => ApprovalDecision::Approved,
                    _ => ApprovalDecision::Rejected,
                },
            }),
            _ => None,
        };
        Ok(Step {
            id: self.id,
            workflow_id: self.workflow_id,
            name: self.name,
            kind: self.kind,
            needs,
            position: self.position,
            status: RunStatus::parse(&self.status).map_err(|e| corrupt("steps", e))?,
            exit_code: self.exit_code,
            error: self.error,
            runner_id: self.runner_id,
            started_at: self.started_at,
            finished_at: self.finished_at,
            approval,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct QueueRow {
    id: i64,
    workflow_id: i64,
    build_id: i64,
    repo_id: i64,
    labels: String,
    state: String,
    runner_id: Option<String>,
    lease_until: Option<i64>,
    attempts: i64,
    enqueued_at: i64,
    error: Option<String>,
}

impl QueueRow {
    pub(crate) fn into_item(self) -> StoreResult<QueueItem> {
        Ok(QueueItem {
            id: self.id,
            workflow_id: self.workflow_id,
            build_id: self.build_id,
            repo_id: self.repo_id,
            labels: json_map("queue_items", &self.labels)?,
            state: QueueState::parse(&self.state).map_err(|e| corrupt("queue_items", e))?,
            runner_id: self.runner_id,
            lease_until: self.lease_until,
            attempts: self.attempts,
            enqueued_at: self.enqueued_at,
            error: self.error,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct TokenRow {
    id: i64,
    name: String,
    subject: String,
    role: String,
    scope: Option<String>,
    created_at: i64,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
    runner_labels: Option<String>,
    runner_repos: Option<String>,
}

impl TokenRow {
    pub(crate) fn into_token(self) -> StoreResult<ApiToken> {
        Ok(ApiToken {
            id: self.id,
            name: self.name,
            subject: self.subject,
            role: TokenRole::parse(&self.role).map_err(|e| corrupt("api_tokens", e))?,
            scope: self.scope,
            created_at: self.created_at,
            last_used_at: self.last_used_at,
            revoked_at: self.revoked_at,
            labels: match &self.runner_labels {
                Some(text) => json_map("api_tokens", text)?,
                None => BTreeMap::new(),
            },
            repos: self
                .runner_repos
                .as_deref()
                .map(|text| json_list("api_tokens", text))
                .transpose()?,
        })
    }
}

/// Converts every row, stopping at the first bad one.
pub(crate) fn convert<R, T>(
    rows: Vec<R>,
    into: impl Fn(R) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    rows.into_iter().map(into).collect()
}

impl BuildRow {
    /// (id, repo id, created at) of a build row.
    pub(crate) fn keys(&self) -> (i64, i64, i64) {
        (self.id, self.repo_id, self.created_at)
    }
}
