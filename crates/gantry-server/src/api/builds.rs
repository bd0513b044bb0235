//! `/api/repos/{owner}/{name}/builds`: list, read, trigger, cancel, restart, promote,
//! approve and reject.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use gantry_forge::is_commit_sha;
use gantry_store::{ApprovalDecision, Build, BuildDetail, BuildEvent, BuildPage, Repo};
use serde::Deserialize;
use serde_json::{Value, json};

use super::repos::{RepoPath, writable_repo};
use crate::auth::Principal;
use crate::builds::{self, Trigger};
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::live::lookup::readable_repo;
use crate::state::AppState;

/// `owner/name/builds/{number}` in a route.
#[derive(Debug, Deserialize)]
pub struct BuildPath {
    owner: String,
    name: String,
    number: String,
}

/// `.../builds/{number}/steps/{step}` in a route.
#[derive(Debug, Deserialize)]
pub struct StepPath {
    owner: String,
    name: String,
    number: String,
    step: String,
}

/// Query of `GET .../builds`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    before: Option<i64>,
    limit: Option<u32>,
}

/// Body of `POST .../builds`: a branch, a commit, or both.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerBody {
    branch: Option<String>,
    sha: Option<String>,
}

/// Body of `POST .../restart`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartBody {
    #[serde(default)]
    failed_only: bool,
}

/// Body of `POST .../promote`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteBody {
    target: String,
}

/// `GET .../builds?before=N&limit=M`: newest first.
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<RepoPath>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<Value>>> {
    let Query(query) = query
        .map_err(|e| ApiError::bad_request(format!("{}; use ?before=N&limit=M", e.body_text())))?;
    let repo = readable_repo(&state, &principal, &path.owner, &path.name).await?;
    let page = BuildPage {
        before_number: query.before,
        limit: query
            .limit
            .unwrap_or(50)
            .clamp(1, gantry_store::MAX_BUILD_PAGE),
    };
    let builds = state.store.list_builds(repo.id, page).await?;
    Ok(Json(builds.iter().map(build_json).collect()))
}

/// `GET .../builds/{number}`: with workflows, steps and diagnostics.
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<BuildPath>,
) -> ApiResult<Json<Value>> {
    let (_, detail) = readable_build(&state, &principal, &path).await?;
    let mut json = detail_json(&detail);
    crate::runners::annotate_waiting(&state, &detail, &mut json).await;
    Ok(Json(json))
}

/// `POST .../builds`: builds a branch's head or a given commit now.
pub async fn trigger(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<RepoPath>,
    ApiJson(body): ApiJson<TriggerBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let repo = writable_repo(&state, &principal, &path).await?;
    let sha = match (&body.sha, &body.branch) {
        (Some(sha), _) if is_commit_sha(sha) => sha.to_ascii_lowercase(),
        (Some(sha), _) => {
            return Err(ApiError::invalid(format!(
                "sha `{}` is not a full commit id (40 or 64 hex digits)",
                sha.chars().take(80).collect::<String>()
            )));
        }
        (None, Some(branch)) => builds::resolve_branch(&repo.clone_url, branch).await?,
        (None, None) => return Err(ApiError::invalid("give a `branch`, a `sha`, or both")),
    };
    let branch = body.branch.unwrap_or_default();
    let trigger = Trigger {
        event: BuildEvent::Manual,
        git_ref: if branch.is_empty() {
            String::new()
        } else {
            format!("refs/heads/{branch}")
        },
        branch,
        tag: String::new(),
        sha,
        before: String::new(),
        message: String::new(),
        author: String::new(),
        sender: principal.subject().to_string(),
        pull_request: None,
        link: String::new(),
        parent_id: None,
        deploy_target: None,
    };
    let detail = builds::create(&state, &repo, &trigger).await?;
    Ok((StatusCode::CREATED, Json(detail_json(&detail))))
}

/// `POST .../builds/{number}/cancel`.
pub async fn cancel(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<BuildPath>,
) -> ApiResult<Json<Value>> {
    let (repo, detail) = writable_build(&state, &principal, &path).await?;
    builds::cancel(&state, &repo, &detail, &principal).await?;
    let detail = reload(&state, &repo, detail.build.number).await?;
    Ok(Json(detail_json(&detail)))
}

