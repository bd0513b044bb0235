//! The build page's buttons: cancel, restart (all or failed), promote, approve, reject.
//! Each is a CSRF-checked form post that calls the API's own handler with the session's
//! principal, then shows the build (or the new build a restart or promotion made).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::csrf::Posted;
use super::log_view::StepPath;
use super::sign_in::NoFields;
use super::view::WebResult;
use super::{BuildPath, call_api, from_json};
use crate::api::builds as api;
use crate::error::ApiJson;
use crate::state::AppState;

fn api_build_path(path: &BuildPath) -> WebResult<api::BuildPath> {
    from_json(json!({"owner": path.owner, "name": path.name, "number": path.number}))
}

/// The page of the build the API answered with.
fn to_build(path: &BuildPath, build: &Value) -> Response {
    let number = build["number"].as_i64().unwrap_or_default();
    Redirect::to(&format!("/{}/{}/builds/{number}", path.owner, path.name)).into_response()
}

/// `POST .../cancel`.
pub async fn cancel(
    State(state): State<AppState>,
    Path(path): Path<BuildPath>,
    posted: Posted<NoFields>,
) -> WebResult<Response> {
    let api_path = api_build_path(&path)?;
    let _build = call_api(api::cancel(State(state), posted.user.principal, Path(api_path)).await)?;
    Ok(Redirect::to(&path.url()).into_response())
}

/// Fields of the restart forms.
#[derive(Debug, Deserialize)]
pub struct RestartForm {
    #[serde(default)]
    failed_only: Option<String>,
}

/// `POST .../restart` (`failed_only=1` for the failed workflows only).
pub async fn restart(
    State(state): State<AppState>,
    Path(path): Path<BuildPath>,
    posted: Posted<RestartForm>,
) -> WebResult<Response> {
    let failed_only = posted
        .form
        .failed_only
        .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "on"));
    let body = Bytes::from(json!({ "failed_only": failed_only }).to_string());
    let api_path = api_build_path(&path)?;
    let (_, created) =
        call_api(api::restart(State(state), posted.user.principal, Path(api_path), body).await)?;
    Ok(to_build(&path, &created.0))
}

/// Fields of the promote form.
#[derive(Debug, Deserialize)]
pub struct PromoteForm {
    #[serde(default)]
    target: String,
}

/// `POST .../promote`.
pub async fn promote(
    State(state): State<AppState>,
    Path(path): Path<BuildPath>,
    posted: Posted<PromoteForm>,
) -> WebResult<Response> {
    let body = from_json(json!({ "target": posted.form.target.trim() }))?;
    let api_path = api_build_path(&path)?;
    let (_, created) = call_api(
        api::promote(
            State(state),
            posted.user.principal,
            Path(api_path),
            ApiJson(body),
        )
        .await,
    )?;
    Ok(to_build(&path, &created.0))
}

/// `POST .../steps/{step}/approve`.
pub async fn approve(
    State(state): State<AppState>,
    Path(path): Path<StepPath>,
    posted: Posted<NoFields>,
) -> WebResult<Response> {
    decide(state, path, posted, true).await
}

/// `POST .../steps/{step}/reject`.
pub async fn reject(
    State(state): State<AppState>,
    Path(path): Path<StepPath>,
    posted: Posted<NoFields>,
) -> WebResult<Response> {
    decide(state, path, posted, false).await
}

async fn decide(
    state: AppState,
    path: StepPath,
    posted: Posted<NoFields>,
    approve: bool,
) -> WebResult<Response> {
    let api_path: api::StepPath = from_json(json!({
        "owner": path.owner, "name": path.name, "number": path.number, "step": path.step,
    }))?;
    let (state, principal) = (State(state), posted.user.principal);
    let _decided = if approve {
        call_api(api::approve(state, principal, Path(api_path)).await)?
    } else {
        call_api(api::reject(state, principal, Path(api_path)).await)?
    };
    Ok(Redirect::to(&path.build_url()).into_response())
}
