//! The HTTP API: one router for every route family.

pub(crate) mod builds;
mod health;
pub(crate) mod repos;
pub(crate) mod secrets;
mod tokens;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};

use crate::state::AppState;

/// Every route of the server, with the shared state applied.
pub fn router(state: AppState) -> Router {
    let repo = "/api/repos/{owner}/{name}";
    let build = "/api/repos/{owner}/{name}/builds/{number}";
    let api = Router::new()
        .route("/api/repos", get(repos::list).post(repos::create))
        .route(
            repo,
            get(repos::get).patch(repos::update).delete(repos::delete),
        )
        .route(
            &format!("{repo}/webhook-secret"),
            post(repos::rotate_webhook_secret),
        )
        .route(
            &format!("{repo}/builds"),
            get(builds::list).post(builds::trigger),
        )
        .route(build, get(builds::get))
        .route(&format!("{build}/cancel"), post(builds::cancel))
        .route(&format!("{build}/restart"), post(builds::restart))
        .route(&format!("{build}/promote"), post(builds::promote))
        .route(
            &format!("{build}/steps/{{step}}/approve"),
            post(builds::approve),
        )
        .route(
            &format!("{build}/steps/{{step}}/reject"),
            post(builds::reject),
        )
        .route(&format!("{repo}/secrets"), get(secrets::list))
        .route(
            &format!("{repo}/secrets/{{secret}}"),
            put(secrets::set).delete(secrets::delete),
        )
        .route("/api/tokens", get(tokens::list).post(tokens::create))
        .route("/api/tokens/{id}", axum::routing::delete(tokens::revoke))
        .layer(DefaultBodyLimit::max(state.config.api_body_limit));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(crate::metrics::metrics))
        // The hook handler reads its body itself, capped at HOOK_BODY_LIMIT.
        .route("/hooks/{forge}", post(crate::hooks::receive))
        .merge(api)
        .merge(crate::live::routes())
        .merge(crate::runners::routes())
        .merge(crate::web::routes())
        .fallback(health::no_route)
        .with_state(state)
}
