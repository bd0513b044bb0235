//! Repositories and webhook deliveries.

use async_trait::async_trait;

use super::rows::{RepoRow, repo_columns};
use super::{PostgresStore, SqliteStore};
use crate::deliveries::DeliveryStore;
use crate::error::{StoreError, StoreResult, is_unique_violation};
use crate::repos::{
    NewRepo, Repo, RepoSettings, RepoStore, validate_clone_url, validate_repo, validate_settings,
    validate_webhook_secret,
};
use crate::time::{Millis, now_ms};

macro_rules! repo_store_impl {
    ($store:ty) => {
        #[async_trait]
        impl RepoStore for $store {
            async fn create_repo(&self, repo: &NewRepo) -> StoreResult<Repo> {
                validate_repo(&repo.owner, &repo.name, &repo.clone_url)?;
                validate_settings(&repo.settings)?;
                let now = now_ms();
                let inserted = sqlx::query_as::<_, RepoRow>(concat!(
                    "INSERT INTO repos (owner, name, forge, clone_url, webhook_secret, \
                     config_path, is_trusted, timeout_minutes, is_private, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING ",
                    repo_columns!()
                ))
                .bind(&repo.owner)
                .bind(&repo.name)
                .bind(repo.forge.as_str())
                .bind(&repo.clone_url)
                .bind(&repo.webhook_secret)
                .bind(&repo.settings.config_path)
                .bind(repo.settings.trusted)
                .bind(repo.settings.timeout_minutes)
                .bind(repo.settings.private)
                .bind(now)
                .fetch_one(&self.pool)
                .await;
                match inserted {
                    Ok(row) => row.into_repo(),
                    Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict {
                        what: format!("repository {}/{}", repo.owner, repo.name),
                    }),
                    Err(e) => Err(e.into()),
                }
            }

            async fn repo_by_id(&self, id: i64) -> StoreResult<Option<Repo>> {
                sqlx::query_as::<_, RepoRow>(concat!(
                    "SELECT ",
                    repo_columns!(),
                    " FROM repos WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .map(RepoRow::into_repo)
                .transpose()
            }

            async fn repo_by_name(&self, owner: &str, name: &str) -> StoreResult<Option<Repo>> {
                sqlx::query_as::<_, RepoRow>(concat!(
                    "SELECT ",
                    repo_columns!(),
                    " FROM repos WHERE owner = $1 AND name = $2"
                ))
                .bind(owner)
                .bind(name)
                .fetch_optional(&self.pool)
                .await?
                .map(RepoRow::into_repo)
                .transpose()
            }

            async fn list_repos(&self) -> StoreResult<Vec<Repo>> {
                let rows = sqlx::query_as::<_, RepoRow>(concat!(
                    "SELECT ",
                    repo_columns!(),
                    " FROM repos ORDER BY owner, name"
                ))
                .fetch_all(&self.pool)
                .await?;
                super::rows::convert(rows, RepoRow::into_repo)
            }

            async fn update_repo(&self, id: i64, settings: &RepoSettings) -> StoreResult<Repo> {
                validate_settings(settings)?;
                sqlx::query_as::<_, RepoRow>(concat!(
                    "UPDATE repos SET config_path = $2, is_trusted = $3, timeout_minutes = $4, \
                     is_private = $5, updated_at = $6 WHERE id = $1 RETURNING ",
                    repo_columns!()
                ))
                .bind(id)
                .bind(&settings.config_path)
                .bind(settings.trusted)
                .bind(settings.timeout_minutes)
                .bind(settings.private)
                .bind(now_ms())
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| StoreError::NotFound {
                    what: format!("repository {id}"),
                })?
                .into_repo()
            }

            async fn set_clone_url(&self, id: i64, clone_url: &str) -> StoreResult<Repo> {
                validate_clone_url(clone_url)?;
                let sql = concat!(
                    "UPDATE repos SET clone_url = $2, updated_at = $3 WHERE id = $1 RETURNING ",
                    repo_columns!()
                );
                self.set_repo_text(sql, id, clone_url).await
            }

            async fn set_webhook_secret(&self, id: i64, secret: &str) -> StoreResult<Repo> {
                validate_webhook_secret(secret)?;
                let sql = concat!(
                    "UPDATE repos SET webhook_secret = $2, updated_at = $3 WHERE id = $1 RETURNING ",
                    repo_columns!()
                );
                self.set_repo_text(sql, id, secret).await
            }

            async fn delete_repo(&self, id: i64) -> StoreResult<bool> {
                let mut tx = self.write_tx().await?;
                // Log lines carry no foreign key (see the migration), so they go first.
                sqlx::query(
                    "DELETE FROM log_chunks WHERE step_id IN (SELECT s.id FROM steps s \
                     JOIN workflows w ON w.id = s.workflow_id \
                     JOIN builds b ON b.id = w.build_id WHERE b.repo_id = $1)",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
                let done = sqlx::query("DELETE FROM repos WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }
        }

        impl $store {
            /// Runs `sql`, an UPDATE of one text column (`$2`) of repository `$1` that
            /// stamps `updated_at` (`$3`) and returns the row.
            async fn set_repo_text(&self, sql: &'static str, id: i64, value: &str) -> StoreResult<Repo> {
                sqlx::query_as::<_, RepoRow>(sql)
                    .bind(id)
                    .bind(value)
                    .bind(now_ms())
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(|| StoreError::NotFound {
                        what: format!("repository {id}"),
                    })?
                    .into_repo()
            }
        }

        #[async_trait]
        impl DeliveryStore for $store {
            async fn record_delivery(
                &self,
                repo_id: i64,
                delivery_id: &str,
                received_at: Millis,
            ) -> StoreResult<bool> {
                if delivery_id.is_empty() || delivery_id.len() > 200 {
                    return Err(StoreError::InvalidInput {
                        field: "delivery id".to_string(),
                        reason: "it must be 1 to 200 characters".to_string(),
                    });
                }
                let done = sqlx::query(
                    "INSERT INTO hook_deliveries (repo_id, delivery_id, received_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (repo_id, delivery_id) DO NOTHING",
                )
                .bind(repo_id)
                .bind(delivery_id)
                .bind(received_at)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

repo_store_impl!(SqliteStore);
repo_store_impl!(PostgresStore);
