//! Gantry's server: receives webhooks, turns them into builds, runs them, and serves the
//! HTTP API and live logs.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let server = gantry_server::launch(listener, gantry_server::ServerConfig::new("/var/lib/gantry")).await?;
//! println!("listening on {}", server.addr());
//! server.shutdown().await;
//! # Ok(()) }
//! ```

pub mod api;
pub mod auth;
pub mod builds;
pub mod config;
pub mod error;
pub mod hooks;
pub mod live;
pub mod metrics;
pub mod recovery;
pub mod run;
pub mod runners;
pub mod state;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use gantry_forge::GitCache;
use gantry_store::{SecretKey, StoreOptions};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{BackendChoice, ServerConfig};
pub use error::{ApiError, ApiResult};
pub use state::AppState;

/// A running server.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    admin_token: Option<String>,
    state: AppState,
    serve: JoinHandle<()>,
}

impl Server {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin token, when it was given in the config or generated at this start.
    pub fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    /// The shared state (for tests and the embedding binary).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops accepting requests, stops background tasks (the built-in runner stops its
    /// running work and reports it, for at most 20 s) and closes the database.
    pub async fn shutdown(self) {
        self.state.shutdown.cancel();
        let _ = self.serve.await;
        runners::local::drain(&self.state, std::time::Duration::from_secs(20)).await;
        self.state.store.close().await;
    }

    /// Waits until the server stops (after `shutdown` from elsewhere, or a fatal error).
    pub async fn wait(self) {
        let _ = self.serve.await;
    }
}

/// Opens the store, recovers interrupted work, starts the runner and serves on `listener`.
pub async fn launch(
    listener: tokio::net::TcpListener,
    config: ServerConfig,
) -> anyhow::Result<Server> {
    config.check()?;
    let addr = listener
        .local_addr()
        .context("reading the listener's address")?;
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "creating the data directory {}; check it is writable",
            config.data_dir.display()
        )
    })?;
    let mut options = StoreOptions::new(SecretKey::load(&config.data_dir)?);
    options.log_cap = config.log_cap;
    let store = gantry_store::connect(&config.database_url(), options).await?;
    let git = GitCache::new(config.data_dir.join("git"))?;
    let state = AppState {
        store,
        config: Arc::new(config),
        live: live::Hub::new(),
        git: Arc::new(git),
        local_runner: runners::local::Handle::default(),
        approvals: builds::ApprovalBoard::default(),
        prepare_slots: Arc::new(tokio::sync::Semaphore::new(builds::PREPARE_SLOTS)),
        runners: runners::Registry::default(),
        metrics: Arc::default(),
        shutdown: CancellationToken::new(),
    };
    let admin_token = match auth::bootstrap_admin(&state).await? {
        Some((token, generated)) => {
            if generated {
                // Printed once, on purpose, to stdout only: it is never logged (rule 10).
                println!("gantry: admin token (shown once, store it now): {token}");
            }
            Some(token)
        }
        None => None,
    };
    metrics::follow(state.clone());
    live::link_replicas(&state)
        .await
        .context("listening for the other replicas' notifications")?;
    recovery::recover(&state).await?;
    runners::spawn_lease_keeper(state.clone());
    runners::spawn_presence_keeper(state.clone());
    if !state.config.no_local_runner {
        runners::local::spawn(state.clone());
    }
    let app = api::router(state.clone());
    let stop = state.shutdown.clone();
    let serve = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(error) = result {
            tracing::error!(error = %error, "the HTTP server stopped");
        }
    });
    tracing::info!(server.addr = %addr, "gantry server listening");
    Ok(Server {
        addr,
        admin_token,
        state,
        serve,
    })
}
