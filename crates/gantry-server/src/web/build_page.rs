//! `GET /{owner}/{name}/builds/{n}`: the build's summary, step graph, selected step's log,
//! action buttons and compile diagnostics.

use askama::Template;
use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use gantry_store::{BuildDetail, Repo, RunStatus, Step};
use serde::Deserialize;
use serde_json::Value;

use super::BuildPath;
use super::first_error::FirstErrors;
use super::graph::{Graph, layout};
use super::log_view::{LogView, first_lines};
use super::session::WebUser;
use super::view::{Chrome, WebError, WebResult, format_duration, format_time, render};
use crate::auth::can_write;
use crate::live::lookup::readable_repo;
use crate::state::AppState;

/// `?step=<name>` of a build page.
#[derive(Debug, Deserialize)]
pub struct BuildQuery {
    step: Option<String>,
}

/// The selected step's summary.
struct StepView {
    name: String,
    status: &'static str,
    detail: String,
}

/// A compile diagnostic with the line it points at.
struct DiagnosticView {
    severity: String,
    code: String,
    message: String,
    file: String,
    line: u64,
    column: u64,
    source: String,
    caret: String,
    help: String,
}

#[derive(Template)]
#[template(path = "build.html")]
struct BuildView {
    chrome: Chrome,
    repo: String,
    url: String,
    number: i64,
    status: &'static str,
    event: &'static str,
    git_ref: String,
    sha: String,
    message: String,
    author: String,
    created: String,
    duration: String,
    error: String,
    deploy_target: String,
    graph: Graph,
    selected: String,
    step: Option<StepView>,
    log: LogView,
    writable: bool,
    finished: bool,
    restart_failed: bool,
    approval: Option<String>,
    diagnostics: Vec<DiagnosticView>,
}

/// `GET /{owner}/{name}/builds/{n}[?step=<name>]`.
pub async fn show(
    State(state): State<AppState>,
    Extension(first_errors): Extension<FirstErrors>,
    user: WebUser,
    Path(path): Path<BuildPath>,
    query: Result<Query<BuildQuery>, QueryRejection>,
) -> WebResult<Response> {
    let repo = readable_repo(&state, &user.principal, &path.owner, &path.name).await?;
    let detail = load_build(&state, &repo, &path.number).await?;
    let wanted = query.ok().and_then(|Query(q)| q.step);
    let selected = select_step(&detail, wanted.as_deref());
    let log = match selected {
        Some(step) => first_lines(&state, &first_errors, step).await?,
        None => LogView::default(),
    };
    let build = &detail.build;
    let view = BuildView {
        chrome: Chrome::of(&user),
        repo: repo.full_name(),
        url: path.url(),
        number: build.number,
        status: build.status.as_str(),
        event: build.event.as_str(),
        git_ref: build.git_ref.clone(),
        sha: build.sha.chars().take(12).collect(),
        message: build.message.clone(),
        author: if build.author.is_empty() {
            build.sender.clone()
        } else {
            build.author.clone()
        },
        created: format_time(build.created_at),
        duration: format_duration(build.started_at, build.finished_at),
        error: build.error.clone().unwrap_or_default(),
        deploy_target: build.deploy_target.clone().unwrap_or_default(),
        graph: layout(&detail.workflows),
        selected: selected.map(|s| s.name.clone()).unwrap_or_default(),
        step: selected.map(step_view),
        log,
        writable: can_write(&user.principal, &repo),
        finished: build.status.is_terminal(),
        restart_failed: build.status.is_terminal()
            && detail
                .workflows
                .iter()
                .any(|w| w.workflow.status != RunStatus::Success),
        approval: waiting_approval(&detail, selected),
        diagnostics: diagnostics(&state, &repo, &detail).await,
    };
    Ok(render(&view))
}

/// The build, or a 404 page.
pub async fn load_build(state: &AppState, repo: &Repo, number: &str) -> WebResult<BuildDetail> {
    let number = number.parse::<i64>().ok().filter(|n| *n > 0);
    let found = match number {
        Some(number) => state.store.build_by_number(repo.id, number).await?,
        None => None,
    };
    found.ok_or_else(|| WebError::not_found(format!("`{}` has no such build", repo.full_name())))
}

