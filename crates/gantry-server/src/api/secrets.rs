//! `/api/repos/{owner}/{name}/secrets`: set, delete and list (names only, never values).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use gantry_store::{SecretInfo, SecretValue, now_ms};
use serde::Deserialize;

use super::repos::{RepoPath, writable_repo};
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::state::AppState;

/// `.../secrets/{secret}` in a route.
#[derive(Debug, Deserialize)]
pub struct SecretPath {
    owner: String,
    name: String,
    secret: String,
}

/// Body of `PUT .../secrets/{secret}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretBody {
    value: String,
}

impl std::fmt::Debug for SecretBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBody(********)")
    }
}

/// `GET .../secrets`: names and times.
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<RepoPath>,
) -> ApiResult<Json<Vec<SecretInfo>>> {
    let repo = writable_repo(&state, &principal, &path).await?;
    Ok(Json(state.store.list_secrets(repo.id).await?))
}

/// `PUT .../secrets/{secret}`: creates or replaces.
pub async fn set(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<SecretPath>,
    ApiJson(body): ApiJson<SecretBody>,
) -> ApiResult<StatusCode> {
    let repo_path = RepoPath {
        owner: path.owner,
        name: path.name,
    };
    let repo = writable_repo(&state, &principal, &repo_path).await?;
    if body.value.is_empty() {
        return Err(ApiError::invalid(
            "the secret's value is empty; delete the secret instead",
        ));
    }
    state
        .store
        .set_secret(
            repo.id,
            &path.secret,
            &SecretValue::new(body.value),
            now_ms(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE .../secrets/{secret}`.
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<SecretPath>,
) -> ApiResult<StatusCode> {
    let repo_path = RepoPath {
        owner: path.owner,
        name: path.name,
    };
    let repo = writable_repo(&state, &principal, &repo_path).await?;
    if state.store.delete_secret(repo.id, &path.secret).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "`{}` has no secret `{}`",
            repo.full_name(),
            path.secret.chars().take(128).collect::<String>()
        )))
    }
}
