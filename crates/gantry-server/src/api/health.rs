//! Liveness, readiness, and the answer for unknown routes.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// `GET /healthz`: the process answers.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: the database answers too.
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    if state.store.ping().await {
        let database = match state.store.kind() {
            gantry_store::DatabaseKind::Sqlite => "sqlite",
            gantry_store::DatabaseKind::Postgres => "postgres",
        };
        Ok(Json(json!({"status": "ready", "database": database})))
    } else {
        Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the database does not answer; check the database URL and that it is running",
        ))
    }
}

/// Any route that does not exist.
pub async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route {}; see docs/api.md", uri.path()))
}
