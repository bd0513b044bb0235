//! `/api/tokens` (admin): create (the plaintext is shown once), list, revoke.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use gantry_store::{ApiToken, NewToken, RunnerScope, TokenRole, now_ms};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Principal, parse_scope, require_admin};
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::state::AppState;

/// Body of `POST /api/tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    name: String,
    subject: String,
    role: TokenRole,
    scope: Option<String>,
    /// A runner token's imposed labels.
    labels: Option<BTreeMap<String, String>>,
    /// The repositories a runner token's runner may take work of (`owner/name`, `owner/*`).
    repos: Option<Vec<String>>,
}

/// `POST /api/tokens`.
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<CreateToken>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    require_admin(&principal)?;
    for (field, value) in [("name", &body.name), ("subject", &body.subject)] {
        if value.trim().is_empty() || value.len() > 100 {
            return Err(ApiError::invalid(format!(
                "token {field} must be 1 to 100 characters"
            )));
        }
    }
    if let Some(scope) = &body.scope {
        parse_scope(scope)
            .map_err(|reason| ApiError::invalid(format!("invalid scope: {reason}")))?;
    }
    let runner_scope = RunnerScope {
        labels: body.labels.unwrap_or_default(),
        repos: body.repos,
    };
    if !runner_scope.is_unscoped() && body.role != TokenRole::Runner {
        return Err(ApiError::invalid(
            "`labels` and `repos` restrict runner tokens only; create it with role `runner`",
        ));
    }
    runner_scope
        .check()
        .map_err(|reason| ApiError::invalid(format!("invalid runner scope: {reason}")))?;
    let new = NewToken {
        name: body.name,
        subject: body.subject,
        role: body.role,
        scope: body.scope,
    };
    let (token, plaintext) = (state.store)
        .create_runner_token(&new, &runner_scope, now_ms())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"token": token, "secret": plaintext.expose()})),
    ))
}

/// `GET /api/tokens`: every token, newest first, without secrets.
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Json<Vec<ApiToken>>> {
    require_admin(&principal)?;
    Ok(Json(state.store.list_tokens().await?))
}

/// `DELETE /api/tokens/{id}`.
pub async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    require_admin(&principal)?;
    let missing = || {
        ApiError::not_found(format!(
            "no active token with id `{}`",
            id.chars().take(40).collect::<String>()
        ))
    };
    let id: i64 = id.parse().map_err(|_| missing())?;
    if state.store.revoke_token(id, now_ms()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(missing())
    }
}
