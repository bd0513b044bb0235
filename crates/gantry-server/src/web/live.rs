//! The pages' websockets: the API's event and log streams, opened with the session
//! cookie instead of a bearer header (browsers cannot set one on a websocket). A socket
//! opened from another site's page is refused: cookies would go with it. Both sockets
//! close once the session ends (sign-out, expiry, or its token revoked).

use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::call_api;
use super::csrf::check_origin;
use super::log_view::StepPath;
use super::session::{Sessions, WebUser, principal_of_token};
use super::view::{WebError, WebResult};
use crate::live::{AfterQuery, Recheck};
use crate::state::AppState;

/// `GET /ui/events`: build and step status changes the user may see.
pub async fn events(
    State(state): State<AppState>,
    Extension(sessions): Extension<Sessions>,
    user: WebUser,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> WebResult<Response> {
    check_origin(&headers, &state.config.public_url)?;
    let recheck = session_recheck(&state, sessions, &user);
    call_api(crate::live::open_events(
        state,
        user.principal,
        recheck,
        upgrade,
    ))
}

/// Finds the principal of the user's session again: `None` once it has ended.
fn session_recheck(state: &AppState, sessions: Sessions, user: &WebUser) -> Recheck {
    let (state, session_id) = (state.clone(), user.session_id.clone());
    std::sync::Arc::new(move || {
        let (state, sessions, id) = (state.clone(), sessions.clone(), session_id.clone());
        Box::pin(async move {
            let token = sessions.token_of(&id)?;
            principal_of_token(&state, &token).await
        })
    })
}

/// `GET .../steps/{step}/stream?after=N`: the step's lines after N, then live ones.
pub async fn step_stream(
    State(state): State<AppState>,
    Extension(sessions): Extension<Sessions>,
    user: WebUser,
    headers: HeaderMap,
    Path(path): Path<StepPath>,
    query: Result<Query<AfterQuery>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> WebResult<Response> {
    check_origin(&headers, &state.config.public_url)?;
    let query = query.map_err(|e| WebError::bad_request(e.body_text()))?;
    let recheck = session_recheck(&state, sessions, &user);
    let path = path.api()?;
    call_api(
        crate::live::open_step_logs(state, user.principal, recheck, path, Ok(query), upgrade).await,
    )
}
