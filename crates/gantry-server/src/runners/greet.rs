//! The start of a runner connection: the hello is read and checked, the assignments the
//! runner still holds are resumed, and it is welcomed (or refused, and the socket closed).

use std::time::Duration;

use futures_util::StreamExt as _;
use gantry_proto::{
    PROTOCOL_VERSION, Refused, RunnerMessage, ServerMessage, Welcome, decode_runner,
};
use tokio::sync::mpsc;

use super::session::{Incoming, Session};
use super::{LEASE_MS, RunnerCredential, hello};
use crate::state::AppState;

/// How long a runner has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads and checks the hello, resumes what the runner still holds, and welcomes it.
pub(super) async fn greet(
    state: &AppState,
    credential: &RunnerCredential,
    stream: &mut Incoming,
    out: &mpsc::Sender<ServerMessage>,
) -> Option<Session> {
    let refuse = |reason: String| async move {
        let refused = Refused {
            reason,
            server_version: PROTOCOL_VERSION,
        };
        let _ = out.send(ServerMessage::Refused(refused)).await;
    };
    let first = tokio::time::timeout(HELLO_TIMEOUT, next_text(stream)).await;
    let Ok(Some(text)) = first else {
        refuse("no hello within 10 s; a runner says hello first".into()).await;
        return None;
    };
    let hello = match decode_runner(&text) {
        Ok(RunnerMessage::Hello(hello)) => hello,
        Ok(_) => {
            refuse("the first message must be a hello".into()).await;
            return None;
        }
        Err(error) => {
            refuse(error.to_string()).await;
            return None;
        }
    };
    let runner = match hello::check(&hello, &credential.scope) {
        Ok(runner) => runner,
        Err(reason) => {
            refuse(reason).await;
            return None;
        }
    };
    let mut session = Session::new(state.clone(), credential.clone(), runner, out.clone());
    let (resumed, dropped) = match session.resume(&hello.resume).await {
        Ok(taken) => taken,
        Err(error) => {
            // Closed without a welcome: the runner keeps its work and connects again.
            tracing::warn!(runner.id = %credential.runner_id, error = %error, "a runner's resume failed; closing its connection so that it connects again");
            return None;
        }
    };
    let welcome = Welcome {
        version: PROTOCOL_VERSION,
        runner_id: credential.runner_id.clone(),
        lease_ms: LEASE_MS.unsigned_abs(),
        heartbeat_ms: (LEASE_MS / 3).unsigned_abs(),
        resumed,
        dropped,
    };
    out.send(ServerMessage::Welcome(welcome)).await.ok()?;
    Some(session)
}

/// The next text; None when the connection closed.
pub(super) async fn next_text(stream: &mut Incoming) -> Option<String> {
    stream.next().await
}
