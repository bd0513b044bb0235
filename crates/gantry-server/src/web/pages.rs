//! `GET /` (repositories with their last build), `GET /{owner}/{name}` (its builds),
//! `GET /{owner}/{name}/builds/{n}/row` (one build's row, for rows added live) and
//! `POST /{owner}/{name}/run` (build a branch now).

use askama::Template;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use gantry_store::{Build, BuildPage};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::build_page::load_build;
use super::csrf::Posted;
use super::session::WebUser;
use super::view::{Chrome, WebResult, format_duration, format_time, headline, render};
use super::{BuildPath, RepoPath, call_api};
use crate::auth::{can_read, can_write};
use crate::live::lookup::readable_repo;
use crate::state::AppState;

/// Builds listed per page of a repository.
const BUILDS_PER_PAGE: u32 = 50;

/// A repository row of the home page.
struct RepoRow {
    full_name: String,
    private: bool,
    status: String,
    build: Option<i64>,
    when: String,
}

#[derive(Template)]
#[template(path = "repos.html")]
struct ReposPage {
    chrome: Chrome,
    repos: Vec<RepoRow>,
}

/// `GET /`: the repositories the user may read, each with its newest build's status.
pub async fn repos(State(state): State<AppState>, user: WebUser) -> WebResult<Response> {
    let mut rows = Vec::new();
    for repo in state.store.list_repos().await? {
        if !can_read(&user.principal, &repo) {
            continue;
        }
        let newest = BuildPage {
            before_number: None,
            limit: 1,
        };
        let last = state.store.list_builds(repo.id, newest).await?.pop();
        rows.push(RepoRow {
            full_name: repo.full_name(),
            private: repo.private,
            status: last
                .as_ref()
                .map_or("none", |b| b.status.as_str())
                .to_string(),
            build: last.as_ref().map(|b| b.number),
            when: last.map(|b| format_time(b.created_at)).unwrap_or_default(),
        });
    }
    Ok(render(&ReposPage {
        chrome: Chrome::of(&user),
        repos: rows,
    }))
}

/// A build row of a repository's page (also what `builds.js` fetches for a new row).
#[derive(Serialize)]
struct BuildRow {
    number: i64,
    status: &'static str,
    event: &'static str,
    branch: String,
    message: String,
    author: String,
    created: String,
    duration: String,
}

impl BuildRow {
    fn of(build: &Build) -> BuildRow {
        let branch = build
            .git_ref
            .strip_prefix("refs/heads/")
            .or_else(|| build.git_ref.strip_prefix("refs/tags/"))
            .unwrap_or(&build.git_ref);
        BuildRow {
            number: build.number,
            status: build.status.as_str(),
            event: build.event.as_str(),
            branch: branch.to_string(),
            message: headline(&build.message),
            author: if build.author.is_empty() {
                build.sender.clone()
            } else {
                build.author.clone()
            },
            created: format_time(build.created_at),
            duration: format_duration(build.started_at, build.finished_at),
        }
    }
}

#[derive(Template)]
#[template(path = "repo.html")]
struct RepoPageView {
    chrome: Chrome,
    repo: String,
    writable: bool,
    builds: Vec<BuildRow>,
    older: Option<i64>,
}

/// `?before=N` of a repository page.
#[derive(Debug, Deserialize)]
pub struct BuildsQuery {
    before: Option<i64>,
}

/// `GET /{owner}/{name}`: builds newest first, updated live by `builds.js`.
pub async fn repo(
    State(state): State<AppState>,
    user: WebUser,
    Path(path): Path<RepoPath>,
    query: Result<Query<BuildsQuery>, QueryRejection>,
) -> WebResult<Response> {
    let repo = readable_repo(&state, &user.principal, &path.owner, &path.name).await?;
    let before = query.ok().and_then(|Query(q)| q.before);
    let page = BuildPage {
        before_number: before,
        limit: BUILDS_PER_PAGE,
    };
    let builds = state.store.list_builds(repo.id, page).await?;
    let older = (builds.len() == BUILDS_PER_PAGE as usize)
        .then(|| builds.last().map(|b| b.number))
        .flatten();
    Ok(render(&RepoPageView {
        chrome: Chrome::of(&user),
        repo: repo.full_name(),
        writable: can_write(&user.principal, &repo),
        builds: builds.iter().map(BuildRow::of).collect(),
        older,
    }))
}

/// `GET /{owner}/{name}/builds/{n}/row`: the build's row as JSON, formatted as the page
/// shows it, so a row added live carries every column.
pub async fn build_row(
    State(state): State<AppState>,
    user: WebUser,
    Path(path): Path<BuildPath>,
) -> WebResult<Response> {
    let repo = readable_repo(&state, &user.principal, &path.owner, &path.name).await?;
    let detail = load_build(&state, &repo, &path.number).await?;
    Ok(Json(BuildRow::of(&detail.build)).into_response())
}

/// Fields of the run form.
#[derive(Debug, Deserialize)]
pub struct RunForm {
    #[serde(default)]
    branch: String,
}

/// `POST /{owner}/{name}/run`: builds the branch's head now, then shows the new build.
pub async fn run(
    State(state): State<AppState>,
    Path(path): Path<RepoPath>,
    posted: Posted<RunForm>,
) -> WebResult<Response> {
    let branch = posted.form.branch.trim();
    let branch = if branch.is_empty() { "main" } else { branch };
    let created = call_api(
        crate::api::builds::trigger(
            State(state),
            posted.user.principal,
            Path(path.api()),
            crate::error::ApiJson(super::from_json(json!({ "branch": branch }))?),
        )
        .await,
    )?;
    let number = created.1["number"].as_i64().unwrap_or_default();
    Ok(Redirect::to(&format!("/{}/{}/builds/{number}", path.owner, path.name)).into_response())
}
