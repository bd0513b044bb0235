//! Crash recovery: lost leases become requeued work or builds in `error`.

use std::collections::BTreeSet;

use async_trait::async_trait;
use sqlx::{FromRow, Postgres, Sqlite, Transaction};

use super::{PostgresStore, SqliteStore};
use crate::error::StoreResult;
use crate::recovery::{
    InterruptedBuild, InterruptedStep, Recovered, RecoveryRequest, RecoveryStore,
};

#[derive(FromRow)]
struct ClaimedRow {
    id: i64,
    build_id: i64,
    runner_id: Option<String>,
    lease_until: Option<i64>,
    workflow_status: String,
}

#[derive(FromRow)]
struct EndedStepRow {
    id: i64,
    workflow_id: i64,
    runner_id: Option<String>,
    status: String,
}

#[derive(FromRow)]
struct EndedBuildRow {
    id: i64,
    repo_id: i64,
    number: i64,
}

/// Splits lost items into builds to interrupt and items to requeue.
fn sort_lost(claimed: Vec<ClaimedRow>, request: &RecoveryRequest) -> (BTreeSet<i64>, Vec<i64>) {
    let lost: Vec<ClaimedRow> = claimed
        .into_iter()
        .filter(|row| {
            row.lease_until.is_none_or(|until| until < request.now)
                || row
                    .runner_id
                    .as_ref()
                    .is_some_and(|runner| request.dead_runners.contains(runner))
        })
        .collect();
    let interrupted: BTreeSet<i64> = lost
        .iter()
        .filter(|row| row.workflow_status != "pending")
        .map(|row| row.build_id)
        .collect();
    let requeue = lost
        .iter()
        .filter(|row| !interrupted.contains(&row.build_id))
        .map(|row| row.id)
        .collect();
    (interrupted, requeue)
}

macro_rules! recovery_store_impl {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Ends one build and everything active in it; None if it was already final.
            async fn interrupt_build(
                tx: &mut Transaction<'static, $db>,
                build_id: i64,
                request: &RecoveryRequest,
            ) -> StoreResult<Option<InterruptedBuild>> {
                let steps = sqlx::query_as::<_, EndedStepRow>(
                    "UPDATE steps SET \
                     status = CASE WHEN status = 'pending' THEN 'skipped' ELSE 'error' END, \
                     error = CASE WHEN status = 'pending' THEN error ELSE $2 END, finished_at = $1 \
                     WHERE workflow_id IN (SELECT id FROM workflows WHERE build_id = $3) \
                     AND status IN ('pending', 'running', 'blocked') \
                     RETURNING id, workflow_id, runner_id, status",
                )
                .bind(request.now)
                .bind(&request.message)
                .bind(build_id)
                .fetch_all(&mut **tx)
                .await?;
                let workflow_ids: Vec<i64> = sqlx::query_scalar(
                    "UPDATE workflows SET status = 'error', error = $2, finished_at = $1 \
                     WHERE build_id = $3 AND status IN ('pending', 'running', 'blocked') RETURNING id",
                )
                .bind(request.now)
                .bind(&request.message)
                .bind(build_id)
                .fetch_all(&mut **tx)
                .await?;
                sqlx::query(
                    "UPDATE queue_items SET state = 'failed', error = $2, lease_until = NULL \
                     WHERE build_id = $1 AND state IN ('pending', 'claimed')",
                )
                .bind(build_id)
                .bind(&request.message)
                .execute(&mut **tx)
                .await?;
                let build = sqlx::query_as::<_, EndedBuildRow>(
                    "UPDATE builds SET status = 'error', error = $2, finished_at = $1 \
                     WHERE id = $3 AND status IN ('pending', 'running', 'blocked') \
                     RETURNING id, repo_id, number",
                )
                .bind(request.now)
                .bind(&request.message)
                .bind(build_id)
                .fetch_optional(&mut **tx)
                .await?;
                Ok(build.map(|build| InterruptedBuild {
                    build_id: build.id,
                    repo_id: build.repo_id,
                    number: build.number,
                    workflow_ids,
                    steps: steps
                        .into_iter()
                        .filter(|step| step.status == "error")
                        .map(|step| InterruptedStep {
                            step_id: step.id,
                            workflow_id: step.workflow_id,
                            runner_id: step.runner_id,
                        })
                        .collect(),
                }))
            }

            /// Active builds none of whose workflows is active: nothing will ever end them.
            /// A build still waiting for its preparation has none yet and is not one, nor is
            /// one whose runner still holds a live lease: it is ending the build right now
            /// (another replica's runner, between its workflow's end and the build's).
            async fn orphan_builds(
                tx: &mut Transaction<'static, $db>,
                now: i64,
            ) -> StoreResult<Vec<i64>> {
                Ok(sqlx::query_scalar(
                    "SELECT b.id FROM builds b WHERE b.status IN ('pending', 'running', 'blocked') \
                     AND NOT EXISTS (SELECT 1 FROM workflows w WHERE w.build_id = b.id \
                     AND w.status IN ('pending', 'running', 'blocked')) \
                     AND NOT EXISTS (SELECT 1 FROM build_triggers t WHERE t.build_id = b.id) \
                     AND NOT EXISTS (SELECT 1 FROM queue_items q WHERE q.build_id = b.id \
                     AND q.state = 'claimed' AND q.lease_until >= $1)",
                )
                .bind(now)
                .fetch_all(&mut **tx)
                .await?)
            }
        }

        #[async_trait]
        impl RecoveryStore for $store {
            async fn recover_interrupted(
                &self,
                request: &RecoveryRequest,
            ) -> StoreResult<Recovered> {
                let mut tx = self.write_tx().await?;
                let claimed = sqlx::query_as::<_, ClaimedRow>(
                    "SELECT q.id, q.build_id, q.runner_id, q.lease_until, w.status AS workflow_status \
                     FROM queue_items q JOIN workflows w ON w.id = q.workflow_id \
                     WHERE q.state = 'claimed'",
                )
                .fetch_all(&mut *tx)
                .await?;
                let (mut interrupted, requeue) = sort_lost(claimed, request);
                interrupted.extend(Self::orphan_builds(&mut tx, request.now).await?);
                let mut recovered = Recovered::default();
                for build_id in interrupted {
                    if let Some(build) = Self::interrupt_build(&mut tx, build_id, request).await? {
                        recovered.interrupted.push(build);
                    }
                }
                for item_id in requeue {
                    let done = sqlx::query(
                        "UPDATE queue_items SET state = 'pending', runner_id = NULL, \
                         lease_until = NULL WHERE id = $1 AND state = 'claimed'",
                    )
                    .bind(item_id)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() == 1 {
                        recovered.requeued_items.push(item_id);
                    }
                }
                tx.commit().await?;
                Ok(recovered)
            }
        }
    };
}

recovery_store_impl!(SqliteStore, Sqlite);
recovery_store_impl!(PostgresStore, Postgres);
