//! The runner's side of a connection (a websocket or an in-memory link): hello,
//! assignments, numbered messages kept until acknowledged, heartbeats, and reconnecting
//! with growing pauses.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use anyhow::anyhow;
use std::future::poll_fn;

use futures_util::{SinkExt as _, StreamExt as _};
use gantry_proto::{
    Assign, AssignmentId, Hello, PROTOCOL_VERSION, RunnerMessage, ServerMessage, decode_server,
    encode,
};
use gantry_runner::ApprovalDecision;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::job::{self, Decisions, JobEvent, Tagged};
use super::{ConnectError, Link, RunnerSetup};

type Socket = Link;

/// Says something about the runner's work (to stderr or the log, per the setup).
macro_rules! say {
    ($setup:expr, $($arg:tt)*) => { $setup.say(format_args!($($arg)*)) };
}

/// First pause before reconnecting; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(500);
const MAX_PAUSE: Duration = Duration::from_secs(10);
/// How long the server has to answer a hello.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(10);
/// A `done` not acknowledged after this long is sent again.
const DONE_RETRY: Duration = Duration::from_secs(5);
/// The messages kept until acknowledged (every job's together) hold about this much at
/// most: past it, while the server is unreachable or does not acknowledge, log lines are
/// not kept (step updates and `done` always are).
const MAX_UNACKED_BYTES: usize = 64 * 1024 * 1024;

/// An assignment this runner holds, and its messages not yet acknowledged.
struct Job {
    next_seq: u64,
    /// Tells its events from those of an earlier run of the same assignment.
    generation: u64,
    /// Lines an earlier attempt stored, by step (this attempt numbers after them).
    log_offsets: BTreeMap<String, u64>,
    unacked: VecDeque<RunnerMessage>,
    cancel: CancellationToken,
    /// When its `done` was last sent.
    done_sent: Option<Instant>,
    /// The size of `unacked`, and the log lines not kept.
    spill: Spill,
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
    events_tx: mpsc::Sender<Tagged>,
    events: mpsc::Receiver<Tagged>,
    /// The last job generation given out.
    generations: u64,
    /// Assignments given again while this runner still ran them: each starts once the
    /// old job (of that generation) has stopped.
    waiting: HashMap<AssignmentId, (u64, Box<Assign>)>,
    /// A welcome came on the current connection (the reconnect pause starts over).
    welcomed: bool,
    /// Cancelled when the runner should stop.
    stop: CancellationToken,
    /// Stopping: running work was cancelled; no new work is taken.
    stopping: bool,
}

