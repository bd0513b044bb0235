//! The runner side of Gantry's runner protocol (docs/runner-protocol.md), for any
//! transport.
//!
//! An agent says hello, runs the assignments the server hands it with the same
//! [`Runtime`](gantry_runner::Runtime) as `gantry exec`, masks secrets before a line
//! leaves it, numbers every message about an assignment and keeps it until the server
//! acknowledges it; after a lost connection it reconnects with growing pauses, resumes
//! its assignments and sends again what was not acknowledged.
//!
//! The same code serves two runners:
//!
//! - `gantry runner` connects over a websocket (its own [`Transport`], with its TLS
//!   settings) to a server elsewhere;
//! - the server's built-in runner connects over an in-memory pair of channels
//!   ([`Link::channels`]), so it is one runner like the others: it says hello, is listed,
//!   claims by its labels, heartbeats under the runner lease, and hears cancels and
//!   approval decisions as messages.

mod connection;
mod job;

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::{Sink, SinkExt as _, Stream};
use gantry_runner::Backend;
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

pub use connection::serve;

/// Texts from the server: `Err` when the connection failed; the stream ends when it closed.
pub type Incoming = Pin<Box<dyn Stream<Item = Result<String, String>> + Send>>;
/// Texts to the server.
pub type Outgoing = Pin<Box<dyn Sink<String, Error = String> + Send>>;

/// One open connection to the server: protocol texts both ways.
pub struct Link {
    /// What the server says.
    pub incoming: Incoming,
    /// What this runner says.
    pub outgoing: Outgoing,
}

/// The server's end of an in-memory [`Link`]: texts from the runner, and a sender for
/// texts to it (dropping it closes the connection).
pub struct ServerEnd {
    /// What the runner says; ends when the runner closes its end.
    pub incoming: mpsc::Receiver<String>,
    /// What the server says.
    pub outgoing: mpsc::Sender<String>,
}

/// Texts each way an in-memory link holds before its sender waits.
const CHANNEL_TEXTS: usize = 64;

impl Link {
    /// An in-memory connection: the runner's link and the server's end of it.
    pub fn channels() -> (Link, ServerEnd) {
        let (to_server, from_runner) = mpsc::channel::<String>(CHANNEL_TEXTS);
        let (to_runner, mut from_server) = mpsc::channel::<String>(CHANNEL_TEXTS);
        let incoming =
            futures_util::stream::poll_fn(move |cx| from_server.poll_recv(cx).map(|t| t.map(Ok)));
        let outgoing = PollSender::new(to_server)
            .sink_map_err(|_| "the server closed the connection".to_string());
        let link = Link {
            incoming: Box::pin(incoming),
            outgoing: Box::pin(outgoing),
        };
        let server = ServerEnd {
            incoming: from_runner,
            outgoing: to_runner,
        };
        (link, server)
    }
}

/// Why a connection could not be opened.
#[derive(Debug)]
pub enum ConnectError {
    /// The server refuses this runner (bad token, bad address): the runner stops.
    Refused(anyhow::Error),
    /// The server's certificate is refused: the runner stops (a person must fix it),
    /// unless it holds work whose reports it keeps trying to deliver.
    Certificate(String),
    /// The server cannot be reached now: the runner tries again.
    Unreachable(String),
}

/// How a runner reaches its server; called again for every reconnect.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Opens a connection.
    async fn connect(&self) -> Result<Link, ConnectError>;
    /// Where it connects, for messages.
    fn describe(&self) -> String;
}

/// Where a runner's notices go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notices {
    /// Standard error, prefixed `gantry runner:` (the `gantry runner` command).
    Stderr,
    /// The `tracing` log (a runner inside the server).
    Tracing,
}

/// What a runner is and how it reaches its server.
#[derive(Clone)]
pub struct RunnerSetup {
    /// How it connects.
    pub transport: Arc<dyn Transport>,
    /// A name for people.
    pub name: String,
    /// Labels it offers (with `os`, `arch`, `backend`).
    pub labels: BTreeMap<String, String>,
    /// Workflows at once.
    pub capacity: u32,
    /// `docker` or `local`.
    pub backend_name: &'static str,
    /// Where steps run.
    pub backend: Arc<dyn Backend>,
    /// The error a workflow ends with when the runner is stopped while it runs.
    pub stopped_message: String,
    /// Where notices go.
    pub notices: Notices,
}

impl RunnerSetup {
    /// Says something about the runner's work.
    fn say(&self, text: std::fmt::Arguments<'_>) {
        match self.notices {
            Notices::Stderr => eprintln!("gantry runner: {text}"),
            Notices::Tracing => tracing::info!(runner.name = %self.name, "{text}"),
        }
    }
}
