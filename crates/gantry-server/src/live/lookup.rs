//! Finding the step a log route names, answering 404 to callers who may not see it.

use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use gantry_store::{BuildDetail, Repo, Step};

use crate::auth::{Principal, can_read};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The path of a step's log routes: `/api/repos/{owner}/{name}/builds/{n}/steps/{step}`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct StepPath {
    /// Repository owner.
    pub owner: String,
    /// Repository name.
    pub name: String,
    /// Build number.
    pub number: i64,
    /// Step name.
    pub step: String,
}

/// The step path, or a 400 in the JSON envelope (a build number that is not a number).
pub fn step_path(path: Result<Path<StepPath>, PathRejection>) -> ApiResult<StepPath> {
    path.map(|Path(path)| path).map_err(|rejection| {
        ApiError::bad_request(format!(
            "{}; the path is /api/repos/{{owner}}/{{name}}/builds/{{number}}/steps/{{step}}",
            rejection.body_text()
        ))
    })
}

/// A step found for a caller allowed to read it.
#[derive(Debug, Clone)]
pub struct FoundStep {
    /// Its repository.
    pub repo: Repo,
    /// Its build.
    pub build: BuildDetail,
    /// The step.
    pub step: Step,
}

/// The repository `owner/name` if the caller may read it, else 404 (private repositories
/// look the same as missing ones to outsiders: rule 12).
pub async fn readable_repo(
    state: &AppState,
    principal: &Principal,
    owner: &str,
    name: &str,
) -> ApiResult<Repo> {
    let missing = || ApiError::not_found(format!("repository `{owner}/{name}` does not exist"));
    let repo = state
        .store
        .repo_by_name(owner, name)
        .await?
        .ok_or_else(missing)?;
    if can_read(principal, &repo) {
        Ok(repo)
    } else {
        Err(missing())
    }
}

/// The step the path names (the first workflow holding a step of that name).
pub async fn find_step(
    state: &AppState,
    principal: &Principal,
    path: &StepPath,
) -> ApiResult<FoundStep> {
    let repo = readable_repo(state, principal, &path.owner, &path.name).await?;
    let build = state
        .store
        .build_by_number(repo.id, path.number)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "build {} of `{}` does not exist",
                path.number,
                repo.full_name()
            ))
        })?;
    let step = build
        .workflows
        .iter()
        .flat_map(|w| &w.steps)
        .find(|s| s.name == path.step)
        .cloned()
        .ok_or_else(|| {
            let names: Vec<&str> = build
                .workflows
                .iter()
                .flat_map(|w| w.steps.iter().map(|s| s.name.as_str()))
                .collect();
            ApiError::not_found(format!(
                "build {} of `{}` has no step `{}`; its steps are: {}",
                path.number,
                repo.full_name(),
                path.step,
                names.join(", ")
            ))
        })?;
    Ok(FoundStep { repo, build, step })
}

/// The current status of a step, read again from the store.
pub async fn step_status(state: &AppState, build_id: i64, step_id: i64) -> ApiResult<Option<Step>> {
    let build = state.store.build_by_id(build_id).await?;
    Ok(build.and_then(|b| {
        b.workflows
            .into_iter()
            .flat_map(|w| w.steps)
            .find(|s| s.id == step_id)
    }))
}
