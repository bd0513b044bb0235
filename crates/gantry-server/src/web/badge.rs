//! `GET /api/badges/{owner}/{name}.svg[?branch=]`: the status of the newest finished
//! build (of the branch, when given) as an SVG badge. Public repositories' badges are
//! open to anyone; a private one's answers 404 unless the caller (session or bearer
//! token) may read it.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use gantry_store::{BuildPage, Repo, RunStatus};
use serde::Deserialize;

use super::session::WebUser;
use super::view::{WebError, WebResult};
use crate::auth::{Principal, can_read};
use crate::state::AppState;

/// Builds looked at for the newest finished one.
const BUILDS_SCANNED: u32 = 100;

/// `?branch=` of a badge.
#[derive(Debug, Deserialize)]
pub struct BadgeQuery {
    branch: Option<String>,
}

#[derive(Template)]
#[template(path = "badge.svg")]
struct Badge<'a> {
    title: String,
    label: &'a str,
    label_width: u32,
    value: &'a str,
    value_width: u32,
    colour: &'a str,
}

/// `GET /api/badges/{owner}/{file}` where `file` is `{name}.svg`.
pub async fn badge(
    State(state): State<AppState>,
    Path((owner, file)): Path<(String, String)>,
    query: Result<Query<BadgeQuery>, QueryRejection>,
    mut parts: Parts,
) -> WebResult<Response> {
    let missing = || {
        WebError::not_found("no such repository badge; the URL is /api/badges/{owner}/{name}.svg")
    };
    let name = file.strip_suffix(".svg").ok_or_else(missing)?;
    let repo = state
        .store
        .repo_by_name(&owner, name)
        .await?
        .ok_or_else(missing)?;
    if repo.private && !caller_may_read(&mut parts, &state, &repo).await {
        return Err(missing());
    }
    let branch = query
        .ok()
        .and_then(|Query(q)| q.branch)
        .filter(|b| !b.is_empty());
    let status = newest_finished(&state, &repo, branch.as_deref()).await?;
    let (value, colour) = looks(status);
    let label = "build";
    let badge = Badge {
        title: format!("{}: {value}", repo.full_name()),
        label,
        label_width: text_width(label),
        value,
        value_width: text_width(value),
        colour,
    };
    let svg = badge
        .render()
        .map_err(|e| WebError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache, no-store, must-revalidate"),
            (header::EXPIRES, "0"),
        ],
        svg,
    )
        .into_response())
}

/// A signed-in browser, or a bearer token, that may read the repository.
async fn caller_may_read(parts: &mut Parts, state: &AppState, repo: &Repo) -> bool {
    if let Some(user) = WebUser::from_parts(parts, state).await {
        return can_read(&user.principal, repo);
    }
    match Principal::from_request_parts(parts, state).await {
        Ok(principal) => can_read(&principal, repo),
        Err(_) => false,
    }
}

/// The status of the newest build that ended (skipped builds do not count).
async fn newest_finished(
    state: &AppState,
    repo: &Repo,
    branch: Option<&str>,
) -> WebResult<Option<RunStatus>> {
    let page = BuildPage {
        before_number: None,
        limit: BUILDS_SCANNED,
    };
    let wanted_ref = branch.map(|b| format!("refs/heads/{b}"));
    let builds = state.store.list_builds(repo.id, page).await?;
    Ok(builds
        .iter()
        .filter(|b| b.status.is_terminal() && b.status != RunStatus::Skipped)
        .find(|b| wanted_ref.as_ref().is_none_or(|r| *r == b.git_ref))
        .map(|b| b.status))
}

/// The badge's text and colour for a status.
pub fn looks(status: Option<RunStatus>) -> (&'static str, &'static str) {
    match status {
        Some(RunStatus::Success) => ("passing", "#2e7d32"),
        Some(RunStatus::Failure) => ("failing", "#c62828"),
        Some(RunStatus::Error) => ("error", "#c62828"),
        Some(RunStatus::Killed) => ("killed", "#757575"),
        _ => ("unknown", "#9e9e9e"),
    }
}

/// Approximate width of a badge text in Verdana 11px.
fn text_width(text: &str) -> u32 {
    text.chars().count() as u32 * 7 + 12
}
