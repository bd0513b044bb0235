//! Hook builds between the request and their preparation.

use async_trait::async_trait;
use sqlx::{FromRow, Postgres, Sqlite, Transaction};

use super::builds::check_new_build;
use super::rows::{BuildRow, build_columns};
use super::{PostgresStore, SqliteStore};
use crate::builds::{Build, NewBuild};
use crate::deliveries::check_delivery_id;
use crate::error::{StoreError, StoreResult};
use crate::preparing::{Preparation, PreparationClaim, PreparationStore, PreparingBuild};
use crate::status::RunStatus;
use crate::time::Millis;

#[derive(FromRow)]
struct PreparingRow {
    #[sqlx(flatten)]
    build: BuildRow,
    facts: String,
    attempts: i64,
    claimed_by: Option<String>,
    claimed_until: i64,
}

impl PreparingRow {
    fn into_preparing(self) -> StoreResult<PreparingBuild> {
        Ok(PreparingBuild {
            build: self.build.into_build()?,
            trigger: self.facts,
            attempts: self.attempts,
            claimed_by: self.claimed_by,
            claimed_until: self.claimed_until,
        })
    }
}

/// The columns of a [`PreparingRow`], from `build_triggers t` joined with `builds`.
macro_rules! preparing_select {
    () => {
        concat!(
            "SELECT t.facts, t.attempts, t.claimed_by, t.claimed_until, ",
            build_columns!(),
            " FROM build_triggers t JOIN builds ON builds.id = t.build_id"
        )
    };
}

fn check_hook_build(build: &NewBuild) -> StoreResult<()> {
    check_new_build(build)?;
    if build.status != RunStatus::Pending {
        return Err(StoreError::InvalidInput {
            field: "build.status".to_string(),
            reason: "a hook build is recorded `pending` until it is prepared".to_string(),
        });
    }
    Ok(())
}

fn check_preparation(outcome: &Preparation) -> StoreResult<()> {
    let allowed = [RunStatus::Pending, RunStatus::Error, RunStatus::Skipped];
    if !allowed.contains(&outcome.status) {
        return Err(StoreError::InvalidInput {
            field: "preparation.status".to_string(),
            reason: "a prepared build is `pending`, `error` or `skipped`".to_string(),
        });
    }
    if outcome.sha.is_empty() {
        return Err(StoreError::InvalidInput {
            field: "preparation.sha".to_string(),
            reason: "the commit SHA is empty".to_string(),
        });
    }
    Ok(())
}

