//! Remote runners: the `/api/runners/connect` websocket (docs/runner-protocol.md).
//!
//! A runner authenticates with a runner token; its id is `runner:<token id>`, never a
//! name it sends (security rule 4). Each connection is a [`session`]: it claims work for
//! the runner with the store's `claim_next`, sends `Assign`, checks and stores every
//! update through the run writer, extends leases on heartbeats, forwards cancels and
//! decisions, and acknowledges what it stored.
//!
//! A runner token may carry a scope ([`gantry_store::RunnerScope`]): its labels are
//! imposed on the runner (checked at hello), its repositories restrict what the runner's
//! claims may return. Which runners are connected is kept in memory per replica
//! ([`Registry`]) and written to the store's runners table every few seconds, so that
//! every replica lists them all and counts them in a pending workflow's `waiting_for`.
//!
//! The server's built-in runner ([`local`]) is one of them: a `gantry-agent` connected
//! through an in-memory pair of channels instead of a websocket, with the credential of
//! the server's own runner id (no token, no scope). Everything else (hello, labels,
//! lease, cancels, decisions, the checks of what it reports) is the same code.

mod assignment;
mod greet;
mod hello;
pub mod local;
mod registry;
mod session;

use std::time::Duration;

use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::get;
use futures_util::{SinkExt as _, StreamExt as _};
use gantry_proto::{CONNECT_PATH, MAX_FRAME_BYTES};
use gantry_store::{RunnerPresence, RunnerScope, TokenRole, now_ms};

use crate::error::ApiError;
use crate::state::AppState;

pub use assignment::forget_all_leases;
pub use hello::MAX_CAPACITY;
pub use registry::{
    ConnectedRunner, Presence, Registry, annotate_waiting, spawn_presence_keeper, waiting_for,
};

/// The lease of remote runners' work, in milliseconds (heartbeats extend it).
pub const LEASE_MS: i64 = gantry_proto::DEFAULT_LEASE_MS as i64;
/// How often expired leases are looked for while remote runners are about: lost work is
/// requeued within a lease of the runner's last heartbeat, plus this.
const REQUEUE_INTERVAL: Duration = Duration::from_secs(1);
/// How often when no remote runner was connected for a while (the write is not free).
const IDLE_REQUEUE_INTERVAL: Duration = Duration::from_secs(15);

/// The routes of the runner protocol.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(CONNECT_PATH, get(connect))
        .route("/api/runners", get(list))
}

/// `GET /api/runners` (admin): the runners connected to this replica and to every other
/// replica on the same database.
async fn list(
    State(state): State<AppState>,
    principal: crate::auth::Principal,
) -> Result<axum::Json<Vec<RunnerPresence>>, ApiError> {
    crate::auth::require_admin(&principal)?;
    Ok(axum::Json(registry::everywhere(&state).await?))
}

/// A verified runner token: who the connection is, whatever the runner later says.
#[derive(Clone)]
pub struct RunnerCredential {
    /// The id every claim and update is bound to: `runner:<token id>`.
    pub runner_id: String,
    /// The token's name.
    pub name: String,
    /// What the token restricts the runner to (the default: nothing).
    pub scope: RunnerScope,
    /// The plaintext, to check now and then that it was not revoked (None: the
    /// server's built-in runner, which has no token).
    token: Option<String>,
}

impl std::fmt::Debug for RunnerCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerCredential")
            .field("runner_id", &self.runner_id)
            .finish_non_exhaustive()
    }
}

impl RunnerCredential {
    /// The credential of the server's built-in runner: its id is the server's own runner
    /// id (`server:<host>:<data-dir digest>`), which crash recovery looks for.
    pub(crate) fn built_in(runner_id: String) -> Self {
        RunnerCredential {
            runner_id,
            name: "built-in".into(),
            scope: RunnerScope::default(),
            token: None,
        }
    }

    /// True for the server's built-in runner.
    pub fn is_built_in(&self) -> bool {
        self.token.is_none()
    }

    /// True while the token verifies (it was not revoked); the built-in runner's
    /// credential has no token and stays valid. An error: the store could not say.
    pub async fn verify(&self, state: &AppState) -> Result<bool, gantry_store::StoreError> {
        let Some(token) = &self.token else {
            return Ok(true);
        };
        Ok(state.store.verify_token(token, now_ms()).await?.is_some())
    }
}

