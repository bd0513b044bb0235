//! The runner protocol: what a `gantry runner` and the server say to each other over the
//! websocket at [`CONNECT_PATH`] (docs/runner-protocol.md describes the exchange).
//!
//! Every message is one JSON text frame, `{"type": "...", ...}`. The runner speaks
//! [`RunnerMessage`]s, the server [`ServerMessage`]s. This crate holds the types, the
//! version and the codec only; it does no IO.

mod codec;
mod messages;

pub use codec::{ProtocolError, decode_runner, decode_server, encode};
pub use messages::{
    Ack, Assign, AssignmentId, Cancel, Decision, Done, Dropped, ErrorMessage, Hello, LogLine, Logs,
    Outcome, Refused, RunnerMessage, Secrets, ServerMessage, StepState, StepUpdate, Stream,
    Welcome, WorkflowInfo,
};

/// The protocol version this build speaks; both sides refuse any other.
pub const PROTOCOL_VERSION: u32 = 1;

/// The websocket route a runner connects to (with `Authorization: Bearer <runner token>`).
pub const CONNECT_PATH: &str = "/api/runners/connect";

/// The lease a server gives when it is not configured otherwise, in milliseconds: a
/// runner that sends no heartbeat for this long loses its work to the queue.
pub const DEFAULT_LEASE_MS: u64 = 10_000;

/// Most text bytes a runner puts in one [`Logs`] message (one line more at most).
pub const MAX_LOG_BATCH_BYTES: usize = 64 * 1024;

/// Longest a runner holds a log line before it sends it, in milliseconds.
pub const MAX_LOG_BATCH_DELAY_MS: u64 = 1_000;

/// The labels every runner offers: `os`, `arch` (Docker's names: `amd64`, `arm64`) and
/// `backend`; a pipeline's `labels:` must be a subset of a runner's labels.
pub fn host_labels(backend: &str) -> std::collections::BTreeMap<String, String> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    [
        ("os", std::env::consts::OS),
        ("arch", arch),
        ("backend", backend),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Largest frame either side accepts: a full log batch with its JSON overhead, or a plan.
pub const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;
