//! The runner's side of a connection (a websocket or an in-memory link): hello,
//! assignments, numbered messages kept until acknowledged, heartbeats, and reconnecting
//! with growing pauses.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use anyhow::anyhow;
use futures_util::{SinkExt as _, StreamExt as _};
use gantry_proto::{
    AssignmentId, Hello, PROTOCOL_VERSION, RunnerMessage, ServerMessage, decode_server, encode,
};
use gantry_runner::ApprovalDecision;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::job::{self, Decisions, JobEvent};
use super::{ConnectError, Link, RunnerSetup};

type Socket = Link;

/// Says something about the runner's work (to stderr or the log, per the setup).
macro_rules! notice {
    ($setup:expr, $($arg:tt)*) => { $setup.notice(format_args!($($arg)*)) };
}

/// First pause before reconnecting; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(500);
const MAX_PAUSE: Duration = Duration::from_secs(10);
/// How long the server has to answer a hello.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(10);
/// A `done` not acknowledged after this long is sent again.
const DONE_RETRY: Duration = Duration::from_secs(5);

/// An assignment this runner holds, and its messages not yet acknowledged.
struct Job {
    next_seq: u64,
    /// Lines an earlier attempt stored, by step (this attempt numbers after them).
    log_offsets: BTreeMap<String, u64>,
    unacked: VecDeque<RunnerMessage>,
    cancel: CancellationToken,
    /// When its `done` was last sent.
    done_sent: Option<Instant>,
}

/// Why a connection ended.
enum Ended {
    /// The runner was asked to stop and has reported all its work.
    Stopped,
    /// Reconnect.
    Lost(String),
    /// Stop: the server refuses this runner.
    Fatal(anyhow::Error),
}

/// The runner's state across connections.
struct Runner {
    setup: RunnerSetup,
    jobs: HashMap<AssignmentId, Job>,
    decisions: Decisions,
    events_tx: mpsc::Sender<(AssignmentId, JobEvent)>,
    events: mpsc::Receiver<(AssignmentId, JobEvent)>,
    /// Cancelled when the runner should stop.
    stop: CancellationToken,
    /// Stopping: running work was cancelled; no new work is taken.
    stopping: bool,
}

