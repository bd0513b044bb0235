//! The server's built-in runner: a `gantry-agent` (the code of `gantry runner`) inside the
//! server process, connected through an in-memory pair of channels to an ordinary
//! [`session`](super::session).
//!
//! It is one runner like the others: it says hello with its labels (`os`, `arch`,
//! `backend`) and capacity (`runner_capacity`), is listed by `GET /api/runners`, claims
//! by labels under the runner lease that its heartbeats extend, hears cancels, timeouts
//! and approval decisions as messages, and what it reports goes through the same checks
//! (security rules 4, 5 and 9) before it is stored. What differs:
//!
//! - the transport: protocol texts over channels, no socket and no token;
//! - its identity: the server's own runner id `server:<host>:<data-dir digest>`
//!   ([`backend::runner_id`]), stable across restarts, so crash recovery
//!   ([`crate::recovery`]) takes its work for dead at once after a `kill -9`;
//! - its backend: the server's (`--backend`, `docker_labels`, `sandbox_image`, the clone
//!   image), with the server's runner id as the owner of its Docker objects;
//! - a shutdown: the session stays open until the agent has stopped its work and
//!   reported it (the build ends in `error` saying the server shut down); [`drain`]
//!   waits for that.
//!
//! `--no-local-runner` turns it off.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::SinkExt as _;
use gantry_agent::{ConnectError, Link, Notices, RunnerSetup, Transport};
use gantry_runner::Backend;
use tokio_util::sync::{CancellationToken, PollSender};

use super::RunnerCredential;
use super::hello::MAX_CAPACITY;
use super::session;
use crate::config::BackendChoice;
use crate::run::backend;
use crate::state::AppState;

/// How long to wait before trying an unreachable backend again.
const BACKEND_RETRY: Duration = Duration::from_secs(5);
/// The first pause before the built-in runner starts again after it stopped on its own;
/// it doubles up to [`MAX_RESTART`].
const FIRST_RESTART: Duration = Duration::from_secs(1);
const MAX_RESTART: Duration = Duration::from_secs(60);

/// Whether the built-in runner runs, and when it stopped.
#[derive(Debug, Clone, Default)]
pub struct Handle {
    started: Arc<AtomicBool>,
    stopped: CancellationToken,
}

/// After `state.shutdown` was cancelled: waits (at most `limit`) until the built-in
/// runner has stopped its work and the server recorded how it ended, so a graceful stop
/// leaves no build `running`.
pub async fn drain(state: &AppState, limit: Duration) {
    let handle = &state.local_runner;
    if handle.started.load(Ordering::SeqCst) {
        let _ = tokio::time::timeout(limit, handle.stopped.cancelled()).await;
    }
}

/// Starts the built-in runner in the background (once its backend answers).
pub fn spawn(state: AppState) {
    state.local_runner.started.store(true, Ordering::SeqCst);
    tokio::spawn(async move {
        let stopped = state.local_runner.stopped.clone();
        let _stopped = stopped.drop_guard();
        let Some(backend) = open_backend(&state).await else {
            return;
        };
        let runner_id = backend::runner_id(&state.config.data_dir);
        let labels = backend::runner_labels(&state.config);
        tracing::info!(runner.id = %runner_id, runner.labels = ?labels, "built-in runner started");
        let setup = RunnerSetup {
            transport: Arc::new(InMemory {
                state: state.clone(),
                credential: RunnerCredential::built_in(runner_id),
            }),
            name: "built-in".into(),
            labels,
            // `ServerConfig::check` kept it within 1..=MAX_CAPACITY.
            capacity: u32::try_from(state.config.runner_capacity)
                .unwrap_or(MAX_CAPACITY)
                .clamp(1, MAX_CAPACITY),
            backend_name: match state.config.backend {
                BackendChoice::Docker => "docker",
                BackendChoice::Local => "local",
            },
            backend,
            stopped_message: "the server shut down while the build ran; restart the build".into(),
            notices: Notices::Tracing,
        };
        supervise(&state, setup).await;
    });
}

/// Runs the agent until the server shuts down, starting it again (after a growing pause)
/// whenever it stops on its own: a fatal error or a panic must not leave builds queued
/// for good.
async fn supervise(state: &AppState, setup: RunnerSetup) {
    let mut pause = FIRST_RESTART;
    loop {
        let run = tokio::spawn(gantry_agent::serve(setup.clone(), state.shutdown.clone()));
        let why = match run.await {
            Ok(Ok(())) => return,
            Ok(Err(error)) => format!("{error:#}"),
            Err(error) => format!("it panicked: {error}"),
        };
        if state.shutdown.is_cancelled() {
            tracing::error!(error = %why, "the built-in runner stopped");
            return;
        }
        tracing::error!(error = %why, restart_in_ms = pause.as_millis(), "the built-in runner stopped; builds for it stay queued until it starts again");
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = state.shutdown.cancelled() => return,
        }
        pause = (pause * 2).min(MAX_RESTART);
    }
}

/// Opens the backend, retrying while it is unreachable (a Docker engine that starts
/// after the server); None when the server shuts down first.
async fn open_backend(state: &AppState) -> Option<Arc<dyn Backend>> {
    let mut failures = 0u32;
    loop {
        match backend::open(&state.config).await {
            Ok(backend) => return Some(backend),
            Err(error) => {
                // Said loudly once, then quietly: the retry goes on.
                let error = format!("{error:#}");
                if failures == 0 {
                    tracing::error!(error = %error, "the built-in runner cannot start yet; builds stay queued, retrying every 5 s");
                } else {
                    tracing::debug!(error = %error, "the built-in runner still cannot start");
                }
                failures += 1;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(BACKEND_RETRY) => {}
            () = state.shutdown.cancelled() => return None,
        }
    }
}

/// Connects the agent to a new session of this server.
struct InMemory {
    state: AppState,
    credential: RunnerCredential,
}

#[async_trait]
impl Transport for InMemory {
    async fn connect(&self) -> Result<Link, ConnectError> {
        let (link, mut server_end) = Link::channels();
        let incoming = futures_util::stream::poll_fn(move |cx| server_end.incoming.poll_recv(cx));
        let outgoing = PollSender::new(server_end.outgoing).sink_map_err(|_| ());
        tokio::spawn(session::run(
            self.state.clone(),
            self.credential.clone(),
            Box::pin(incoming),
            Box::pin(outgoing),
        ));
        Ok(link)
    }

    fn describe(&self) -> String {
        "this server (in memory)".into()
    }
}
