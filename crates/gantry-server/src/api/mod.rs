//! The HTTP API: one router for every route family.

mod health;

use axum::Router;
use axum::routing::get;

use crate::state::AppState;

/// Every route of the server, with the shared state applied.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(crate::metrics::metrics))
        .merge(crate::live::routes())
        .fallback(health::no_route)
        .with_state(state)
}
