//! Repository secrets: sealed before they are written, opened after they are read.

use async_trait::async_trait;
use sqlx::FromRow;

use super::{PostgresStore, SqliteStore};
use crate::error::{StoreError, StoreResult};
use crate::secrets::{SecretInfo, SecretStore, SecretValue, validate_secret_name};
use crate::time::Millis;

#[derive(FromRow)]
struct SecretInfoRow {
    name: String,
    created_at: i64,
    updated_at: i64,
}

#[derive(FromRow)]
struct SealedRow {
    name: String,
    sealed: Vec<u8>,
}

macro_rules! secret_store_impl {
    ($store:ty) => {
        #[async_trait]
        impl SecretStore for $store {
            async fn set_secret(
                &self,
                repo_id: i64,
                name: &str,
                value: &SecretValue,
                now: Millis,
            ) -> StoreResult<()> {
                validate_secret_name(name)?;
                let sealed = self.key.seal(repo_id, name, value)?;
                let written = sqlx::query(
                    "INSERT INTO secrets (repo_id, name, sealed, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $4) ON CONFLICT (repo_id, name) \
                     DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
                )
                .bind(repo_id)
                .bind(name)
                .bind(&sealed)
                .bind(now)
                .execute(&self.pool)
                .await;
                match written {
                    Ok(_) => Ok(()),
                    Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
                        Err(StoreError::NotFound {
                            what: format!("repository {repo_id}"),
                        })
                    }
                    Err(e) => Err(e.into()),
                }
            }

            async fn delete_secret(&self, repo_id: i64, name: &str) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM secrets WHERE repo_id = $1 AND name = $2")
                    .bind(repo_id)
                    .bind(name)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn list_secrets(&self, repo_id: i64) -> StoreResult<Vec<SecretInfo>> {
                let rows = sqlx::query_as::<_, SecretInfoRow>(
                    "SELECT name, created_at, updated_at FROM secrets \
                     WHERE repo_id = $1 ORDER BY name",
                )
                .bind(repo_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|row| SecretInfo {
                        name: row.name,
                        created_at: row.created_at,
                        updated_at: row.updated_at,
                    })
                    .collect())
            }

            async fn secret_values(
                &self,
                repo_id: i64,
                names: &[String],
            ) -> StoreResult<Vec<(String, SecretValue)>> {
                let rows = sqlx::query_as::<_, SealedRow>(
                    "SELECT name, sealed FROM secrets WHERE repo_id = $1 ORDER BY name",
                )
                .bind(repo_id)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .filter(|row| names.contains(&row.name))
                    .map(|row| {
                        let value = self.key.open(repo_id, &row.name, &row.sealed)?;
                        Ok((row.name, value))
                    })
                    .collect()
            }
        }
    };
}

secret_store_impl!(SqliteStore);
secret_store_impl!(PostgresStore);
