//! `GET /api/events`: a websocket of build and step status changes, limited to the
//! repositories the caller may read.

use std::collections::HashMap;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use tokio::sync::broadcast::error::RecvError;

use crate::auth::{Principal, can_read};
use crate::error::{ApiError, ApiResult};
use crate::live::LiveEvent;
use crate::state::AppState;

/// Opens the event websocket for an authenticated caller.
pub async fn follow_events(
    State(state): State<AppState>,
    principal: Principal,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let upgrade = upgrade.map_err(|_| {
        ApiError::bad_request("open this route as a websocket (`Upgrade: websocket`)")
    })?;
    Ok(upgrade.on_upgrade(move |socket| send_events(state, principal, socket)))
}

/// Forwards every event the caller may see until it leaves or the server stops.
async fn send_events(state: AppState, principal: Principal, mut socket: WebSocket) {
    let mut events = state.live.subscribe_events();
    // Whether the caller may read each repository seen so far.
    let mut readable: HashMap<i64, bool> = HashMap::new();
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => {
                    if !may_see(&state, &principal, &mut readable, &event).await {
                        continue;
                    }
                    let frame = serde_json::to_string(&event).unwrap_or_default();
                    if socket.send(Message::Text(frame.into())).await.is_err() {
                        return;
                    }
                }
                // A follower this slow missed events: say so rather than pretend.
                Err(RecvError::Lagged(missed)) => {
                    let frame = format!("{{\"lagged\":{missed}}}");
                    if socket.send(Message::Text(frame.into())).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
            () = state.shutdown.cancelled() => {
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
        }
    }
}

async fn may_see(
    state: &AppState,
    principal: &Principal,
    readable: &mut HashMap<i64, bool>,
    event: &LiveEvent,
) -> bool {
    if let Some(known) = readable.get(&event.repo_id) {
        return *known;
    }
    let allowed = match state.store.repo_by_id(event.repo_id).await {
        Ok(Some(repo)) => can_read(principal, &repo),
        Ok(None) => false,
        Err(error) => {
            tracing::warn!(repo.id = event.repo_id, error = %error, "cannot check event access");
            return false;
        }
    };
    readable.insert(event.repo_id, allowed);
    allowed
}
