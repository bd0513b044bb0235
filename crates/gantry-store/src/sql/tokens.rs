//! API tokens, stored as SHA-256 hashes.

use async_trait::async_trait;

use super::rows::{TokenRow, convert, labels_json, token_columns};
use super::{PostgresStore, SqliteStore};
use crate::error::{StoreError, StoreResult, is_unique_violation};
use crate::time::Millis;
use crate::tokens::{
    ApiToken, NewToken, PlaintextToken, RunnerScope, TokenRole, TokenStore, new_plaintext,
    token_hash,
};

/// How stale `last_used_at` may get before a verification rewrites it.
const LAST_USED_RESOLUTION_MS: i64 = 60_000;

fn check_token(token: &NewToken) -> StoreResult<()> {
    if token.name.trim().is_empty() || token.subject.trim().is_empty() {
        return Err(StoreError::InvalidInput {
            field: "token".to_string(),
            reason: "a token needs a name and a subject".to_string(),
        });
    }
    Ok(())
}

/// The stored columns of a runner scope: (labels, repos), NULL when unrestricted.
fn scope_columns(
    token: &NewToken,
    scope: &RunnerScope,
) -> StoreResult<(Option<String>, Option<String>)> {
    if scope.is_unscoped() {
        return Ok((None, None));
    }
    if token.role != TokenRole::Runner {
        return Err(StoreError::InvalidInput {
            field: "token".to_string(),
            reason: "labels and repositories restrict runner tokens only".to_string(),
        });
    }
    scope.check().map_err(|reason| StoreError::InvalidInput {
        field: "runner scope".to_string(),
        reason,
    })?;
    let labels = (!scope.labels.is_empty()).then(|| labels_json(&scope.labels));
    let repos = scope
        .repos
        .as_ref()
        .map(|repos| serde_json::to_string(repos).unwrap_or_else(|_| "[]".to_string()));
    Ok((labels, repos))
}

macro_rules! token_store_impl {
    ($store:ty) => {
        impl $store {
            async fn insert_token(
                &self,
                token: &NewToken,
                scope: &RunnerScope,
                plaintext: &str,
                now: Millis,
            ) -> StoreResult<ApiToken> {
                check_token(token)?;
                let (labels, repos) = scope_columns(token, scope)?;
                if plaintext.len() < 16 {
                    return Err(StoreError::InvalidInput {
                        field: "token".to_string(),
                        reason: "it is shorter than 16 characters; use a long random value"
                            .to_string(),
                    });
                }
                let inserted = sqlx::query_as::<_, TokenRow>(concat!(
                    "INSERT INTO api_tokens (name, subject, role, scope, token_hash, created_at, \
                     runner_labels, runner_repos) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     RETURNING ",
                    token_columns!()
                ))
                .bind(&token.name)
                .bind(&token.subject)
                .bind(token.role.as_str())
                .bind(&token.scope)
                .bind(token_hash(plaintext))
                .bind(now)
                .bind(labels)
                .bind(repos)
                .fetch_one(&self.pool)
                .await;
                match inserted {
                    Ok(row) => row.into_token(),
                    Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict {
                        what: "a token with the same text".to_string(),
                    }),
                    Err(e) => Err(e.into()),
                }
            }
        }

        #[async_trait]
        impl TokenStore for $store {
            async fn create_token(
                &self,
                token: &NewToken,
                now: Millis,
            ) -> StoreResult<(ApiToken, PlaintextToken)> {
                let plaintext = new_plaintext()?;
                let stored = self.import_token(token, plaintext.expose(), now).await?;
                Ok((stored, plaintext))
            }

            async fn create_runner_token(
                &self,
                token: &NewToken,
                scope: &RunnerScope,
                now: Millis,
            ) -> StoreResult<(ApiToken, PlaintextToken)> {
                let plaintext = new_plaintext()?;
                let stored = self
                    .insert_token(token, scope, plaintext.expose(), now)
                    .await?;
                Ok((stored, plaintext))
            }

            async fn import_token(
                &self,
                token: &NewToken,
                plaintext: &str,
                now: Millis,
            ) -> StoreResult<ApiToken> {
                self.insert_token(token, &RunnerScope::default(), plaintext, now)
                    .await
            }

            async fn verify_token(
                &self,
                plaintext: &str,
                now: Millis,
            ) -> StoreResult<Option<ApiToken>> {
                let found = sqlx::query_as::<_, TokenRow>(concat!(
                    "SELECT ",
                    token_columns!(),
                    " FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL"
                ))
                .bind(token_hash(plaintext))
                .fetch_optional(&self.pool)
                .await?;
                let Some(mut token) = found.map(TokenRow::into_token).transpose()? else {
                    return Ok(None);
                };
                // Record use at most once a minute: a write per API request would make
                // every reader queue for SQLite's single writer.
                if token
                    .last_used_at
                    .is_none_or(|at| now - at >= LAST_USED_RESOLUTION_MS)
                {
                    sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1")
                        .bind(token.id)
                        .bind(now)
                        .execute(&self.pool)
                        .await?;
                    token.last_used_at = Some(now);
                }
                Ok(Some(token))
            }

            async fn revoke_token(&self, id: i64, now: Millis) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                )
                .bind(id)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn list_tokens(&self) -> StoreResult<Vec<ApiToken>> {
                let rows = sqlx::query_as::<_, TokenRow>(concat!(
                    "SELECT ",
                    token_columns!(),
                    " FROM api_tokens ORDER BY id DESC"
                ))
                .fetch_all(&self.pool)
                .await?;
                convert(rows, TokenRow::into_token)
            }
        }
    };
}

token_store_impl!(SqliteStore);
token_store_impl!(PostgresStore);