/// `POST .../builds/{number}/restart` with `{"failed_only": true}` to rerun failed workflows.
pub async fn restart(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<BuildPath>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    // The body is optional: none restarts everything.
    let body: RestartBody = if body.iter().all(u8::is_ascii_whitespace) {
        RestartBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            let status = if e.is_data() {
                ApiError::invalid
            } else {
                ApiError::bad_request
            };
            status(format!("restart body: {e}"))
        })?
    };
    let (repo, detail) = writable_build(&state, &principal, &path).await?;
    let failed_only = body.failed_only;
    let new = builds::restart(&state, &repo, &detail, failed_only, &principal).await?;
    Ok((StatusCode::CREATED, Json(detail_json(&new))))
}

/// `POST .../builds/{number}/promote` with `{"target": "production"}`.
pub async fn promote(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<BuildPath>,
    ApiJson(body): ApiJson<PromoteBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (repo, detail) = writable_build(&state, &principal, &path).await?;
    let new = builds::promote(&state, &repo, &detail.build, &body.target, &principal).await?;
    Ok((StatusCode::CREATED, Json(detail_json(&new))))
}

/// `POST .../builds/{number}/steps/{step}/approve`.
pub async fn approve(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<StepPath>,
) -> ApiResult<Json<Value>> {
    decide(state, principal, path, ApprovalDecision::Approved).await
}

/// `POST .../builds/{number}/steps/{step}/reject`.
pub async fn reject(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<StepPath>,
) -> ApiResult<Json<Value>> {
    decide(state, principal, path, ApprovalDecision::Rejected).await
}

async fn decide(
    state: AppState,
    principal: Principal,
    path: StepPath,
    decision: ApprovalDecision,
) -> ApiResult<Json<Value>> {
    let build_path = BuildPath {
        owner: path.owner,
        name: path.name,
        number: path.number,
    };
    let (_, detail) = writable_build(&state, &principal, &build_path).await?;
    let approval = builds::decide(&state, &detail, &path.step, decision, &principal).await?;
    Ok(Json(json!({"step": path.step, "approval": approval})))
}

/// The build if the caller may read its repository, else 404.
async fn readable_build(
    state: &AppState,
    principal: &Principal,
    path: &BuildPath,
) -> ApiResult<(Repo, BuildDetail)> {
    let repo = readable_repo(state, principal, &path.owner, &path.name).await?;
    let number = parse_number(&path.number)?;
    let detail = reload(state, &repo, number).await?;
    Ok((repo, detail))
}

/// The build if the caller may change its repository (404 / 403 otherwise).
async fn writable_build(
    state: &AppState,
    principal: &Principal,
    path: &BuildPath,
) -> ApiResult<(Repo, BuildDetail)> {
    let repo_path = RepoPath {
        owner: path.owner.clone(),
        name: path.name.clone(),
    };
    let repo = writable_repo(state, principal, &repo_path).await?;
    let number = parse_number(&path.number)?;
    let detail = reload(state, &repo, number).await?;
    Ok((repo, detail))
}

async fn reload(state: &AppState, repo: &Repo, number: i64) -> ApiResult<BuildDetail> {
    state
        .store
        .build_by_number(repo.id, number)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "build {number} of `{}` does not exist",
                repo.full_name()
            ))
        })
}

fn parse_number(text: &str) -> ApiResult<i64> {
    text.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        ApiError::not_found(format!(
            "`{}` is not a build number; builds are numbered 1, 2, 3...",
            text.chars().take(40).collect::<String>()
        ))
    })
}

/// A build as JSON, with its diagnostics as structured data rather than text.
fn build_json(build: &Build) -> Value {
    let mut value = serde_json::to_value(build).unwrap_or(Value::Null);
    if let Some(text) = &build.diagnostics {
        value["diagnostics"] = serde_json::from_str(text).unwrap_or(Value::String(text.clone()));
    } else {
        value["diagnostics"] = json!([]);
    }
    value
}

/// A build with its workflows (plans left out: they are the runner's) and steps.
fn detail_json(detail: &BuildDetail) -> Value {
    let workflows: Vec<Value> = detail
        .workflows
        .iter()
        .map(|w| {
            let mut workflow = serde_json::to_value(&w.workflow).unwrap_or(Value::Null);
            if let Some(map) = workflow.as_object_mut() {
                map.remove("plan");
            }
            workflow["steps"] = serde_json::to_value(&w.steps).unwrap_or(Value::Null);
            workflow
        })
        .collect();
    let mut value = build_json(&detail.build);
    value["workflows"] = Value::Array(workflows);
    value
}
