//! One runner connection: hello, then claims, assignments and the runner's messages until
//! the socket closes. The runner's work outlives the connection: its leases run on, and
//! a reconnect within them resumes it.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::{Sink, SinkExt as _, Stream};
use gantry_proto::{
    Ack, AssignmentId, Cancel, Decision, Dropped, ErrorMessage, RunnerMessage, ServerMessage,
    StepState, decode_runner, encode,
};
use gantry_store::{RunStatus, now_ms};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use super::assignment::{self, Held, Unfinished, Unstored};
use super::greet::{self, next_text};
use super::hello::{self, RunnerInfo};
use super::registry::ConnectedRunner;
use super::{LEASE_MS, RunnerCredential};
use crate::live::{EventKind, LiveEvent};
use crate::state::AppState;

/// How often the queue is looked at when nobody announced work.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How often timeouts and a silent runner are checked.
const TICK: Duration = Duration::from_secs(1);
/// Messages waiting for the socket. The session never waits for room (it would stop
/// reading the runner, which may itself wait for the session to read): a runner that
/// leaves this many unread is disconnected.
const OUTBOX: usize = 1024;
/// Heartbeats closer together than this are taken (the runner is alive) but check and
/// write nothing: a runner sending them in a loop costs the store nothing.
const HEARTBEAT_CHECK_EVERY: Duration = Duration::from_secs(1);
/// How often the session checks the runner's token on its own timer, whatever the runner
/// sends (a claim checks it first too).
const TOKEN_CHECK_EVERY: Duration = Duration::from_secs(2);

/// Protocol texts from a runner (a websocket's text frames, or an in-memory channel);
/// ends when the connection closed.
pub type Incoming = Pin<Box<dyn Stream<Item = String> + Send>>;
/// Protocol texts to a runner.
pub type Outgoing = Pin<Box<dyn Sink<String, Error = ()> + Send>>;

