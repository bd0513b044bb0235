//! Live log and event fan-out (shared between replicas on one Postgres), and the
//! websocket routes that follow it.

mod hub;
pub mod lookup;
mod replicas;
mod stream;

// The log and event handlers live under `api/` with the other routes' files but are
// wired here, so the live routes stay one unit that the router merges.
#[path = "../api/events.rs"]
mod events_api;
#[path = "../api/logs.rs"]
mod logs_api;

use axum::Router;
use axum::routing::get;

// The web pages open the same streams with a session instead of a bearer header.
pub use events_api::{
    Recheck, credential_recheck, follow_events, open_events, set_credential_recheck,
};
pub use hub::{EventKind, Hub, LiveEvent, StepFeed};
pub use logs_api::{LogQuery, step_logs};
pub use replicas::link_replicas;
pub use stream::{AfterQuery, follow_step_logs, open_step_logs};

use crate::state::AppState;

/// The live routes (`/api/events`, a step's logs and their stream), merged into the
/// server's router.
pub fn routes() -> Router<AppState> {
    let step = "/api/repos/{owner}/{name}/builds/{number}/steps/{step}";
    Router::new()
        .route("/api/events", get(events_api::follow_events))
        .route(&format!("{step}/logs"), get(logs_api::step_logs))
        .route(
            &format!("{step}/logs/stream"),
            get(stream::follow_step_logs),
        )
}
