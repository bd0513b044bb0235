//! What every handler and background task shares.

use std::sync::Arc;

use gantry_forge::GitCache;
use gantry_store::Store;
use tokio_util::sync::CancellationToken;

use crate::builds::ApprovalBoard;
use crate::config::ServerConfig;
use crate::metrics::Metrics;

/// The server's shared state: cheap to clone, one per server.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Arc<dyn Store>,
    /// The configuration the server started with.
    pub config: Arc<ServerConfig>,
    /// Live log and event fan-out.
    pub live: crate::live::Hub,
    /// Bare repositories that commits are fetched into.
    pub git: Arc<GitCache>,
    /// The built-in runner, for a graceful stop to wait for it.
    pub local_runner: crate::runners::local::Handle,
    /// Approval decisions, announced to the runner waiting on them.
    pub approvals: ApprovalBoard,
    /// Hook builds fetched and compiled at once: a burst of hooks queues here instead of
    /// starting a git fetch each.
    pub prepare_slots: Arc<tokio::sync::Semaphore>,
    /// Runners connected over the runner protocol.
    pub runners: crate::runners::Registry,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Cancelled when the server shuts down: background tasks stop.
    pub shutdown: CancellationToken,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.store)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
