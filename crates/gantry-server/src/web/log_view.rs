//! A step's log on the build page: the first lines rendered on the server (escaped by the
//! template, ANSI colours as classes), the rest fetched in pages by `log.js`, which then
//! follows the live stream. Also the raw download and the JSON lines the script reads.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use gantry_store::{RunStatus, Step};
use serde::Deserialize;

use super::ansi::{Segment, segments};
use super::call_api;
use super::first_error::FirstErrors;
use super::session::WebUser;
use super::view::{WebError, WebResult};
use crate::live::LogQuery;
use crate::live::lookup::StepPath as ApiStepPath;
use crate::state::AppState;

/// Lines rendered into the page itself; the script fetches the rest.
pub const FIRST_LINES: u32 = 1_000;

/// `/{owner}/{name}/builds/{number}/steps/{step}` in a page route.
#[derive(Debug, Clone, Deserialize)]
pub struct StepPath {
    /// Owner.
    pub owner: String,
    /// Name.
    pub name: String,
    /// Build number, as written in the URL.
    pub number: String,
    /// Step name.
    pub step: String,
}

impl StepPath {
    /// The build page's URL.
    pub fn build_url(&self) -> String {
        format!("/{}/{}/builds/{}", self.owner, self.name, self.number)
    }

    /// The same path as the log routes of the API take it (a bad number is a 404).
    pub fn api(&self) -> WebResult<ApiStepPath> {
        let number = self
            .number
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| WebError::not_found("builds are numbered 1, 2, 3..."))?;
        Ok(ApiStepPath {
            owner: self.owner.clone(),
            name: self.name.clone(),
            number,
            step: self.step.clone(),
        })
    }
}

/// A rendered log line.
#[derive(Debug, Clone)]
pub struct LineView {
    /// 1-based line number.
    pub number: i64,
    /// Styled text.
    pub segments: Vec<Segment>,
}

/// The log part of a build page.
#[derive(Debug, Clone, Default)]
pub struct LogView {
    /// The first lines.
    pub lines: Vec<LineView>,
    /// Number of the last line rendered (0 for none).
    pub last: i64,
    /// The line to land on for a failed step (0 for none).
    pub first_error: i64,
    /// `following` while the step may still write, else `done`.
    pub state: &'static str,
}

/// The first lines of a step's log, and for a failed step the line to land on.
pub async fn first_lines(
    state: &AppState,
    first_errors: &FirstErrors,
    step: &Step,
) -> WebResult<LogView> {
    let stored = state.store.read_logs(step.id, None, FIRST_LINES).await?;
    let lines: Vec<LineView> = stored
        .iter()
        .map(|line| LineView {
            number: line.number,
            segments: segments(&line.text),
        })
        .collect();
    let failed = matches!(step.status, RunStatus::Failure | RunStatus::Error);
    let first_error = if failed {
        first_errors.find(state, step.id, &stored).await?
    } else {
        0
    };
    Ok(LogView {
        last: lines.last().map_or(0, |l| l.number),
        lines,
        first_error,
        state: if step.status.is_terminal() {
            "done"
        } else {
            "following"
        },
    })
}

/// `GET .../steps/{step}/log`: the whole log as plain text (the `#log-raw` link).
pub async fn raw(
    State(state): State<AppState>,
    user: WebUser,
    Path(path): Path<StepPath>,
) -> WebResult<Response> {
    let api_path = path.api()?;
    let mut response = call_api(
        crate::live::step_logs(
            State(state),
            user.principal,
            Ok(Path(api_path)),
            Ok(Query(LogQuery::default())),
        )
        .await,
    )?;
    let file: String = format!(
        "{}-{}-{}-{}.log",
        path.owner, path.name, path.number, path.step
    )
    .chars()
    .map(|c| {
        if c.is_ascii_alphanumeric() || "-_.".contains(c) {
            c
        } else {
            '_'
        }
    })
    .collect();
    if let Ok(value) = HeaderValue::from_str(&format!("inline; filename=\"{file}\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// `GET .../steps/{step}/lines?after=N&limit=M`: JSON lines after N (what `log.js` pages
/// through before it follows the live stream).
pub async fn lines(
    State(state): State<AppState>,
    user: WebUser,
    Path(path): Path<StepPath>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> WebResult<Response> {
    let Query(query) = query.map_err(|e| WebError::bad_request(e.body_text()))?;
    let query = LogQuery {
        after: Some(query.after.unwrap_or(0)),
        limit: query.limit,
    };
    call_api(
        crate::live::step_logs(
            State(state),
            user.principal,
            Ok(Path(path.api()?)),
            Ok(Query(query)),
        )
        .await,
    )
}