/// The step a page shows: the one asked for, else the first failed, else the first still
/// running or waiting, else the last that ran, else the first.
fn select_step<'a>(detail: &'a BuildDetail, wanted: Option<&str>) -> Option<&'a Step> {
    let steps: Vec<&Step> = detail.workflows.iter().flat_map(|w| &w.steps).collect();
    let find = |pick: &dyn Fn(&Step) -> bool| steps.iter().copied().find(|s| pick(s));
    wanted
        .and_then(|name| find(&|s| s.name == name))
        .or_else(|| find(&|s| matches!(s.status, RunStatus::Failure | RunStatus::Error)))
        .or_else(|| find(&|s| matches!(s.status, RunStatus::Running | RunStatus::Blocked)))
        .or_else(|| {
            steps
                .iter()
                .rev()
                .copied()
                .find(|s| !matches!(s.status, RunStatus::Pending | RunStatus::Skipped))
        })
        .or_else(|| steps.first().copied())
}

fn step_view(step: &Step) -> StepView {
    let mut detail = format_duration(step.started_at, step.finished_at);
    if let Some(code) = step.exit_code {
        detail.push_str(&format!(" · exit code {code}"));
    }
    // The runner's error often only repeats the exit code.
    if let Some(error) = step.error.as_ref().filter(|e| !e.starts_with("exit code")) {
        detail.push_str(&format!(" · {error}"));
    }
    if let Some(approval) = &step.approval {
        detail.push_str(&format!(
            " · {} by {}",
            approval.decision.as_str(),
            approval.by
        ));
    }
    StepView {
        name: step.name.clone(),
        status: step.status.as_str(),
        detail: detail.trim_start_matches(" · ").to_string(),
    }
}

/// The approval step waiting for a decision: the selected one, else the first.
fn waiting_approval(detail: &BuildDetail, selected: Option<&Step>) -> Option<String> {
    let waiting = |s: &Step| s.kind == "approval" && s.status == RunStatus::Blocked;
    selected
        .filter(|s| waiting(s))
        .or_else(|| {
            detail
                .workflows
                .iter()
                .flat_map(|w| &w.steps)
                .find(|s| waiting(s))
        })
        .map(|s| s.name.clone())
}

/// The build's compile diagnostics, each with the source line it points at when the
/// commit is still in the git cache.
async fn diagnostics(state: &AppState, repo: &Repo, detail: &BuildDetail) -> Vec<DiagnosticView> {
    let Some(text) = &detail.build.diagnostics else {
        return Vec::new();
    };
    let items: Vec<Value> = serde_json::from_str(text).unwrap_or_default();
    let mut sources: Vec<(String, Option<String>)> = Vec::new();
    let mut views = Vec::new();
    for item in &items {
        let field = |name: &str| item[name].as_str().unwrap_or_default().to_string();
        let file = field("file");
        if !sources.iter().any(|(f, _)| *f == file) {
            let text = source_file(state, repo, &detail.build.sha, &file).await;
            sources.push((file.clone(), text));
        }
        let line = item["line"].as_u64().unwrap_or(0);
        let column = item["column"].as_u64().unwrap_or(0);
        let source = sources
            .iter()
            .find(|(f, _)| *f == file)
            .and_then(|(_, text)| text.as_deref())
            .and_then(|text| text.lines().nth((line as usize).checked_sub(1)?))
            .unwrap_or_default()
            .to_string();
        let caret = caret_under(&source, column);
        views.push(DiagnosticView {
            severity: field("severity"),
            code: field("code"),
            message: field("message"),
            file,
            line,
            column,
            source,
            caret,
            help: field("help"),
        });
    }
    views
}

/// Spaces (tabs kept) up to the 1-based `column`, then `^`; empty without a column.
fn caret_under(source: &str, column: u64) -> String {
    if column == 0 || source.is_empty() {
        return String::new();
    }
    let mut caret: String = source
        .chars()
        .take(column as usize - 1)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    caret.push('^');
    caret
}

/// The pipeline file at the build's commit when the git cache already holds the commit
/// (it does while the build's preparation is recent); the page never waits on a fetch.
async fn source_file(state: &AppState, repo: &Repo, sha: &str, file: &str) -> Option<String> {
    if file.is_empty() || sha.is_empty() {
        return None;
    }
    let checkout = state
        .git
        .cached_commit(&repo.clone_url, sha)
        .await
        .ok()
        .flatten()?;
    checkout.read_file(file).await.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::caret_under;

    #[test]
    fn the_caret_sits_under_the_column() {
        assert_eq!(caret_under("  image: x", 3), "  ^");
        assert_eq!(caret_under("\timage", 2), "\t^");
        assert_eq!(caret_under("x", 0), "");
    }
}
