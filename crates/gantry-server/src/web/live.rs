//! The pages' websockets: the API's event and log streams, opened with the session
//! cookie instead of a bearer header (browsers cannot set one on a websocket). A socket
//! opened from another site's page is refused: cookies would go with it.

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::call_api;
use super::csrf::check_origin;
use super::log_view::StepPath;
use super::session::WebUser;
use super::view::{WebError, WebResult};
use crate::live::AfterQuery;
use crate::state::AppState;

/// `GET /ui/events`: build and step status changes the user may see.
pub async fn events(
    State(state): State<AppState>,
    user: WebUser,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> WebResult<Response> {
    check_origin(&headers, &state.config.public_url)?;
    call_api(crate::live::follow_events(State(state), user.principal, upgrade).await)
}

/// `GET .../steps/{step}/stream?after=N`: the step's lines after N, then live ones.
pub async fn step_stream(
    State(state): State<AppState>,
    user: WebUser,
    headers: HeaderMap,
    Path(path): Path<StepPath>,
    query: Result<Query<AfterQuery>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> WebResult<Response> {
    check_origin(&headers, &state.config.public_url)?;
    let query = query.map_err(|e| WebError::bad_request(e.body_text()))?;
    call_api(
        crate::live::follow_step_logs(
            State(state),
            user.principal,
            Ok(Path(path.api()?)),
            Ok(query),
            upgrade,
        )
        .await,
    )
}
