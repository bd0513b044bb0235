//! Builds, workflows and steps.

use async_trait::async_trait;
use sqlx::{Postgres, Sqlite, Transaction};

use super::rows::{
    BuildRow, StepRow, WorkflowRow, build_columns, convert, labels_json, step_columns,
    workflow_columns,
};
use super::{PostgresStore, SqliteStore};
use crate::builds::{
    Approval, ApprovalDecision, Build, BuildDetail, BuildPage, BuildStore, MAX_BUILD_PAGE,
    NewBuild, NewWorkflow, StatusChange, StepChange, WorkflowDetail,
};
use crate::error::{StoreError, StoreResult};
use crate::status::RunStatus;

/// Refuses a move back to `pending`: status moves forward only.
fn check_target(status: RunStatus) -> StoreResult<()> {
    if status == RunStatus::Pending {
        return Err(StoreError::InvalidInput {
            field: "status".to_string(),
            reason: "nothing moves back to `pending`; statuses move forward only".to_string(),
        });
    }
    Ok(())
}

/// `started_at` to set on this move (kept if already set), `finished_at` likewise.
fn change_times(status: RunStatus, at: i64) -> (Option<i64>, Option<i64>) {
    let started = (status != RunStatus::Skipped).then_some(at);
    let finished = status.is_terminal().then_some(at);
    (started, finished)
}

pub(super) fn check_new_build(build: &NewBuild) -> StoreResult<()> {
    if build.status == RunStatus::Running {
        return Err(StoreError::InvalidInput {
            field: "build.status".to_string(),
            reason: "a new build starts `pending`, `blocked` or in a final status".to_string(),
        });
    }
    if build.sha.is_empty() {
        return Err(StoreError::InvalidInput {
            field: "build.sha".to_string(),
            reason: "the commit SHA is empty".to_string(),
        });
    }
    Ok(())
}

/// Groups steps under their workflows (both already ordered).
fn assemble(
    build: Build,
    workflows: Vec<WorkflowRow>,
    steps: Vec<StepRow>,
) -> StoreResult<BuildDetail> {
    let mut details: Vec<WorkflowDetail> = convert(workflows, WorkflowRow::into_workflow)?
        .into_iter()
        .map(|workflow| WorkflowDetail {
            workflow,
            steps: Vec::new(),
        })
        .collect();
    for step in convert(steps, StepRow::into_step)? {
        if let Some(detail) = details
            .iter_mut()
            .find(|d| d.workflow.id == step.workflow_id)
        {
            detail.steps.push(step);
        }
    }
    Ok(BuildDetail {
        build,
        workflows: details,
    })
}

