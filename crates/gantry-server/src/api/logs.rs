//! `GET .../steps/{step}/logs`: a step's stored log as plain text, or with `?after=N` as
//! JSON lines (one `{"number","stream","text","elapsed_ms"}` per line) after line N.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use gantry_store::{LogLine, MAX_LOG_PAGE};
use serde::Deserialize;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::live::lookup::{StepPath, find_step, step_path};
use crate::state::AppState;

/// Query of the log route.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct LogQuery {
    /// JSON lines numbered above this.
    pub after: Option<i64>,
    /// At most this many lines in JSON mode (default 1,000, at most 10,000).
    pub limit: Option<u32>,
}

/// The step's log: plain text, or JSON lines with `?after=N`.
pub async fn step_logs(
    State(state): State<AppState>,
    principal: Principal,
    path: Result<Path<StepPath>, PathRejection>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let path = step_path(path)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let found = find_step(&state, &principal, &path).await?;
    match query.after {
        Some(after) => {
            let limit = query.limit.unwrap_or(0).min(MAX_LOG_PAGE);
            let lines = state
                .store
                .read_logs(found.step.id, Some(after), limit)
                .await?;
            Ok(json_lines(&lines))
        }
        None => plain_text(&state, found.step.id).await,
    }
}

fn json_lines(lines: &[LogLine]) -> Response {
    let mut body = String::new();
    for line in lines {
        body.push_str(&serde_json::to_string(line).unwrap_or_default());
        body.push('\n');
    }
    ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

/// Every stored line, page by page (the store caps a step's log, so this is bounded).
async fn plain_text(state: &AppState, step_id: i64) -> ApiResult<Response> {
    let mut body = String::new();
    let mut after = None;
    loop {
        let lines = state.store.read_logs(step_id, after, MAX_LOG_PAGE).await?;
        let Some(last) = lines.last() else { break };
        after = Some(last.number);
        for line in &lines {
            body.push_str(&line.text);
            body.push('\n');
        }
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response())
}