macro_rules! preparation_store_impl {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Sets the prepared build's commit and status; None when it is not pending.
            async fn settle_build(
                tx: &mut Transaction<'static, $db>,
                build_id: i64,
                outcome: &Preparation,
            ) -> StoreResult<Option<BuildRow>> {
                let finished = outcome.status.is_terminal().then_some(outcome.at);
                Ok(sqlx::query_as::<_, BuildRow>(concat!(
                    "UPDATE builds SET sha = $2, status = $3, error = $4, diagnostics = $5, \
                     finished_at = $6 WHERE id = $1 AND status = 'pending' RETURNING ",
                    build_columns!()
                ))
                .bind(build_id)
                .bind(&outcome.sha)
                .bind(outcome.status.as_str())
                .bind(&outcome.error)
                .bind(&outcome.diagnostics)
                .bind(finished)
                .fetch_optional(&mut **tx)
                .await?)
            }
        }

        #[async_trait]
        impl PreparationStore for $store {
            async fn record_hook_build(
                &self,
                delivery_id: &str,
                build: &NewBuild,
                trigger: &str,
            ) -> StoreResult<Option<Build>> {
                check_delivery_id(delivery_id)?;
                check_hook_build(build)?;
                let mut tx = self.write_tx().await?;
                let recorded = sqlx::query(
                    "INSERT INTO hook_deliveries (repo_id, delivery_id, received_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (repo_id, delivery_id) DO NOTHING",
                )
                .bind(build.repo_id)
                .bind(delivery_id)
                .bind(build.created_at)
                .execute(&mut *tx)
                .await?;
                if recorded.rows_affected() == 0 {
                    tx.rollback().await?;
                    return Ok(None);
                }
                let row = Self::insert_build(&mut tx, build).await?;
                sqlx::query(
                    "INSERT INTO build_triggers (build_id, facts, recorded_at) VALUES ($1, $2, $3)",
                )
                .bind(row.keys().0)
                .bind(trigger)
                .bind(build.created_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                row.into_build().map(Some)
            }

            async fn preparing_builds(&self) -> StoreResult<Vec<PreparingBuild>> {
                let rows = sqlx::query_as::<_, PreparingRow>(concat!(
                    preparing_select!(),
                    " ORDER BY t.build_id"
                ))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(PreparingRow::into_preparing).collect()
            }

            async fn finish_preparation(
                &self,
                build_id: i64,
                outcome: &Preparation,
            ) -> StoreResult<bool> {
                check_preparation(outcome)?;
                let mut tx = self.write_tx().await?;
                let taken = sqlx::query("DELETE FROM build_triggers WHERE build_id = $1")
                    .bind(build_id)
                    .execute(&mut *tx)
                    .await?;
                let settled = if taken.rows_affected() == 1 {
                    Self::settle_build(&mut tx, build_id, outcome).await?
                } else {
                    None
                };
                let Some(row) = settled else {
                    tx.commit().await?;
                    return Ok(false);
                };
                let enqueue_at = (outcome.status == RunStatus::Pending).then_some(outcome.at);
                for workflow in &outcome.workflows {
                    Self::insert_workflow(&mut tx, &row, workflow, enqueue_at).await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn claim_preparation(
                &self,
                build_id: i64,
                claim: &PreparationClaim,
            ) -> StoreResult<Option<i64>> {
                // The condition is checked again on the locked row, so of two replicas
                // claiming at once only one sees a row come back.
                let attempts: Option<(i64,)> = sqlx::query_as(
                    "UPDATE build_triggers SET claimed_by = $2, claimed_until = $3, \
                     attempts = attempts + 1 WHERE build_id = $1 AND claimed_until <= $4 \
                     RETURNING attempts",
                )
                .bind(build_id)
                .bind(&claim.claimer)
                .bind(claim.until)
                .bind(claim.now)
                .fetch_optional(&self.pool)
                .await?;
                Ok(attempts.map(|(n,)| n))
            }

            async fn claim_stale_preparations(
                &self,
                claim: &PreparationClaim,
                reclaim_own: bool,
                limit: i64,
            ) -> StoreResult<Vec<PreparingBuild>> {
                let own = reclaim_own.then_some(claim.claimer.as_str());
                // A sweep usually finds nothing: look before taking the write lock.
                let stale: Option<(i64,)> = sqlx::query_as(
                    "SELECT build_id FROM build_triggers \
                     WHERE claimed_until <= $1 OR claimed_by = $2 LIMIT 1",
                )
                .bind(claim.now)
                .bind(own)
                .fetch_optional(&self.pool)
                .await?;
                if stale.is_none() {
                    return Ok(Vec::new());
                }
                let mut tx = self.write_tx().await?;
                let mut taken: Vec<(i64,)> = sqlx::query_as(
                    "UPDATE build_triggers SET claimed_by = $1, claimed_until = $2, \
                     attempts = attempts + 1 \
                     WHERE (claimed_until <= $3 OR claimed_by = $4) AND build_id IN \
                     (SELECT build_id FROM build_triggers \
                      WHERE claimed_until <= $3 OR claimed_by = $4 \
                      ORDER BY build_id LIMIT $5) \
                     RETURNING build_id",
                )
                .bind(&claim.claimer)
                .bind(claim.until)
                .bind(claim.now)
                .bind(own)
                .bind(limit.max(0))
                .fetch_all(&mut *tx)
                .await?;
                taken.sort_unstable();
                let mut claimed = Vec::with_capacity(taken.len());
                for (build_id,) in taken {
                    let row = sqlx::query_as::<_, PreparingRow>(concat!(
                        preparing_select!(),
                        " WHERE t.build_id = $1"
                    ))
                    .bind(build_id)
                    .fetch_one(&mut *tx)
                    .await?;
                    claimed.push(row.into_preparing()?);
                }
                tx.commit().await?;
                Ok(claimed)
            }

            async fn renew_preparation(
                &self,
                build_id: i64,
                claimer: &str,
                until: Millis,
            ) -> StoreResult<bool> {
                let renewed = sqlx::query(
                    "UPDATE build_triggers SET claimed_until = $3 \
                     WHERE build_id = $1 AND claimed_by = $2 AND claimed_until > 0",
                )
                .bind(build_id)
                .bind(claimer)
                .bind(until)
                .execute(&self.pool)
                .await?;
                Ok(renewed.rows_affected() == 1)
            }

            async fn release_preparation(&self, build_id: i64, claimer: &str) -> StoreResult<bool> {
                let released = sqlx::query(
                    "UPDATE build_triggers SET claimed_until = 0 \
                     WHERE build_id = $1 AND claimed_by = $2",
                )
                .bind(build_id)
                .bind(claimer)
                .execute(&self.pool)
                .await?;
                Ok(released.rows_affected() == 1)
            }
        }
    };
}

preparation_store_impl!(SqliteStore, Sqlite);
preparation_store_impl!(PostgresStore, Postgres);