/// Connects, serves, and reconnects until the server refuses the runner.
pub async fn serve(setup: RunnerSetup, stop: CancellationToken) -> anyhow::Result<()> {
    let (events_tx, events) = mpsc::channel(256);
    let mut runner = Runner {
        setup,
        jobs: HashMap::new(),
        decisions: Decisions::default(),
        events_tx,
        events,
        stop,
        stopping: false,
    };
    let mut pause = FIRST_PAUSE;
    loop {
        let ended = match connect(&runner.setup).await {
            Ok(socket) => runner.session(socket).await,
            Err(ended) => ended,
        };
        match ended {
            Ended::Stopped => return Ok(()),
            Ended::Fatal(error) => return Err(error),
            Ended::Lost(why) => {
                notice!(
                    runner.setup,
                    "{why}; reconnecting in {} ms",
                    pause.as_millis()
                );
            }
        }
        runner.buffer_for(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

async fn connect(setup: &RunnerSetup) -> Result<Socket, Ended> {
    setup
        .transport
        .connect()
        .await
        .map_err(|error| match error {
            ConnectError::Refused(error) => Ended::Fatal(error),
            ConnectError::Unreachable(why) => Ended::Lost(why),
        })
}

impl Runner {
    /// Keeps recording the running jobs' events while disconnected, for `pause`.
    async fn buffer_for(&mut self, pause: Duration) {
        let until = Instant::now() + pause;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(until) => return,
                Some((id, event)) = self.events.recv() => { self.record(id, event); }
                () = self.stop.cancelled(), if !self.stopping => { self.begin_stop(); }
            }
        }
    }

    /// Cancels every job (their reports still go to the server); takes no new work.
    fn begin_stop(&mut self) -> Vec<RunnerMessage> {
        self.stopping = true;
        for job in self.jobs.values() {
            job.cancel.cancel();
        }
        Vec::new()
    }

    /// Numbers a job's event and keeps it until acknowledged; returns it to send.
    fn record(&mut self, id: AssignmentId, event: JobEvent) -> Option<RunnerMessage> {
        let stopping = self.stopping.then(|| self.setup.stopped_message.clone());
        let job = self.jobs.get_mut(&id)?;
        let mut message = job::message(id, job.next_seq, event, &job.log_offsets)?;
        if let (RunnerMessage::Done(done), Some(why)) = (&mut message, stopping)
            && done.outcome == gantry_proto::Outcome::Cancelled
        {
            // Not a person's cancel: the build ends in error and says why.
            done.outcome = gantry_proto::Outcome::Error;
            done.error = Some(why);
        }
        job.next_seq += 1;
        if matches!(message, RunnerMessage::Done(_)) {
            job.done_sent = Some(Instant::now());
        }
        job.unacked.push_back(message.clone());
        Some(message)
    }

    async fn session(&mut self, mut socket: Socket) -> Ended {
        let heartbeat = match self.greet(&mut socket).await {
            Ok(heartbeat) => heartbeat,
            Err(ended) => return ended,
        };
        notice!(
            self.setup,
            "connected to {} as `{}`",
            self.setup.transport.describe(),
            self.setup.name
        );
        let mut tick = tokio::time::interval(heartbeat);
        loop {
            let outgoing: Vec<RunnerMessage> = tokio::select! {
                frame = socket.incoming.next() => match frame {
                    Some(Ok(text)) => match self.on_server(&text) {
                        Ok(replies) => replies,
                        Err(ended) => return ended,
                    },
                    None => return Ended::Lost("the server closed the connection".into()),
                    Some(Err(error)) => return Ended::Lost(error),
                },
                Some((id, event)) = self.events.recv() => self.record(id, event).into_iter().collect(),
                _ = tick.tick() => self.heartbeat(),
                () = self.stop.cancelled(), if !self.stopping => self.begin_stop(),
            };
            for message in outgoing {
                if let Err(error) = socket.outgoing.send(encode(&message)).await {
                    return Ended::Lost(error);
                }
            }
            if self.stopping && self.jobs.is_empty() {
                let _ = socket.outgoing.close().await;
                return Ended::Stopped;
            }
        }
    }

    /// Says hello, reads the welcome, stops dropped jobs and sends again what the server
    /// has not acknowledged; returns the heartbeat period.
    async fn greet(&mut self, socket: &mut Socket) -> Result<Duration, Ended> {
        let hello = RunnerMessage::Hello(Hello {
            version: PROTOCOL_VERSION,
            runner_name: self.setup.name.clone(),
            labels: self.setup.labels.clone(),
            capacity: self.setup.capacity,
            backends: vec![self.setup.backend_name.to_string()],
            resume: self.jobs.keys().copied().collect(),
        });
        let lost = Ended::Lost;
        socket.outgoing.send(encode(&hello)).await.map_err(lost)?;
        let welcome = loop {
            let frame = tokio::time::timeout(WELCOME_TIMEOUT, socket.incoming.next()).await;
            let text = match frame {
                Ok(Some(Ok(text))) => text,
                Ok(Some(Err(e))) => return Err(lost(e)),
                Ok(None) | Err(_) => return Err(Ended::Lost("no welcome from the server".into())),
            };
            match decode_server(&text) {
                Ok(ServerMessage::Welcome(welcome)) => break welcome,
                Ok(ServerMessage::Refused(refused)) => {
                    return Err(Ended::Fatal(anyhow!(
                        "the server refused this runner: {}",
                        refused.reason
                    )));
                }
                Ok(_) => continue,
                Err(error) => return Err(Ended::Fatal(anyhow!("{error}"))),
            }
        };
        for dropped in &welcome.dropped {
            notice!(
                self.setup,
                "assignment {} dropped: {}",
                dropped.assignment,
                dropped.reason
            );
            if let Some(job) = self.jobs.remove(&dropped.assignment) {
                job.cancel.cancel();
            }
        }
        for id in &welcome.resumed {
            let Some(job) = self.jobs.get(id) else {
                continue;
            };
            for message in &job.unacked {
                socket.outgoing.send(encode(message)).await.map_err(lost)?;
            }
        }
        Ok(Duration::from_millis(
            welcome.heartbeat_ms.clamp(100, 60_000),
        ))
    }

    fn heartbeat(&mut self) -> Vec<RunnerMessage> {
        let mut out = vec![RunnerMessage::Heartbeat];
        for job in self.jobs.values_mut() {
            let due = job.done_sent.is_some_and(|at| at.elapsed() >= DONE_RETRY);
            if due && let Some(done) = job.unacked.back().cloned() {
                job.done_sent = Some(Instant::now());
                out.push(done);
            }
        }
        out
    }

    /// Acts on a server message; returns what to send back.
    fn on_server(&mut self, text: &str) -> Result<Vec<RunnerMessage>, Ended> {
        let message = match decode_server(text) {
            Ok(message) => message,
            Err(error) => return Ok(self.unreadable(text, &error.to_string())),
        };
        match message {
            ServerMessage::Assign(assign) if self.stopping => {
                // Not started: its lease runs out and it goes back to the queue.
                notice!(
                    self.setup,
                    "stopping; assignment {} left to another runner",
                    assign.assignment
                );
            }
            ServerMessage::Assign(assign) => {
                let id = assign.assignment;
                notice!(
                    self.setup,
                    "running {} #{} `{}` (assignment {id})",
                    assign.workflow.repo,
                    assign.workflow.build_number,
                    assign.workflow.name
                );
                let log_offsets = assign.log_offsets.clone();
                let cancel = job::spawn(
                    &self.setup,
                    *assign,
                    self.events_tx.clone(),
                    self.decisions.clone(),
                );
                let job = Job {
                    next_seq: 1,
                    log_offsets,
                    unacked: VecDeque::new(),
                    cancel,
                    done_sent: None,
                };
                self.jobs.insert(id, job);
            }
            ServerMessage::Ack(ack) => self.acknowledged(ack.assignment, ack.seq),
            ServerMessage::Cancel(cancel) => {
                if let Some(job) = self.jobs.get(&cancel.assignment) {
                    let why = cancel
                        .reason
                        .as_deref()
                        .unwrap_or("the build was cancelled");
                    notice!(
                        self.setup,
                        "stopping assignment {}: {why}",
                        cancel.assignment
                    );
                    job.cancel.cancel();
                }
            }
            ServerMessage::Decision(decision) => {
                let verdict = if decision.approved {
                    ApprovalDecision::Approved { by: decision.by }
                } else {
                    ApprovalDecision::Rejected {
                        reason: format!("rejected by {}", decision.by),
                        by: decision.by,
                    }
                };
                self.decisions
                    .decide(decision.assignment, &decision.step, verdict);
            }
            ServerMessage::Error(error) => {
                notice!(
                    self.setup,
                    "the server refused a message: {}",
                    error.message
                );
                // The server no longer lets this runner act on the assignment: stop it.
                if let Some(job) = error.assignment.and_then(|id| self.jobs.remove(&id)) {
                    job.cancel.cancel();
                }
            }
            ServerMessage::Welcome(_) | ServerMessage::Refused(_) => {}
        }
        Ok(Vec::new())
    }

    /// A server message this runner cannot read is not fatal: an assignment among them
    /// (too large, or from a newer server) is reported ended in error so that its workflow
    /// ends with the reason; anything else is skipped with a warning.
    fn unreadable(&mut self, text: &str, error: &str) -> Vec<RunnerMessage> {
        let id = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .filter(|v| v["type"] == "assign")
            .and_then(|v| v["assignment"].as_i64());
        let Some(id) = id.filter(|id| !self.jobs.contains_key(id)) else {
            notice!(
                self.setup,
                "skipped a server message it cannot read: {error}"
            );
            return Vec::new();
        };
        notice!(self.setup, "cannot read assignment {id}: {error}");
        let done = RunnerMessage::Done(gantry_proto::Done {
            assignment: id,
            seq: 1,
            outcome: gantry_proto::Outcome::Error,
            error: Some(format!("the runner could not read the assignment: {error}")),
        });
        let job = Job {
            next_seq: 2,
            log_offsets: BTreeMap::new(),
            unacked: VecDeque::from([done.clone()]),
            cancel: CancellationToken::new(),
            done_sent: Some(Instant::now()),
        };
        self.jobs.insert(id, job);
        vec![done]
    }

    /// Forgets messages up to `seq`; a job whose `done` is acknowledged is over.
    fn acknowledged(&mut self, id: AssignmentId, seq: u64) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        while job
            .unacked
            .front()
            .and_then(RunnerMessage::sequenced)
            .is_some_and(|(_, s)| s <= seq)
        {
            let message = job.unacked.pop_front();
            if matches!(message, Some(RunnerMessage::Done(_))) {
                self.jobs.remove(&id);
                return;
            }
        }
    }
}