impl FromRequestParts<AppState> for RunnerCredential {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = crate::auth::bearer_token(parts)?;
        let stored = state
            .store
            .verify_token(token, now_ms())
            .await?
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "the runner token is unknown or revoked; create one with \
                     `gantry runner-token create`",
                )
            })?;
        if stored.role != TokenRole::Runner {
            return Err(ApiError::forbidden(
                "only runner tokens open the runner protocol; create one with \
                 `gantry runner-token create`",
            ));
        }
        Ok(RunnerCredential {
            runner_id: format!("runner:{}", stored.id),
            name: stored.name,
            scope: RunnerScope {
                labels: stored.labels,
                repos: stored.repos,
            },
            token: Some(token.to_string()),
        })
    }
}

/// `GET /api/runners/connect`: a runner's websocket.
async fn connect(
    State(state): State<AppState>,
    credential: RunnerCredential,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade.map_err(|_| {
        ApiError::invalid(
            "this route speaks the runner protocol over a websocket; use `gantry runner`",
        )
    })?;
    Ok(upgrade
        .max_message_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| {
            let (sink, stream) = socket.split();
            let outgoing = sink
                .with(|text: String| std::future::ready(Ok(Message::Text(text.into()))))
                .sink_map_err(|_: axum::Error| ());
            let incoming = stream
                .take_while(|frame| {
                    std::future::ready(
                        matches!(frame, Ok(message) if !matches!(message, Message::Close(_))),
                    )
                })
                .filter_map(|frame| {
                    std::future::ready(match frame {
                        Ok(Message::Text(text)) => Some(text.to_string()),
                        _ => None, // pings, pongs; binary frames are not part of the protocol
                    })
                });
            session::run(state, credential, Box::pin(incoming), Box::pin(outgoing))
        }))
}

/// Ends the workflows of failed items; returns those the store could not end (tried
/// again on the lease keeper's next round).
async fn give_up_all(
    state: &AppState,
    items: Vec<gantry_store::QueueItem>,
) -> Vec<gantry_store::QueueItem> {
    let mut left = Vec::new();
    for item in items {
        if let Err(error) = crate::run::give_up(state, &item).await {
            tracing::error!(queue.item = item.id, workflow.id = item.workflow_id, error = %error, "ending a workflow that was given up failed; it is tried again");
            left.push(item);
        }
    }
    left
}

/// Puts the work of runners that stopped heartbeating back in the queue (or gives it up
/// after too many attempts): every second while remote runners are about, else every
/// 15 s (the first time at once, for work of runners that left before a restart).
pub fn spawn_lease_keeper(state: AppState) {
    tokio::spawn(async move {
        let mut last: Option<tokio::time::Instant> = None;
        // Items failed in the store whose workflow could not be ended yet: tried again
        // each round until the store takes it (else the workflow stays `running`).
        let mut to_give_up: Vec<gantry_store::QueueItem> = Vec::new();
        loop {
            tokio::select! {
                () = tokio::time::sleep(REQUEUE_INTERVAL) => {}
                () = state.shutdown.cancelled() => return,
            }
            to_give_up = give_up_all(&state, std::mem::take(&mut to_give_up)).await;
            let window = Duration::from_millis(2 * LEASE_MS.unsigned_abs());
            let idle = last.is_some_and(|at| at.elapsed() < IDLE_REQUEUE_INTERVAL);
            if idle && !state.runners.recently_active(window) {
                continue;
            }
            last = Some(tokio::time::Instant::now());
            match state
                .store
                .requeue_expired(now_ms(), crate::run::MAX_ATTEMPTS)
                .await
            {
                Ok(outcome) => {
                    for item in &outcome.requeued {
                        tracing::info!(
                            queue.item = item.id,
                            workflow.id = item.workflow_id,
                            "a runner's lease ended; its work is back in the queue"
                        );
                    }
                    if !outcome.requeued.is_empty() {
                        state.live.announce_work();
                    }
                    to_give_up.extend(give_up_all(&state, outcome.failed).await);
                }
                Err(error) => tracing::warn!(error = %error, "requeueing expired work failed"),
            }
        }
    });
}