/// Serves one runner's connection until it closes or the server shuts down (the built-in
/// runner's connection stays open after that, until it has reported the work it stopped).
pub async fn run(
    state: AppState,
    credential: RunnerCredential,
    mut stream: Incoming,
    mut sink: Outgoing,
) {
    let (out, mut outbox) = mpsc::channel::<ServerMessage>(OUTBOX);
    let sending = tokio::spawn(async move {
        while let Some(message) = outbox.recv().await {
            let refused = matches!(message, ServerMessage::Refused(_));
            if sink.send(encode(&message)).await.is_err() || refused {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let runner_id = credential.runner_id.clone();
    match greet::greet(&state, &credential, &mut stream, &out).await {
        Some(mut session) => {
            let _presence = state.runners.join(ConnectedRunner {
                runner_id: runner_id.clone(),
                name: session.runner.name.clone(),
                labels: session.runner.labels.clone(),
                repos: session.runner.repos.clone(),
                capacity: session.runner.capacity,
                connected_at: now_ms(),
            });
            tracing::info!(runner.id = %runner_id, runner.name = %session.runner.name, runner.labels = %hello::describe_labels(&session.runner.labels), "runner connected");
            session.serve(&mut stream).await;
            tracing::info!(runner.id = %runner_id, held = session.held.len(), "runner disconnected; its leases run on");
        }
        None => tracing::info!(runner.id = %runner_id, "runner refused"),
    }
    // Closed both ways: a runner waiting to send is released even if it reads nothing.
    drop(stream);
    drop(out);
    let _ = sending.await;
}

/// A connected runner and the assignments it holds.
pub(super) struct Session {
    state: AppState,
    credential: RunnerCredential,
    pub(super) runner: RunnerInfo,
    out: mpsc::Sender<ServerMessage>,
    pub(super) held: HashMap<AssignmentId, Held>,
    events: broadcast::Receiver<LiveEvent>,
    /// When the runner last showed it is alive: a heartbeat, or a message stored (any
    /// other frame does not count).
    last_heard: Instant,
    /// When a heartbeat last checked the leases.
    beat_checked: Option<Instant>,
    /// When the token was last checked.
    token_checked: Instant,
    /// The token was revoked: the connection closes.
    revoked: bool,
    /// A message came out of order: the connection closes, and the runner's reconnect
    /// sends again, in order, every message not acknowledged.
    out_of_order: bool,
    /// Assignments whose item this runner already completed (its `done` was stored and
    /// the answer lost): no lease is checked for them; the `done` sent again finishes them.
    done_stored: HashSet<AssignmentId>,
    /// The outbox was full (the runner does not read what it is sent): the connection
    /// closes.
    not_reading: AtomicBool,
}

impl Session {
    pub(super) fn new(
        state: AppState,
        credential: RunnerCredential,
        runner: RunnerInfo,
        out: mpsc::Sender<ServerMessage>,
    ) -> Self {
        Session {
            events: state.live.subscribe_events(),
            state,
            credential,
            runner,
            out,
            held: HashMap::new(),
            last_heard: Instant::now(),
            beat_checked: None,
            token_checked: Instant::now(),
            revoked: false,
            out_of_order: false,
            not_reading: AtomicBool::new(false),
            done_stored: HashSet::new(),
        }
    }

    pub(super) fn runner_id(&self) -> &str {
        &self.credential.runner_id
    }

    /// Takes back the assignments this runner's token still holds.
    pub(super) async fn resume(
        &mut self,
        ids: &[AssignmentId],
    ) -> Result<(Vec<AssignmentId>, Vec<Dropped>), String> {
        let (mut resumed, mut dropped) = (Vec::new(), Vec::new());
        for &id in ids.iter().take(self.runner.capacity.max(1) * 4) {
            let mut claimed = self.state.store.claimed_item(id, self.runner_id()).await;
            let mut done = false;
            if let Ok(None) = claimed {
                // Completed by this runner, the answer lost: its `done` comes again.
                claimed = self.state.store.done_item(id, self.runner_id()).await;
                done = matches!(claimed, Ok(Some(_)));
            }
            let outcome = match claimed {
                Ok(Some(item)) => {
                    match assignment::resume(&self.state, self.runner_id(), item).await {
                        Ok(held) => Ok(held),
                        Err(assignment::Unresumable::Dropped(reason)) => Err(reason),
                        // Not known to be lost: the runner must not drop it; it connects again.
                        Err(assignment::Unresumable::Store(error)) => {
                            return Err(format!(
                                "the server could not resume assignment {id}: {error}"
                            ));
                        }
                    }
                }
                Ok(None) => Err(
                    "this runner no longer holds it (its lease ended, or the build \
                                 was cancelled)"
                        .to_string(),
                ),
                // Not known to be lost: the runner must not drop it; it connects again.
                Err(error) => {
                    return Err(format!(
                        "the server could not read assignment {id}: {error}"
                    ));
                }
            };
            match outcome {
                Ok(held) if done => {
                    self.held.insert(id, held);
                    self.done_stored.insert(id);
                    resumed.push(id);
                }
                Ok(mut held) => {
                    let (written, epoch) = (Instant::now(), assignment::reclaims());
                    let extended = (self.state.store)
                        .extend_lease(id, self.runner_id(), now_ms() + LEASE_MS)
                        .await;
                    match extended {
                        Ok(true) => held.lease_written(written, epoch),
                        // Cancelled or requeued since it was read.
                        Ok(false) => {
                            dropped.push(Dropped {
                                assignment: id,
                                reason: "this runner no longer holds it (its lease ended, \
                                         or the build was cancelled)"
                                    .to_string(),
                            });
                            continue;
                        }
                        // Nothing trusted: the runner's next message checks the store.
                        Err(error) => {
                            tracing::warn!(error = %error, "extending a resumed lease failed");
                            held.forget_lease();
                        }
                    }
                    let blocked = held.blocked_approvals();
                    self.held.insert(id, held);
                    for step in blocked {
                        self.wait_for_decision(id, &step);
                    }
                    resumed.push(id);
                }
                Err(reason) => dropped.push(Dropped {
                    assignment: id,
                    reason,
                }),
            }
        }
        Ok((resumed, dropped))
    }

    async fn serve(&mut self, stream: &mut Incoming) {
        let mut tick = tokio::time::interval(TICK);
        // When the queue is looked at next without an announcement: at once on connect and
        // whenever a slot frees, so a busy runner drains the queue without waiting a poll.
        let mut next_poll = Instant::now();
        // The built-in runner reports the work a shutdown stops before its channel closes.
        let ends_at_shutdown = !self.credential.is_built_in();
        loop {
            let held_before = self.held.len();
            let stopping = self.state.shutdown.is_cancelled();
            let free = held_before < self.runner.capacity && !stopping;
            tokio::select! {
                text = next_text(stream) => match text {
                    Some(text) => {
                        self.handle(&text).await;
                        if self.out_of_order {
                            tracing::info!(runner.id = %self.runner_id(), "a runner's message came out of order; closing its connection so that it sends again");
                            return;
                        }
                    }
                    None => return,
                },
                () = wait_for_work(&self.state, next_poll), if free => {
                    next_poll = if self.claim().await {
                        // More may be queued: look again at once, and wake another
                        // runner to look too (an announcement wakes only one).
                        self.state.live.deliver_work();
                        Instant::now()
                    } else {
                        Instant::now() + POLL_INTERVAL
                    };
                }
                event = self.events.recv() => self.on_event(event).await,
                _ = tick.tick() => {
                    if !self.check_time().await {
                        return;
                    }
                }
                () = self.state.shutdown.cancelled(), if ends_at_shutdown || !stopping => {
                    if ends_at_shutdown {
                        return;
                    }
                }
            }
            if self.not_reading.load(Ordering::Relaxed) {
                tracing::warn!(runner.id = %self.runner_id(), "a runner left {OUTBOX} server messages unread; closing its connection");
                return;
            }
            if self.held.len() < held_before {
                next_poll = Instant::now();
            }
        }
    }

    /// Queues a message for the runner without waiting: a full outbox closes the
    /// connection (see [`OUTBOX`]).
    async fn send(&self, message: ServerMessage) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.out.try_send(message) {
            self.not_reading.store(true, Ordering::Relaxed);
        }
    }

    async fn error(&self, assignment: Option<AssignmentId>, message: String) {
        tracing::warn!(runner.id = %self.runner_id(), assignment = ?assignment, error = %message, "refused a runner's message");
        self.send(ServerMessage::Error(ErrorMessage {
            assignment,
            message,
        }))
        .await;
    }

    /// Claims one queued workflow this runner can take; true when it got one.
    async fn claim(&mut self) -> bool {
        if self.state.shutdown.is_cancelled() || self.revoked {
            return false;
        }
        // Work carries secrets: a revoked token claims nothing, however recently it was
        // checked.
        if !self.check_token().await {
            return false;
        }
        let claimed_at = Instant::now();
        let claimed = (self.state.store)
            .claim_next_in(
                self.runner_id(),
                &self.runner.labels,
                self.runner.repos.as_deref(),
                now_ms(),
                LEASE_MS,
            )
            .await;
        let item = match claimed {
            Ok(Some(item)) => item,
            Ok(None) => return false,
            Err(error) => {
                tracing::error!(error = %error, "claiming queued work failed");
                return false;
            }
        };
        let started = assignment::start(
            &self.state,
            &self.runner,
            self.runner_id(),
            item.clone(),
            claimed_at,
        )
        .await;
        match started {
            Ok(Some((held, assign))) => {
                tracing::info!(runner.id = %self.runner_id(), assignment = held.id(), build.id = held.target.build_id, "assigned a workflow");
                self.held.insert(held.id(), held);
                self.send(assign).await;
            }
            Ok(None) => {
                let _ = self.state.store.complete(item.id, self.runner_id()).await;
            }
            Err(message) => {
                tracing::warn!(build.id = item.build_id, error = %message, "workflow could not be assigned");
                let failed = gantry_store::QueueItem {
                    error: Some(message),
                    ..item.clone()
                };
                match crate::run::give_up(&self.state, &failed).await {
                    Ok(()) => {
                        let _ = self.state.store.complete(item.id, self.runner_id()).await;
                    }
                    // Not completed: its lease ends, the lease keeper requeues it (or, after
                    // the last attempt, gives it up again).
                    Err(error) => {
                        tracing::error!(queue.item = item.id, error = %error, "ending a workflow that could not be assigned failed; its lease ends and it is tried again");
                    }
                }
            }
        }
        true
    }

    async fn handle(&mut self, text: &str) {
        let message = match decode_runner(text) {
            Ok(message) => message,
            Err(error) => return self.error(None, error.to_string()).await,
        };
        match message {
            RunnerMessage::Hello(_) => {
                self.error(None, "hello was already said on this connection".into())
                    .await;
            }
            RunnerMessage::Heartbeat => {
                self.last_heard = Instant::now();
                self.heartbeat().await;
            }
            RunnerMessage::StepUpdate(_) | RunnerMessage::Logs(_) | RunnerMessage::Done(_) => {
                self.sequenced(message).await;
            }
        }
    }

    /// Checks that the runner holds the assignment, stores the message once, and
    /// acknowledges it.
    async fn sequenced(&mut self, message: RunnerMessage) {
        let Some((id, seq)) = message.sequenced() else {
            return;
        };
        let Some(held) = self.held.get_mut(&id) else {
            let text = format!(
                "assignment {id} is not held by this runner ({}); nothing was written",
                self.credential.runner_id
            );
            return self.error(Some(id), text).await;
        };
        if seq <= held.applied {
            // Sent again after a reconnect: stored already.
            return self
                .send(ServerMessage::Ack(Ack {
                    assignment: id,
                    seq,
                }))
                .await;
        }
        // Acknowledgements are cumulative: a message stored past a missing one would make
        // the runner drop the missing one unstored. A message refused without an ack (the
        // store failed) comes again, but only from a new connection, which sends every
        // message not acknowledged in order: closing this one gets it there.
        if held.applied_known && seq != held.applied + 1 {
            let text = format!(
                "message {seq} of assignment {id} came before message {}: it was not \
                 stored; the connection closes and every message not acknowledged is to be \
                 sent again, in order",
                held.applied + 1
            );
            self.out_of_order = true;
            return self.error(None, text).await;
        }
        // Every message, not only step updates: a runner whose lease ended (its work
        // handed to another runner) must not log into or finish that runner's work. A
        // `done` is checked by completing the item, which only its holder can (and which
        // answers a completion committed earlier, whose answer was lost, as already done).
        let is_done = matches!(message, RunnerMessage::Done(_));
        if !is_done && !self.still_holds(id).await {
            self.unacked_refusal(id, seq);
            return;
        }
        let result = match &message {
            RunnerMessage::Done(done) => match self.held.remove(&id) {
                Some(held) => {
                    self.done_stored.remove(&id);
                    let finished = held.finish(&self.state, done.outcome, done.error.clone());
                    match finished.await {
                        Ok(()) => {
                            tracing::info!(runner.id = %self.runner_id(), assignment = id, outcome = ?done.outcome, "assignment done");
                            Ok(())
                        }
                        Err(Unfinished::NotHeld(message)) => Err(Unstored::Refused(message)),
                        Err(Unfinished::Retry(message)) => {
                            // Still the runner's: its `done`, not acknowledged, comes again.
                            self.completed_here(id).await;
                            self.held.insert(id, held);
                            self.unacked_refusal(id, seq);
                            return self.error(None, message).await;
                        }
                    }
                }
                None => Ok(()),
            },
            _ => self.store_update(id, &message).await,
        };
        match result {
            Ok(()) => {
                self.last_heard = Instant::now();
                if let Some(held) = self.held.get_mut(&id) {
                    held.applied = seq;
                    held.applied_known = true;
                }
                self.send(ServerMessage::Ack(Ack {
                    assignment: id,
                    seq,
                }))
                .await;
            }
            Err(Unstored::Retry(message)) => {
                // The store failed: not acknowledged, the message comes again.
                self.unacked_refusal(id, seq);
                self.error(None, message).await;
            }
            Err(Unstored::Refused(message)) => {
                // Refused for good (sent again, it would be refused again): the next
                // message follows it. Sent without the assignment: the runner keeps the
                // work (an error naming an assignment makes it stop and drop it) and a
                // later cumulative ack covers the refused message.
                if let Some(held) = self.held.get_mut(&id) {
                    held.applied = seq;
                    held.applied_known = true;
                }
                self.error(None, message).await;
            }
        }
    }

    /// A message of a held assignment refused without an ack (it comes again): when the
    /// count of stored messages is not known yet (right after a resume), it is set to just
    /// before this one, so that no later message's cumulative ack covers it unstored.
    fn unacked_refusal(&mut self, id: AssignmentId, seq: u64) {
        if let Some(held) = self.held.get_mut(&id)
            && !held.applied_known
        {
            held.applied = seq.saturating_sub(1);
            held.applied_known = true;
        }
    }

    /// Stores a step update or a log batch of a held assignment.
    async fn store_update(
        &mut self,
        id: AssignmentId,
        message: &RunnerMessage,
    ) -> Result<(), Unstored> {
        let Some(held) = self.held.get_mut(&id) else {
            return Ok(());
        };
        match message {
            RunnerMessage::StepUpdate(update) => {
                held.write_step(&self.state, update).await?;
                if update.state == StepState::Blocked {
                    self.wait_for_decision(id, &update.step);
                }
                Ok(())
            }
            RunnerMessage::Logs(logs) => held.write_logs(logs).await,
            _ => Ok(()),
        }
    }

    /// Checks the runner still holds the assignment (its work may have been requeued to
    /// another runner, or its build cancelled); if not, drops it and says so. The check is
    /// the lease's extension in the store, made only when the lease written last is due
    /// (see `assignment::Lease`): log batches between two heartbeats write nothing more.
    async fn still_holds(&mut self, id: AssignmentId) -> bool {
        let Some(held) = self.held.get(&id) else {
            return false;
        };
        if !held.lease_due() || self.done_stored.contains(&id) {
            return true;
        }
        let (written, epoch) = (Instant::now(), assignment::reclaims());
        match self
            .state
            .store
            .extend_lease(id, self.runner_id(), now_ms() + LEASE_MS)
            .await
        {
            Ok(true) => {
                if let Some(held) = self.held.get_mut(&id) {
                    held.lease_written(written, epoch);
                }
                true
            }
            Ok(false) => match self.completed_here(id).await {
                Some(true) => true,
                Some(false) => self.lost(id).await,
                None => {
                    let text = format!(
                        "the server could not check that this runner still holds assignment \
                         {id}; the message was not stored"
                    );
                    self.error(None, text).await;
                    false
                }
            },
            Err(error) => {
                tracing::warn!(error = %error, "extending a lease failed");
                // A lease this server wrote still runs: nobody else can hold the item.
                if self.held.get(&id).is_some_and(Held::lease_runs) {
                    return true;
                }
                let text = format!(
                    "the server could not check that this runner still holds assignment \
                     {id}: {error}; the message was not stored"
                );
                self.error(None, text).await;
                false
            }
        }
    }

    /// Asks the store's approver for a decision on a blocked approval step and sends it;
    /// once per step of an assignment, however often the runner reports it blocked.
    fn wait_for_decision(&mut self, id: AssignmentId, step_name: &str) {
        let Some(held) = self.held.get_mut(&id) else {
            return;
        };
        if held.waiters.contains_key(step_name) {
            return;
        }
        let Some(step) = held
            .approval_steps
            .iter()
            .find(|s| s.name == step_name)
            .cloned()
        else {
            return;
        };
        let step_ids = held
            .target
            .steps
            .iter()
            .map(|s| (s.name.clone(), s.id))
            .collect();
        let approver = crate::run::approver::StoreApprover::new(
            self.state.clone(),
            held.target.build_id,
            step_ids,
        );
        let key = crate::run::backend::workflow_id(held.target.build_id, held.target.workflow_id);
        let out = self.out.clone();
        let task = tokio::spawn(async move {
            use gantry_runner::Approver as _;
            let (approved, by) = match approver.decide(&key, &step).await {
                gantry_runner::ApprovalDecision::Approved { by } => (true, by),
                gantry_runner::ApprovalDecision::Rejected { by, .. } => (false, by),
            };
            let decision = Decision {
                assignment: id,
                step: step.name.clone(),
                approved,
                by,
            };
            let _ = out.send(ServerMessage::Decision(decision)).await;
        });
        held.waiters
            .insert(step_name.to_string(), task.abort_handle());
    }

    /// Checks the token now: false when it was revoked (the next tick closes the
    /// connection) or could not be checked (nothing is claimed then).
    async fn check_token(&mut self) -> bool {
        self.token_checked = Instant::now();
        match self.credential.verify(&self.state).await {
            Ok(true) => true,
            Ok(false) => {
                self.revoked = true;
                false
            }
            Err(error) => {
                tracing::warn!(runner.id = %self.runner_id(), error = %error, "checking a runner token failed");
                false
            }
        }
    }

    /// Checks the token and extends every lease that is due; an assignment whose lease
    /// was lost is cancelled on the runner. At most once per [`HEARTBEAT_CHECK_EVERY`].
    async fn heartbeat(&mut self) {
        let beat = Instant::now();
        if (self.beat_checked).is_some_and(|at| beat.duration_since(at) < HEARTBEAT_CHECK_EVERY) {
            return;
        }
        self.beat_checked = Some(beat);
        if !self.check_token().await && self.revoked {
            return;
        }
        let (written, epoch) = (Instant::now(), assignment::reclaims());
        let until = now_ms() + LEASE_MS;
        let mut lost = Vec::new();
        let due: Vec<AssignmentId> = (self.held.values())
            .filter(|held| held.lease_due() && !self.done_stored.contains(&held.id()))
            .map(Held::id)
            .collect();
        for id in due {
            match self
                .state
                .store
                .extend_lease(id, self.runner_id(), until)
                .await
            {
                Ok(true) => {
                    if let Some(held) = self.held.get_mut(&id) {
                        held.lease_written(written, epoch);
                    }
                }
                Ok(false) => {
                    if self.completed_here(id).await == Some(false) {
                        lost.push(id);
                    }
                }
                Err(error) => tracing::warn!(error = %error, "extending a lease failed"),
            }
        }
        for id in lost {
            self.held.remove(&id);
            let reason = "this runner lost its lease on the workflow (it was requeued or \
                          cancelled); its results are not kept"
                .to_string();
            self.send(ServerMessage::Cancel(Cancel {
                assignment: id,
                reason: Some(reason),
            }))
            .await;
        }
    }

    /// Drops an assignment whose lease this runner lost and says so; false.
    async fn lost(&mut self, id: AssignmentId) -> bool {
        self.held.remove(&id);
        let text = format!(
            "assignment {id} is no longer held by this runner ({}): its lease ended \
             or the build was cancelled; nothing was written",
            self.credential.runner_id
        );
        self.error(Some(id), text).await;
        false
    }

    /// Whether this runner already completed the item (its `done` was stored and the
    /// answer lost): such an item is kept, without lease checks, for the `done` sent
    /// again. None when the store could not say.
    async fn completed_here(&mut self, id: AssignmentId) -> Option<bool> {
        match self.state.store.done_item(id, self.runner_id()).await {
            Ok(Some(_)) => {
                self.done_stored.insert(id);
                Some(true)
            }
            Ok(None) => Some(false),
            Err(error) => {
                tracing::warn!(error = %error, "reading a queue item failed");
                None
            }
        }
    }

    /// Stops assignments past their repository's timeout and checks the token every
    /// [`TOKEN_CHECK_EVERY`]; false when the runner sent no heartbeat (nor a message that
    /// was stored) for a whole lease, or its token was revoked (the connection closes).
    async fn check_time(&mut self) -> bool {
        let now = Instant::now();
        let mut overdue = Vec::new();
        for held in self.held.values_mut() {
            if held.deadline <= now && held.stop_reason.is_none() {
                let minutes = held.timeout_minutes;
                held.stop_reason = Some(format!(
                    "the build ran longer than the repository's timeout of {minutes} minute{} \
                     and was stopped; raise the timeout in the repository settings if it \
                     needs longer",
                    if minutes == 1 { "" } else { "s" }
                ));
                overdue.push((held.id(), held.stop_reason.clone()));
            }
        }
        for (assignment, reason) in overdue {
            self.send(ServerMessage::Cancel(Cancel { assignment, reason }))
                .await;
        }
        // On the session's own timer, whatever the runner sends (or does not).
        if now.duration_since(self.token_checked) >= TOKEN_CHECK_EVERY {
            self.check_token().await;
        }
        let silent =
            now.duration_since(self.last_heard) > Duration::from_millis(LEASE_MS.unsigned_abs());
        if silent {
            tracing::warn!(runner.id = %self.runner_id(), "runner silent for a whole lease; closing its connection");
            return false;
        }
        if self.revoked {
            tracing::warn!(runner.id = %self.runner_id(), "runner token revoked; closing its connection");
            return false;
        }
        true
    }

    /// Forwards a person's cancel of a build to the runner running it; its next message
    /// checks the lease in the store (where the cancel ended it).
    async fn on_event(&mut self, event: Result<LiveEvent, broadcast::error::RecvError>) {
        let event = match event {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(_)) => {
                // A cancel may be among the missed events: every lease is checked in the
                // store again (a lost one is cancelled at the next heartbeat).
                self.held.values_mut().for_each(Held::forget_lease);
                return;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if event.kind != EventKind::Build || event.status != RunStatus::Killed {
            return;
        }
        let cancelled: Vec<AssignmentId> = (self.held.values_mut())
            .filter(|h| h.target.repo_id == event.repo_id && h.target.build_number == event.build)
            .map(|h| {
                h.forget_lease();
                h.id()
            })
            .collect();
        for assignment in cancelled {
            self.send(ServerMessage::Cancel(Cancel {
                assignment,
                reason: None,
            }))
            .await;
        }
    }
}

/// Returns when work is announced or at `deadline`, whichever comes first.
async fn wait_for_work(state: &AppState, deadline: Instant) {
    tokio::select! {
        () = state.live.work_announced() => {}
        () = tokio::time::sleep_until(deadline) => {}
    }
}