/// Connects, serves, and reconnects until the server refuses the runner.
pub async fn serve(setup: RunnerSetup, stop: CancellationToken) -> anyhow::Result<()> {
    let mut runner = Runner::new(setup, stop);
    let mut pause = FIRST_PAUSE;
    loop {
        let ended = match connect(&runner.setup, !runner.jobs.is_empty()).await {
            Ok(socket) => runner.session(socket).await,
            Err(ended) => ended,
        };
        match ended {
            Ended::Stopped => return Ok(()),
            Ended::Fatal(error) => return Err(error),
            Ended::Lost(why) => {
                if std::mem::take(&mut runner.welcomed) {
                    pause = FIRST_PAUSE;
                }
                say!(
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

/// A refused certificate stops the runner (a person must fix it), unless it still holds
/// work whose reports it keeps trying to deliver.
async fn connect(setup: &RunnerSetup, holding_work: bool) -> Result<Socket, Ended> {
    setup
        .transport
        .connect()
        .await
        .map_err(|error| match error {
            ConnectError::Refused(error) => Ended::Fatal(error),
            ConnectError::Certificate(why) if !holding_work => Ended::Fatal(anyhow!(why)),
            ConnectError::Certificate(why) | ConnectError::Unreachable(why) => Ended::Lost(why),
        })
}

impl Runner {
    /// A runner with no job yet, not connected.
    fn new(setup: RunnerSetup, stop: CancellationToken) -> Self {
        let (events_tx, events) = mpsc::channel(256);
        Runner {
            setup,
            jobs: HashMap::new(),
            decisions: Decisions::default(),
            events_tx,
            events,
            generations: 0,
            waiting: HashMap::new(),
            welcomed: false,
            stop,
            stopping: false,
        }
    }

    /// Keeps recording the running jobs' events while disconnected, for `pause`.
    async fn buffer_for(&mut self, pause: Duration) {
        let until = Instant::now() + pause;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(until) => return,
                Some((id, generation, event)) = self.events.recv() => { self.record(id, generation, event); }
                () = self.stop.cancelled(), if !self.stopping => { self.begin_stop(); }
            }
        }
    }

    /// Cancels every job (their reports still go to the server); takes no new work.
    fn begin_stop(&mut self) -> Vec<RunnerMessage> {
        self.stopping = true;
        // Not started: their leases run out and they go back to the queue.
        self.waiting.clear();
        for job in self.jobs.values() {
            job.cancel.cancel();
        }
        Vec::new()
    }

    /// Numbers a job's event and keeps it until acknowledged; returns what to send (with
    /// the notice of log lines not kept before it, or nothing when its lines are not kept).
    fn record(&mut self, id: AssignmentId, generation: u64, event: JobEvent) -> Vec<RunnerMessage> {
        if matches!(event, JobEvent::Finished(_))
            && self
                .waiting
                .get(&id)
                .is_some_and(|(old, _)| *old == generation)
            && let Some((_, assign)) = self.waiting.remove(&id)
        {
            self.start(assign);
            return Vec::new();
        }
        let stopping = self.stopping.then(|| self.setup.stopped_message.clone());
        let buffered = self.jobs.values().map(|job| job.spill.bytes).sum();
        let Some(job) = self
            .jobs
            .get_mut(&id)
            .filter(|job| job.generation == generation)
        else {
            return Vec::new();
        };
        let Some(mut message) = job::message(id, job.next_seq, event, &job.log_offsets) else {
            return Vec::new();
        };
        if let (RunnerMessage::Done(done), Some(why)) = (&mut message, stopping)
            && done.outcome == gantry_proto::Outcome::Cancelled
        {
            // Not a person's cancel: the build ends in error and says why.
            done.outcome = gantry_proto::Outcome::Error;
            done.error = Some(why);
        }
        job.keep(id, message, buffered)
    }

    async fn session(&mut self, mut socket: Socket) -> Ended {
        let heartbeat = match self.greet(&mut socket).await {
            Ok(heartbeat) => heartbeat,
            Err(ended) => return ended,
        };
        say!(
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
                Some((id, generation, event)) = self.events.recv() => self.record(id, generation, event),
                _ = tick.tick() => self.heartbeat(),
                () = self.stop.cancelled(), if !self.stopping => self.begin_stop(),
            };
            if let Err(ended) = self.send_reading(&mut socket, outgoing).await {
                return ended;
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
        self.welcomed = true;
        for dropped in &welcome.dropped {
            say!(
                self.setup,
                "assignment {} dropped: {}",
                dropped.assignment,
                dropped.reason
            );
            if let Some(job) = self.jobs.remove(&dropped.assignment) {
                job.cancel.cancel();
            }
        }
        let again: Vec<RunnerMessage> = (welcome.resumed.iter())
            .filter_map(|id| self.jobs.get(id))
            .flat_map(|job| job.unacked.iter().cloned())
            .collect();
        self.send_reading(socket, again).await?;
        Ok(Duration::from_millis(
            welcome.heartbeat_ms.clamp(100, 60_000),
        ))
    }

    /// Sends `messages` in order, reading (and acting on) what the server says while a
    /// send waits for room: the server may itself be waiting for this runner to read.
    async fn send_reading(
        &mut self,
        socket: &mut Socket,
        messages: Vec<RunnerMessage>,
    ) -> Result<(), Ended> {
        let mut queue = VecDeque::from(messages);
        let mut unflushed = false;
        loop {
            let sending = !queue.is_empty();
            if !sending && !unflushed {
                return Ok(());
            }
            let (outgoing, incoming) = (&mut socket.outgoing, &mut socket.incoming);
            tokio::select! {
                biased;
                room = poll_fn(|cx| if sending {
                    outgoing.as_mut().poll_ready(cx)
                } else {
                    outgoing.as_mut().poll_flush(cx)
                }) => {
                    room.map_err(Ended::Lost)?;
                    match queue.pop_front() {
                        Some(message) => {
                            outgoing.as_mut().start_send(encode(&message)).map_err(Ended::Lost)?;
                            unflushed = true;
                        }
                        None => unflushed = false,
                    }
                }
                frame = incoming.next() => match frame {
                    Some(Ok(text)) => queue.extend(self.on_server(&text)?),
                    None => return Err(Ended::Lost("the server closed the connection".into())),
                    Some(Err(error)) => return Err(Ended::Lost(error)),
                },
            }
        }
    }

    /// Starts a job for an assignment.
    fn start(&mut self, assign: Box<Assign>) {
        let id = assign.assignment;
        say!(
            self.setup,
            "running {} #{} `{}` (assignment {id})",
            assign.workflow.repo,
            assign.workflow.build_number,
            assign.workflow.name
        );
        self.generations += 1;
        let log_offsets = assign.log_offsets.clone();
        let cancel = job::spawn(
            &self.setup,
            *assign,
            self.generations,
            self.events_tx.clone(),
            self.decisions.clone(),
        );
        let job = Job {
            next_seq: 1,
            generation: self.generations,
            log_offsets,
            unacked: VecDeque::new(),
            cancel,
            done_sent: None,
            spill: Spill::default(),
        };
        self.jobs.insert(id, job);
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
                say!(
                    self.setup,
                    "stopping; assignment {} left to another runner",
                    assign.assignment
                );
            }
            ServerMessage::Assign(assign) => {
                let id = assign.assignment;
                if let Some(old) = self.jobs.remove(&id) {
                    // Given again (its lease lapsed and this runner claimed it anew): the
                    // old run stops and its reports are dropped; the new one starts once
                    // it has stopped.
                    say!(
                        self.setup,
                        "assignment {id} was given again; stopping its earlier run first"
                    );
                    old.cancel.cancel();
                    self.waiting.insert(id, (old.generation, assign));
                } else if let Some((_, waiting)) = self.waiting.get_mut(&id) {
                    *waiting = assign;
                } else {
                    self.start(assign);
                }
            }
            ServerMessage::Ack(ack) => self.acknowledged(ack.assignment, ack.seq),
            ServerMessage::Cancel(cancel) => {
                if let Some(job) = self.jobs.get(&cancel.assignment) {
                    let why = cancel
                        .reason
                        .as_deref()
                        .unwrap_or("the build was cancelled");
                    say!(
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
                say!(
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
            say!(
                self.setup,
                "skipped a server message it cannot read: {error}"
            );
            return Vec::new();
        };
        say!(self.setup, "cannot read assignment {id}: {error}");
        let done = RunnerMessage::Done(gantry_proto::Done {
            assignment: id,
            seq: 1,
            outcome: gantry_proto::Outcome::Error,
            error: Some(format!("the runner could not read the assignment: {error}")),
        });
        let job = Job {
            next_seq: 2,
            generation: 0,
            log_offsets: BTreeMap::new(),
            unacked: VecDeque::from([done.clone()]),
            cancel: CancellationToken::new(),
            done_sent: Some(Instant::now()),
            spill: Spill::default(),
        };
        self.jobs.insert(id, job);
        vec![done]
    }

    /// Forgets messages up to `seq`; a job whose `done` is acknowledged is over.
    fn acknowledged(&mut self, id: AssignmentId, seq: u64) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        if job.acknowledged(seq) {
            self.jobs.remove(&id);
        }
    }
}

/// What a job's unacknowledged messages hold, and the log lines it did not keep.
///
/// Past [`MAX_UNACKED_BYTES`] a log batch is not kept: its lines are counted per step.
/// Before the step's next kept message (a later batch, its state, or the job's `done`)
/// one line in their place says how many there were, numbered as the first of them; the
/// step's later lines are numbered after it. A step's lines stay consecutive, and the
/// sequence numbers only count messages that are sent.
#[derive(Debug, Default)]
struct Spill {
    /// About what `unacked` takes to send.
    bytes: usize,
    /// Lines not kept since the step's last notice.
    gaps: BTreeMap<String, Gap>,
    /// How many numbers fewer the step's later lines take (each run of lines not kept
    /// became one notice line).
    shift: BTreeMap<String, u64>,
}

/// A run of a step's log lines that were not kept.
#[derive(Debug, Clone, Copy)]
struct Gap {
    /// The number of its first line (where the notice goes).
    first: u64,
    /// How many lines.
    lines: u64,
    /// The last one's time.
    elapsed_ms: u64,
}

impl Job {
    /// Keeps `message` (numbered `next_seq` for now) until acknowledged, after the notice
    /// of lines its step did not keep; drops a log batch that would take the buffer of
    /// every job (`buffered` bytes now) past [`MAX_UNACKED_BYTES`]. Returns what to send.
    fn keep(
        &mut self,
        id: AssignmentId,
        mut message: RunnerMessage,
        buffered: usize,
    ) -> Vec<RunnerMessage> {
        let mut out = Vec::new();
        let size = weight(&message);
        match &mut message {
            RunnerMessage::Logs(logs) => {
                let shift = self.spill.shift.get(&logs.step).copied().unwrap_or(0);
                let (Some(first), Some(last)) = (logs.lines.first(), logs.lines.last()) else {
                    return out;
                };
                if buffered.saturating_add(size) > MAX_UNACKED_BYTES {
                    let gap = self.spill.gaps.entry(logs.step.clone()).or_insert(Gap {
                        first: first.number.saturating_sub(shift).max(1),
                        lines: 0,
                        elapsed_ms: 0,
                    });
                    gap.lines += logs.lines.len() as u64;
                    gap.elapsed_ms = last.elapsed_ms;
                    return out;
                }
                out.extend(self.notice(id, &logs.step));
                let shift = self.spill.shift.get(&logs.step).copied().unwrap_or(0);
                for line in &mut logs.lines {
                    line.number = line.number.saturating_sub(shift).max(1);
                }
            }
            RunnerMessage::StepUpdate(update) => out.extend(self.notice(id, &update.step)),
            RunnerMessage::Done(_) => {
                let steps: Vec<String> = self.spill.gaps.keys().cloned().collect();
                for step in steps {
                    out.extend(self.notice(id, &step));
                }
                self.done_sent = Some(Instant::now());
            }
            RunnerMessage::Hello(_) | RunnerMessage::Heartbeat => return out,
        }
        set_seq(&mut message, self.next_seq);
        self.push(message.clone());
        out.push(message);
        out
    }

    /// The line that stands for the step's lines not kept, if any were not.
    fn notice(&mut self, id: AssignmentId, step: &str) -> Option<RunnerMessage> {
        let gap = self.spill.gaps.remove(step)?;
        *self.spill.shift.entry(step.to_string()).or_default() += gap.lines - 1;
        let text = match gap.lines {
            1 => "… 1 line was not kept while the server was unreachable".to_string(),
            n => format!("… {n} lines were not kept while the server was unreachable"),
        };
        let notice = RunnerMessage::Logs(gantry_proto::Logs {
            assignment: id,
            seq: self.next_seq,
            step: step.to_string(),
            lines: vec![gantry_proto::LogLine {
                number: gap.first,
                stream: gantry_proto::Stream::Stderr,
                text,
                elapsed_ms: gap.elapsed_ms,
            }],
        });
        self.push(notice.clone());
        Some(notice)
    }

    fn push(&mut self, message: RunnerMessage) {
        self.next_seq += 1;
        self.spill.bytes += weight(&message);
        self.unacked.push_back(message);
    }

    /// Forgets messages up to `seq`; true when its `done` was among them (the job is over).
    fn acknowledged(&mut self, seq: u64) -> bool {
        while (self.unacked.front())
            .and_then(RunnerMessage::sequenced)
            .is_some_and(|(_, s)| s <= seq)
        {
            let Some(message) = self.unacked.pop_front() else {
                break;
            };
            self.spill.bytes = self.spill.bytes.saturating_sub(weight(&message));
            if matches!(message, RunnerMessage::Done(_)) {
                return true;
            }
        }
        false
    }
}

/// About how many bytes a kept message takes (its text, plus the JSON around it).
fn weight(message: &RunnerMessage) -> usize {
    const ENVELOPE: usize = 128;
    const PER_LINE: usize = 64;
    match message {
        RunnerMessage::Logs(logs) => {
            let text: usize = logs.lines.iter().map(|line| line.text.len()).sum();
            ENVELOPE + logs.step.len() + text + PER_LINE * logs.lines.len()
        }
        RunnerMessage::StepUpdate(update) => {
            ENVELOPE + update.step.len() + update.error.as_ref().map_or(0, String::len)
        }
        RunnerMessage::Done(done) => ENVELOPE + done.error.as_ref().map_or(0, String::len),
        RunnerMessage::Hello(_) | RunnerMessage::Heartbeat => ENVELOPE,
    }
}

fn set_seq(message: &mut RunnerMessage, seq: u64) {
    match message {
        RunnerMessage::StepUpdate(m) => m.seq = seq,
        RunnerMessage::Logs(m) => m.seq = seq,
        RunnerMessage::Done(m) => m.seq = seq,
        RunnerMessage::Hello(_) | RunnerMessage::Heartbeat => {}
    }
}

#[cfg(test)]
mod tests {
    use gantry_proto::{Done, LogLine, Logs, Outcome, StepState, StepUpdate, Stream};

    use super::*;

    struct Nowhere;

    #[async_trait::async_trait]
    impl crate::Transport for Nowhere {
        async fn connect(&self) -> Result<Link, ConnectError> {
            Err(ConnectError::Unreachable("nowhere".into()))
        }
        fn describe(&self) -> String {
            "nowhere".into()
        }
    }

    fn runner() -> Runner {
        let setup = RunnerSetup {
            transport: std::sync::Arc::new(Nowhere),
            name: "test".into(),
            labels: BTreeMap::new(),
            capacity: 1,
            backend_name: "local",
            backend: std::sync::Arc::new(gantry_runner::LocalBackend::with_temp_workspaces(
                std::env::temp_dir(),
            )),
            stopped_message: "stopped".into(),
            notices: crate::Notices::Tracing,
        };
        Runner::new(setup, CancellationToken::new())
    }

    /// Both sides send far more than the in-memory link holds before either reads: the
    /// runner reads while it waits for room, so both get through.
    #[tokio::test]
    async fn sending_while_the_server_also_sends_does_not_block_for_good() {
        let (mut link, mut server) = Link::channels();
        let mut runner = runner();
        let count = 500;
        let server_side = tokio::spawn(async move {
            let ack = encode(&ServerMessage::Ack(gantry_proto::Ack {
                assignment: 7,
                seq: 1,
            }));
            for _ in 0..count {
                server.outgoing.send(ack.clone()).await.unwrap();
            }
            let mut heard = 0;
            while heard < count {
                server.incoming.recv().await.unwrap();
                heard += 1;
            }
            heard
        });
        let messages = vec![RunnerMessage::Heartbeat; count];
        let sent = tokio::time::timeout(
            Duration::from_secs(20),
            runner.send_reading(&mut link, messages),
        )
        .await
        .expect("the runner's sends blocked");
        assert!(sent.is_ok());
        let heard = tokio::time::timeout(Duration::from_secs(20), server_side)
            .await
            .expect("the server side blocked")
            .unwrap();
        assert_eq!(heard, count);
    }

    /// An assignment given again while its earlier run goes: the earlier run stops, its
    /// reports are dropped, and the new run starts (as a new job) once it has stopped.
    #[tokio::test]
    async fn an_assignment_given_again_stops_its_earlier_run_first() {
        let mut runner = runner();
        let yaml = "clone:\n  disable: true\nsteps:\n  - name: wait\n    image: busybox\n    commands: [sleep 30]\n";
        let ctx = gantry_pipeline::CompileContext::default();
        let plan = gantry_pipeline::compile(".gantry.yml", yaml, &ctx)
            .expect("the pipeline compiles")
            .plans
            .remove(0);
        let assign = encode(&ServerMessage::Assign(Box::new(Assign {
            assignment: 7,
            workflow: gantry_proto::WorkflowInfo {
                repo: "o/r".into(),
                build_number: 1,
                name: "default".into(),
                key: format!("agent-given-again-{}", std::process::id()),
            },
            plan,
            secrets: Default::default(),
            lease_ms: 10_000,
            log_offsets: BTreeMap::new(),
        })));
        let within = Duration::from_secs(30);
        runner.on_server(&assign).ok().unwrap();
        // The first run's step starts.
        loop {
            let (id, generation, event) = tokio::time::timeout(within, runner.events.recv())
                .await
                .expect("an event")
                .expect("the channel is open");
            let sent = runner.record(id, generation, event);
            if sent
                .iter()
                .any(|m| matches!(m, RunnerMessage::StepUpdate(u) if u.state == StepState::Running))
            {
                break;
            }
        }
        runner.on_server(&assign).ok().unwrap();
        assert!(runner.waiting.contains_key(&7));
        assert!(!runner.jobs.contains_key(&7));
        // The first run's late reports are dropped; the second run starts as job 2.
        loop {
            let (id, generation, event) = tokio::time::timeout(within, runner.events.recv())
                .await
                .expect("an event")
                .expect("the channel is open");
            let sent = runner.record(id, generation, event);
            if generation == 1 {
                assert!(sent.is_empty(), "{sent:?}");
            }
            if runner.jobs.get(&7).is_some_and(|job| job.generation == 2) {
                break;
            }
        }
        assert!(runner.waiting.is_empty());
        assert_eq!(runner.jobs[&7].next_seq, 1);
        // Stopped and cleaned up before the test ends.
        runner.jobs[&7].cancel.cancel();
        loop {
            let (_, generation, event) = tokio::time::timeout(within, runner.events.recv())
                .await
                .expect("an event")
                .expect("the channel is open");
            if generation == 2 && matches!(event, JobEvent::Finished(_)) {
                break;
            }
        }
    }

    fn job() -> Job {
        Job {
            next_seq: 1,
            generation: 1,
            log_offsets: BTreeMap::new(),
            unacked: VecDeque::new(),
            cancel: CancellationToken::new(),
            done_sent: None,
            spill: Spill::default(),
        }
    }

    /// Lines `first..first + count` of `step`, each `width` bytes (seq to be set).
    fn batch(step: &str, first: u64, count: u64, width: usize) -> RunnerMessage {
        RunnerMessage::Logs(Logs {
            assignment: 7,
            seq: 0,
            step: step.into(),
            lines: (first..first + count)
                .map(|number| LogLine {
                    number,
                    stream: Stream::Stdout,
                    text: "x".repeat(width),
                    elapsed_ms: number * 10,
                })
                .collect(),
        })
    }

    fn update(step: &str, state: StepState) -> RunnerMessage {
        RunnerMessage::StepUpdate(StepUpdate {
            assignment: 7,
            seq: 0,
            step: step.into(),
            state,
            exit_code: None,
            error: None,
        })
    }

    fn done() -> RunnerMessage {
        RunnerMessage::Done(Done {
            assignment: 7,
            seq: 0,
            outcome: Outcome::Success,
            error: None,
        })
    }

    /// (seq, step, numbers, text of a one-line batch) of log messages; (seq, "", [], kind)
    /// of the others.
    fn shape(messages: &[RunnerMessage]) -> Vec<(u64, String, Vec<u64>, String)> {
        (messages.iter())
            .map(|message| match message {
                RunnerMessage::Logs(logs) => (
                    logs.seq,
                    logs.step.clone(),
                    logs.lines.iter().map(|l| l.number).collect(),
                    if logs.lines.len() == 1 {
                        logs.lines[0].text.clone()
                    } else {
                        String::new()
                    },
                ),
                RunnerMessage::StepUpdate(u) => (u.seq, u.step.clone(), vec![], "update".into()),
                RunnerMessage::Done(d) => (d.seq, String::new(), vec![], "done".into()),
                other => panic!("not kept: {other:?}"),
            })
            .collect()
    }

    const FULL: usize = MAX_UNACKED_BYTES;

    #[test]
    fn below_the_cap_every_message_is_kept_in_turn() {
        let mut job = job();
        let mut sent = Vec::new();
        sent.extend(job.keep(7, update("test", StepState::Running), 0));
        sent.extend(job.keep(7, batch("test", 1, 3, 10), 0));
        sent.extend(job.keep(7, update("test", StepState::Success), 0));
        sent.extend(job.keep(7, done(), 0));
        let seqs: Vec<u64> = sent
            .iter()
            .filter_map(|m| m.sequenced())
            .map(|(_, s)| s)
            .collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
        assert_eq!(job.unacked.len(), 4);
        assert!(job.done_sent.is_some());
        assert!(!job.acknowledged(3));
        assert!(
            job.acknowledged(4),
            "its done is acknowledged: the job is over"
        );
        assert_eq!(job.spill.bytes, 0);
    }

    #[test]
    fn past_the_cap_lines_are_counted_and_one_line_stands_for_them_before_the_steps_state() {
        let mut job = job();
        assert_eq!(job.keep(7, batch("test", 1, 3, 10), 0).len(), 1);
        // The server is unreachable and the buffer is full: lines are not kept, nor
        // numbered messages spent on them.
        assert!(job.keep(7, batch("test", 4, 100, 10), FULL).is_empty());
        assert!(job.keep(7, batch("test", 104, 50, 10), FULL).is_empty());
        assert_eq!(job.next_seq, 2);
        // A step's state is always kept, after the line that stands for the lost ones.
        let sent = job.keep(7, update("test", StepState::Success), FULL);
        let notice = "… 150 lines were not kept while the server was unreachable";
        assert_eq!(
            shape(&sent),
            [
                (2, "test".into(), vec![4], notice.into()),
                (3, "test".into(), vec![], "update".into())
            ]
        );
        let RunnerMessage::Logs(logs) = &sent[0] else {
            unreachable!()
        };
        assert_eq!(logs.lines[0].elapsed_ms, 1530, "the last lost line's time");
        assert_eq!(
            shape(&job.keep(7, done(), FULL)),
            [(4, String::new(), vec![], "done".into())]
        );
        let seqs: Vec<u64> = (job.unacked.iter())
            .filter_map(RunnerMessage::sequenced)
            .map(|(_, s)| s)
            .collect();
        assert_eq!(
            seqs,
            [1, 2, 3, 4],
            "everything sent is kept until acknowledged"
        );
    }

    #[test]
    fn lines_kept_after_a_gap_follow_its_notice() {
        let mut job = job();
        job.keep(7, batch("test", 1, 2, 10), 0);
        assert!(job.keep(7, batch("test", 3, 10, 10), FULL).is_empty());
        assert!(job.keep(7, batch("test", 13, 1, 10), FULL).is_empty());
        // Acknowledgements made room again.
        let sent = job.keep(7, batch("test", 14, 2, 10), 0);
        let notice = "… 11 lines were not kept while the server was unreachable";
        assert_eq!(
            shape(&sent),
            [
                (2, "test".into(), vec![3], notice.into()),
                (3, "test".into(), vec![4, 5], String::new())
            ]
        );
        // Another run later in the same step gets its own line; numbers stay consecutive.
        assert!(job.keep(7, batch("test", 16, 1, 10), FULL).is_empty());
        let sent = job.keep(7, batch("test", 17, 1, 10), 0);
        let notice = "… 1 line was not kept while the server was unreachable";
        assert_eq!(
            shape(&sent),
            [
                (4, "test".into(), vec![6], notice.into()),
                (5, "test".into(), vec![7], "x".repeat(10))
            ]
        );
    }

    #[test]
    fn done_comes_after_every_steps_notice_and_is_never_dropped() {
        let mut job = job();
        assert!(job.keep(7, batch("build", 1, 5, 10), FULL).is_empty());
        assert!(job.keep(7, batch("test", 1, 7, 10), FULL).is_empty());
        let sent = job.keep(7, done(), FULL);
        assert_eq!(
            shape(&sent),
            [
                (
                    1,
                    "build".into(),
                    vec![1],
                    "… 5 lines were not kept while the server was unreachable".into()
                ),
                (
                    2,
                    "test".into(),
                    vec![1],
                    "… 7 lines were not kept while the server was unreachable".into()
                ),
                (3, String::new(), vec![], "done".into())
            ]
        );
        assert!(job.done_sent.is_some());
        assert_eq!(
            job.unacked.back(),
            sent.last(),
            "done is last: it is the one resent"
        );
    }

    #[test]
    fn a_server_gone_for_long_costs_at_most_the_cap() {
        let mut job = job();
        // 64 KiB batches (the most a batch holds) until well past the cap, nothing
        // acknowledged; steps' states keep coming.
        let mut number = 1;
        let mut sent = 0;
        for round in 0..1_200u64 {
            sent += job
                .keep(7, batch("test", number, 64, 1_024), job.spill.bytes)
                .len();
            number += 64;
            if round % 100 == 0 {
                sent += job
                    .keep(7, update("test", StepState::Running), job.spill.bytes)
                    .len();
            }
        }
        assert!(
            job.spill.bytes <= MAX_UNACKED_BYTES + 16 * 1024,
            "{}",
            job.spill.bytes
        );
        let kept_lines = (job.unacked.iter())
            .map(|m| match m {
                RunnerMessage::Logs(logs) => logs.lines.len(),
                _ => 0,
            })
            .sum::<usize>();
        assert!(
            kept_lines > 60_000 && kept_lines < 64 * 1_200,
            "{kept_lines}"
        );
        let updates = (job.unacked.iter())
            .filter(|m| matches!(m, RunnerMessage::StepUpdate(_)))
            .count();
        assert_eq!(updates, 12, "no step state is dropped");
        assert_eq!(sent, job.unacked.len());
        // Every acknowledged message gives its bytes back.
        assert!(!job.acknowledged(job.next_seq - 1));
        assert_eq!(job.spill.bytes, 0);
    }
}