macro_rules! build_store_impl {
    ($store:ty, $db:ty) => {
        impl $store {
            pub(super) async fn insert_build(
                tx: &mut Transaction<'static, $db>,
                build: &NewBuild,
            ) -> StoreResult<BuildRow> {
                let number: Option<i64> = sqlx::query_scalar(
                    "UPDATE repos SET last_build_number = last_build_number + 1 \
                     WHERE id = $1 RETURNING last_build_number",
                )
                .bind(build.repo_id)
                .fetch_optional(&mut **tx)
                .await?;
                let number = number.ok_or_else(|| StoreError::NotFound {
                    what: format!("repository {}", build.repo_id),
                })?;
                let started: Option<i64> = None;
                let finished = build.status.is_terminal().then_some(build.created_at);
                Ok(sqlx::query_as::<_, BuildRow>(concat!(
                    "INSERT INTO builds (repo_id, number, event, git_ref, sha, before_sha, \
                     message, author, sender, status, error, parent_id, deploy_target, \
                     diagnostics, created_at, started_at, finished_at) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
                     RETURNING ",
                    build_columns!()
                ))
                .bind(build.repo_id)
                .bind(number)
                .bind(build.event.as_str())
                .bind(&build.git_ref)
                .bind(&build.sha)
                .bind(&build.before)
                .bind(&build.message)
                .bind(&build.author)
                .bind(&build.sender)
                .bind(build.status.as_str())
                .bind(&build.error)
                .bind(build.parent_id)
                .bind(&build.deploy_target)
                .bind(&build.diagnostics)
                .bind(build.created_at)
                .bind(started)
                .bind(finished)
                .fetch_one(&mut **tx)
                .await?)
            }

            /// Inserts a workflow and its steps; `enqueue_at` puts it in the queue at that time.
            pub(super) async fn insert_workflow(
                tx: &mut Transaction<'static, $db>,
                build: &BuildRow,
                workflow: &NewWorkflow,
                enqueue_at: Option<i64>,
            ) -> StoreResult<()> {
                let labels = labels_json(&workflow.labels);
                let (build_id, repo_id, _) = build.keys();
                let workflow_id: i64 = sqlx::query_scalar(
                    "INSERT INTO workflows (build_id, name, plan, labels, status) \
                     VALUES ($1, $2, $3, $4, 'pending') RETURNING id",
                )
                .bind(build_id)
                .bind(&workflow.name)
                .bind(&workflow.plan)
                .bind(&labels)
                .fetch_one(&mut **tx)
                .await?;
                for (position, step) in workflow.steps.iter().enumerate() {
                    let needs = serde_json::to_string(&step.needs).unwrap_or_else(|_| "[]".into());
                    let inserted = sqlx::query(
                        "INSERT INTO steps (workflow_id, name, kind, needs, position, status) \
                         VALUES ($1, $2, $3, $4, $5, 'pending')",
                    )
                    .bind(workflow_id)
                    .bind(&step.name)
                    .bind(&step.kind)
                    .bind(&needs)
                    .bind(i64::try_from(position).unwrap_or(i64::MAX))
                    .execute(&mut **tx)
                    .await;
                    if let Err(e) = inserted {
                        return Err(if crate::error::is_unique_violation(&e) {
                            StoreError::InvalidInput {
                                field: format!("workflow `{}` steps", workflow.name),
                                reason: format!("step name `{}` is used twice", step.name),
                            }
                        } else {
                            e.into()
                        });
                    }
                }
                if let Some(enqueued_at) = enqueue_at {
                    sqlx::query(
                        "INSERT INTO queue_items (workflow_id, build_id, repo_id, labels, state, \
                         attempts, enqueued_at) VALUES ($1, $2, $3, $4, 'pending', 0, $5)",
                    )
                    .bind(workflow_id)
                    .bind(build_id)
                    .bind(repo_id)
                    .bind(&labels)
                    .bind(enqueued_at)
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(())
            }

            async fn detail(&self, row: Option<BuildRow>) -> StoreResult<Option<BuildDetail>> {
                let Some(row) = row else { return Ok(None) };
                let build = row.into_build()?;
                let workflows = sqlx::query_as::<_, WorkflowRow>(concat!(
                    "SELECT ",
                    workflow_columns!(),
                    " FROM workflows WHERE build_id = $1 ORDER BY id"
                ))
                .bind(build.id)
                .fetch_all(&self.pool)
                .await?;
                let steps = sqlx::query_as::<_, StepRow>(concat!(
                    "SELECT ",
                    step_columns!(),
                    " FROM steps WHERE workflow_id IN \
                     (SELECT id FROM workflows WHERE build_id = $1) ORDER BY workflow_id, position"
                ))
                .bind(build.id)
                .fetch_all(&self.pool)
                .await?;
                assemble(build, workflows, steps).map(Some)
            }
        }

        #[async_trait]
        impl BuildStore for $store {
            async fn create_build(
                &self,
                build: &NewBuild,
                workflows: &[NewWorkflow],
            ) -> StoreResult<BuildDetail> {
                check_new_build(build)?;
                let mut tx = self.write_tx().await?;
                let row = Self::insert_build(&mut tx, build).await?;
                let enqueue_at = (build.status == RunStatus::Pending).then_some(build.created_at);
                for workflow in workflows {
                    Self::insert_workflow(&mut tx, &row, workflow, enqueue_at).await?;
                }
                tx.commit().await?;
                let id = row.keys().0;
                self.build_by_id(id).await?.ok_or_else(|| StoreError::NotFound {
                    what: format!("build {id} right after creating it"),
                })
            }

            async fn build_by_number(
                &self,
                repo_id: i64,
                number: i64,
            ) -> StoreResult<Option<BuildDetail>> {
                let row = sqlx::query_as::<_, BuildRow>(concat!(
                    "SELECT ",
                    build_columns!(),
                    " FROM builds WHERE repo_id = $1 AND number = $2"
                ))
                .bind(repo_id)
                .bind(number)
                .fetch_optional(&self.pool)
                .await?;
                self.detail(row).await
            }

            async fn build_by_id(&self, id: i64) -> StoreResult<Option<BuildDetail>> {
                let row = sqlx::query_as::<_, BuildRow>(concat!(
                    "SELECT ",
                    build_columns!(),
                    " FROM builds WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                self.detail(row).await
            }

            async fn list_builds(&self, repo_id: i64, page: BuildPage) -> StoreResult<Vec<Build>> {
                let limit = match page.limit {
                    0 => 50,
                    n => n.min(MAX_BUILD_PAGE),
                };
                let rows = sqlx::query_as::<_, BuildRow>(concat!(
                    "SELECT ",
                    build_columns!(),
                    " FROM builds WHERE repo_id = $1 AND number < $2 ORDER BY number DESC LIMIT $3"
                ))
                .bind(repo_id)
                .bind(page.before_number.unwrap_or(i64::MAX))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                convert(rows, BuildRow::into_build)
            }

            async fn update_build_status(
                &self,
                build_id: i64,
                change: &StatusChange,
            ) -> StoreResult<bool> {
                check_target(change.status)?;
                let (started, finished) = change_times(change.status, change.at);
                let done = sqlx::query(
                    "UPDATE builds SET status = $2, error = COALESCE($3, error), \
                     started_at = COALESCE(started_at, $4), finished_at = COALESCE($5, finished_at) \
                     WHERE id = $1 AND status IN ('pending', 'running', 'blocked') AND status <> $2",
                )
                .bind(build_id)
                .bind(change.status.as_str())
                .bind(&change.error)
                .bind(started)
                .bind(finished)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn update_workflow_status(
                &self,
                workflow_id: i64,
                change: &StatusChange,
            ) -> StoreResult<bool> {
                check_target(change.status)?;
                let (started, finished) = change_times(change.status, change.at);
                let done = sqlx::query(
                    "UPDATE workflows SET status = $2, error = COALESCE($3, error), \
                     started_at = COALESCE(started_at, $4), finished_at = COALESCE($5, finished_at) \
                     WHERE id = $1 AND status IN ('pending', 'running', 'blocked') AND status <> $2",
                )
                .bind(workflow_id)
                .bind(change.status.as_str())
                .bind(&change.error)
                .bind(started)
                .bind(finished)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn update_step(&self, step_id: i64, change: &StepChange) -> StoreResult<bool> {
                check_target(change.status)?;
                let (started, finished) = change_times(change.status, change.at);
                let done = sqlx::query(
                    "UPDATE steps SET status = $2, error = COALESCE($3, error), \
                     started_at = COALESCE(started_at, $4), finished_at = COALESCE($5, finished_at), \
                     exit_code = COALESCE($6, exit_code), runner_id = COALESCE($7, runner_id) \
                     WHERE id = $1 AND status IN ('pending', 'running', 'blocked') AND status <> $2",
                )
                .bind(step_id)
                .bind(change.status.as_str())
                .bind(&change.error)
                .bind(started)
                .bind(finished)
                .bind(change.exit_code)
                .bind(&change.runner_id)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn decide_approval(&self, step_id: i64, approval: &Approval) -> StoreResult<bool> {
                let status = match approval.decision {
                    ApprovalDecision::Approved => RunStatus::Success,
                    ApprovalDecision::Rejected => RunStatus::Failure,
                };
                let done = sqlx::query(
                    "UPDATE steps SET status = $2, approved_by = $3, approval_at = $4, \
                     approval_decision = $5, started_at = COALESCE(started_at, $4), finished_at = $4 \
                     WHERE id = $1 AND kind = 'approval' AND status IN ('pending', 'blocked') \
                     AND approval_decision IS NULL",
                )
                .bind(step_id)
                .bind(status.as_str())
                .bind(&approval.by)
                .bind(approval.at)
                .bind(approval.decision.as_str())
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

build_store_impl!(SqliteStore, Sqlite);
build_store_impl!(PostgresStore, Postgres);
