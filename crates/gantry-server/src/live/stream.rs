//! `GET .../steps/{step}/logs/stream?after=N`: stored lines after N, then live ones, with
//! no gap and no duplicate, until the step ends.
//!
//! Order matters: subscribe to the hub, then read the store, then take live lines only
//! when numbered past the last line sent. A line stored before the subscription is in
//! the store read; one stored after it is also published after it, so it arrives live.
//!
//! Like the event socket, a stream re-checks its credential every `credential_recheck()`
//! and closes with code 1008 once the token is revoked, the page's session has ended, or
//! the caller may no longer read the repository.

use std::time::Duration;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use gantry_store::{LogLine, MAX_LOG_PAGE};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use super::events_api::{Recheck, close_signed_out, recheck_interval, token_recheck};
use super::hub::StepFeed;
use super::lookup::{FoundStep, StepPath, find_step, step_path, step_status};
use crate::auth::{Principal, can_read};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// How often a follower re-reads the step's status, in case its end was missed (the
/// runner that ran it died, or recovery ended it).
const STATUS_RECHECK: Duration = Duration::from_secs(2);

/// `?after=N`: only lines numbered above N.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct AfterQuery {
    /// Last line number the client already has.
    pub after: Option<i64>,
}

/// The last frame of a stream: the step ended with this status.
#[derive(Debug, Serialize)]
struct EndFrame<'a> {
    end: bool,
    status: &'a str,
}

/// Opens the websocket for a caller with a bearer token, after checking that it may
/// read the step.
pub async fn follow_step_logs(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    path: Result<Path<StepPath>, PathRejection>,
    query: Result<Query<AfterQuery>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let recheck = token_recheck(&state, &headers);
    let path = step_path(path)?;
    open_step_logs(state, principal, recheck, path, query, upgrade).await
}

/// Opens the log stream of `path` for `principal`, whose credential `recheck` finds
/// again while the stream is open.
pub async fn open_step_logs(
    state: AppState,
    principal: Principal,
    recheck: Recheck,
    path: StepPath,
    query: Result<Query<AfterQuery>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let found = find_step(&state, &principal, &path).await?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let upgrade = upgrade.map_err(|_| {
        ApiError::bad_request("open this route as a websocket (`Upgrade: websocket`)")
    })?;
    Ok(upgrade.on_upgrade(move |socket| async move {
        let step_id = found.step.id;
        if let Err(error) = stream_step(&state, found, recheck, query.after, socket).await {
            tracing::debug!(step.id = step_id, error = %error, "log stream ended early");
        }
        state.live.release_step(step_id);
    }))
}

/// Why a stream stopped before the step ended.
#[derive(Debug, thiserror::Error)]
enum StreamStop {
    #[error("the client went away")]
    ClientGone,
    #[error("the caller's credential is gone or no longer reads the repository")]
    SignedOut,
    #[error("{0}")]
    Api(#[from] ApiError),
}

/// Sends lines to one follower until the step ends or the client leaves.
async fn stream_step(
    state: &AppState,
    found: FoundStep,
    recheck: Recheck,
    after: Option<i64>,
    mut socket: WebSocket,
) -> Result<(), StreamStop> {
    let step_id = found.step.id;
    let mut credential = recheck_interval();
    let mut feed = state.live.subscribe_step(step_id);
    let mut last = after.unwrap_or(i64::MIN);
    catch_up(state, step_id, &mut last, &mut socket).await?;
    let mut status_check = tokio::time::interval(STATUS_RECHECK);
    loop {
        tokio::select! {
            message = feed.recv() => match message {
                Ok(StepFeed::Lines(lines)) => {
                    if lines.first().is_some_and(|l| l.number > last.saturating_add(1)) {
                        // Something between is missing (published before we read): refill.
                        catch_up(state, step_id, &mut last, &mut socket).await?;
                    }
                    send_lines(&lines, &mut last, &mut socket).await?;
                }
                Ok(StepFeed::Ended) | Err(RecvError::Closed) => {
                    return finish(state, &found, &mut last, &mut socket).await;
                }
                Err(RecvError::Lagged(_)) => catch_up(state, step_id, &mut last, &mut socket).await?,
            },
            _ = status_check.tick() => {
                catch_up(state, step_id, &mut last, &mut socket).await?;
                let step = step_status(state, found.build.build.id, step_id).await?;
                if step.is_none_or(|s| s.status.is_terminal()) {
                    return finish(state, &found, &mut last, &mut socket).await;
                }
            }
            _ = credential.tick() => {
                if !still_readable(state, &recheck, found.repo.id).await {
                    close_signed_out(socket).await;
                    return Err(StreamStop::SignedOut);
                }
            }
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Err(StreamStop::ClientGone),
                Some(Ok(_)) => {}
            },
            () = state.shutdown.cancelled() => {
                let _ = socket.send(Message::Close(None)).await;
                return Ok(());
            }
        }
    }
}

/// Whether the caller's credential still exists and still reads repository `repo_id`
/// (a store error keeps the stream: the next period checks again).
async fn still_readable(state: &AppState, recheck: &Recheck, repo_id: i64) -> bool {
    let Some(principal) = recheck().await else {
        return false;
    };
    match state.store.repo_by_id(repo_id).await {
        Ok(Some(repo)) => can_read(&principal, &repo),
        Ok(None) => false,
        Err(error) => {
            tracing::warn!(repo.id = repo_id, error = %error, "cannot re-check log stream access");
            true
        }
    }
}

/// Sends every stored line numbered after `last`.
async fn catch_up(
    state: &AppState,
    step_id: i64,
    last: &mut i64,
    socket: &mut WebSocket,
) -> Result<(), StreamStop> {
    loop {
        let after = (*last != i64::MIN).then_some(*last);
        let lines = state
            .store
            .read_logs(step_id, after, MAX_LOG_PAGE)
            .await
            .map_err(ApiError::from)?;
        if lines.is_empty() {
            return Ok(());
        }
        send_lines(&lines, last, socket).await?;
    }
}

/// Sends the lines numbered after `last`, one JSON text frame each.
async fn send_lines(
    lines: &[LogLine],
    last: &mut i64,
    socket: &mut WebSocket,
) -> Result<(), StreamStop> {
    for line in lines {
        if line.number <= *last {
            continue;
        }
        let frame = serde_json::to_string(line).unwrap_or_default();
        socket
            .send(Message::Text(frame.into()))
            .await
            .map_err(|_| StreamStop::ClientGone)?;
        *last = line.number;
    }
    Ok(())
}

/// Sends what the store still holds, then the end frame, then closes.
async fn finish(
    state: &AppState,
    found: &FoundStep,
    last: &mut i64,
    socket: &mut WebSocket,
) -> Result<(), StreamStop> {
    catch_up(state, found.step.id, last, socket).await?;
    let status = step_status(state, found.build.build.id, found.step.id)
        .await?
        .map(|s| s.status.as_str())
        .unwrap_or("unknown");
    let frame = serde_json::to_string(&EndFrame { end: true, status }).unwrap_or_default();
    let _ = socket.send(Message::Text(frame.into())).await;
    let _ = socket.send(Message::Close(None)).await;
    Ok(())
}
