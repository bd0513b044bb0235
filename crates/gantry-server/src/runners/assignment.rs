//! One assignment held by a connected runner: how it starts (or resumes after a
//! reconnect), and how the runner's numbered messages about it are checked and stored.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gantry_pipeline::plan::StepKind;
use gantry_proto::{
    Assign, AssignmentId, Logs, MAX_FRAME_BYTES, Outcome, Secrets, ServerMessage, StepState,
    StepUpdate, Stream, encode,
};
use gantry_runner::mask::Masker;
use gantry_runner::{LogBatch, OutputStream, StepReport, StepStatus};
use gantry_store::{Completion, QueueItem, Repo, RunStatus, StatusChange, Workflow, now_ms};
use tokio::time::Instant;

use super::hello::RunnerInfo;
use crate::run::plan::PreparedRun;
use crate::run::writer::RunWriter;
use crate::run::{RunTarget, backend, finish, plan};
use crate::state::AppState;

/// An assignment the server handed to (or resumed for) this connection's runner.
pub struct Held {
    /// The queue item.
    pub item: QueueItem,
    /// Whose statuses it writes.
    pub target: RunTarget,
    /// Writes step statuses and log lines, for any runner, the built-in one included.
    writer: RunWriter,
    /// The highest message number stored: the next message must be the one after it.
    pub applied: u64,
    /// False after a resume: the server does not know which messages the runner had
    /// acknowledged, and the first it sends again (its oldest unacknowledged) sets
    /// [`Held::applied`].
    pub applied_known: bool,
    /// When the repository's timeout stops it.
    pub deadline: Instant,
    /// The repository's timeout, for the message.
    pub timeout_minutes: i64,
    /// Why the server stopped it (timeout, lost lease), when it did.
    pub stop_reason: Option<String>,
    /// The plan's approval steps, for the approver.
    pub approval_steps: Vec<gantry_pipeline::plan::Step>,
    /// The task waiting for each approval step's decision, by step name: one per step,
    /// however often the runner reports it blocked (aborted when the assignment ends).
    pub waiters: HashMap<String, tokio::task::AbortHandle>,
    /// The lease this server last wrote for the assignment.
    lease: Lease,
    /// The assignment's secret values: masked again in whatever the runner reports, in
    /// case a runner does not (security rule 9).
    masker: Masker,
}

/// The longest error message stored from a runner's report; the rest is cut.
const MAX_ERROR_BYTES: usize = 4 * 1024;

impl Drop for Held {
    fn drop(&mut self) {
        for waiter in self.waiters.values() {
            waiter.abort();
        }
    }
}

/// When this server last wrote an assignment's lease, so that a heartbeat or a log
/// batch does not have to write it again (each write also checks the runner still holds
/// the item).
///
/// Trusting it is safe while most of it remains: a lease written to end at T cannot pass
/// to another runner before T (the lease keeper requeues only items whose lease ended),
/// and a cancelled build's `killed` event makes the session forget it
/// ([`Held::forget_lease`]). A requeued item claimed again in this process (which a test
/// can do before T by requeueing "in the future") moves [`reclaims`], and every held
/// lease is checked in the store again before the next write; so does a notification gap
/// between replicas ([`forget_all_leases`]), which may have lost a `killed` event.
///
/// What remains of it is measured on the monotonic clock from just before the write (a
/// lease is always written [`LEASE`] long), never from the wall clock: a clock stepped
/// back cannot make the session trust a lease longer than it runs.
#[derive(Debug, Clone, Copy, Default)]
struct Lease {
    /// When (just before) the lease was written last (None: never, or forgotten).
    written: Option<Instant>,
    /// [`reclaims`] when it was written.
    epoch: u64,
}

impl Lease {
    /// How long since it was written; None when it was not.
    fn age(&self) -> Option<Duration> {
        self.written
            .map(|at| Instant::now().saturating_duration_since(at))
    }

    fn due(&self) -> bool {
        self.age()
            .is_none_or(|age| age > LEASE - LEASE_REWRITE_BELOW)
            || self.epoch != reclaims()
    }

    fn runs(&self) -> bool {
        self.age().is_some_and(|age| age < LEASE) && self.epoch == reclaims()
    }
}

/// How long a lease written now runs.
const LEASE: Duration = Duration::from_millis(super::LEASE_MS.unsigned_abs());

/// A cached lease is written again once less than this remains (a quarter of the lease
/// passed): every heartbeat (a third of a lease apart) writes it, the log batches between
/// two heartbeats do not.
const LEASE_REWRITE_BELOW: Duration = Duration::from_millis(LEASE.as_millis() as u64 * 3 / 4);

/// Requeued items claimed again by this process, and events this process may have missed
/// (see [`Lease`] and [`forget_all_leases`]).
static RECLAIMS: AtomicU64 = AtomicU64::new(0);

/// Moves each time a requeued item is claimed again by this process, or a `killed` event
/// may have been missed: a held lease written before is checked in the store again.
pub fn reclaims() -> u64 {
    RECLAIMS.load(Ordering::SeqCst)
}

/// Every lease this process cached is checked in the store again before the next message
/// about it is stored (a cancel may have been missed: another replica's `killed` event
/// lost in a notification gap or while listening reconnected).
pub fn forget_all_leases() {
    RECLAIMS.fetch_add(1, Ordering::SeqCst);
}

/// Why a runner's `done` was not stored.
#[derive(Debug)]
pub enum Unfinished {
    /// The runner no longer holds the item: it must stop the assignment.
    NotHeld(String),
    /// The store failed: the assignment stays held and the runner's `done`, not
    /// acknowledged, comes again.
    Retry(String),
}

/// Why a runner's step update or log batch was not stored.
#[derive(Debug)]
pub enum Unstored {
    /// Refused for good (a step outside the workflow, lines not numbered in order, an
    /// approval nobody gave): sent again, it would be refused again.
    Refused(String),
    /// The store failed: not acknowledged, the message comes again (what was written of
    /// it stays, and writing it again changes nothing more: statuses move only forward,
    /// lines are kept once by number).
    Retry(String),
}

impl From<String> for Unstored {
    fn from(message: String) -> Self {
        Unstored::Refused(message)
    }
}

impl From<Unstored> for String {
    fn from(unstored: Unstored) -> Self {
        match unstored {
            Unstored::Refused(message) | Unstored::Retry(message) => message,
        }
    }
}

/// Why an assignment was not resumed.
#[derive(Debug)]
pub enum Unresumable {
    /// Gone for good (its build or repository deleted, its plan unusable): the runner is
    /// told to drop it.
    Dropped(String),
    /// The store failed: the runner keeps it and connects again.
    Store(String),
}

impl From<&str> for Unresumable {
    fn from(message: &str) -> Self {
        Unresumable::Dropped(message.to_string())
    }
}

impl From<Unresumable> for String {
    fn from(unresumable: Unresumable) -> Self {
        match unresumable {
            Unresumable::Dropped(message) | Unresumable::Store(message) => message,
        }
    }
}

impl From<plan::Unprepared> for Unresumable {
    fn from(unprepared: plan::Unprepared) -> Self {
        match unprepared {
            plan::Unprepared::Unusable(message) => Unresumable::Dropped(message),
            plan::Unprepared::Store(message) => Unresumable::Store(message),
        }
    }
}

/// What loading an item found.
struct Loaded {
    repo: Repo,
    workflow: Workflow,
    target: RunTarget,
    build_ended: bool,
}

async fn load(state: &AppState, item: &QueueItem, runner_id: &str) -> Result<Loaded, Unresumable> {
    let store_error =
        |e: gantry_store::StoreError| Unresumable::Store(format!("reading the build failed: {e}"));
    let repo = (state.store.repo_by_id(item.repo_id).await)
        .map_err(store_error)?
        .ok_or("its repository was deleted")?;
    let build = (state.store.build_by_id(item.build_id).await)
        .map_err(store_error)?
        .ok_or("the build was deleted")?;
    let detail = build
        .workflows
        .iter()
        .find(|w| w.workflow.id == item.workflow_id)
        .ok_or("the workflow is not part of its build any more")?;
    let target = RunTarget {
        runner_id: runner_id.to_string(),
        repo_id: repo.id,
        repo: repo.full_name(),
        build_id: build.build.id,
        build_number: build.build.number,
        workflow_id: item.workflow_id,
        steps: detail.steps.clone(),
        approval_steps: (detail.steps.iter())
            .filter(|s| s.kind == "approval")
            .map(|s| s.name.clone())
            .collect(),
    };
    Ok(Loaded {
        build_ended: build.build.status.is_terminal() || detail.workflow.status.is_terminal(),
        workflow: detail.workflow.clone(),
        repo,
        target,
    })
}

/// `written`: when (just before) the claim wrote the item's lease; None for a resumed item
/// (the session writes it again).
fn held(
    state: &AppState,
    item: QueueItem,
    loaded: &Loaded,
    prepared: &PreparedRun,
    written: Option<Instant>,
) -> Held {
    let plan = &prepared.plan;
    let minutes = loaded.repo.timeout_minutes.max(1);
    let limit = Duration::from_secs(u64::try_from(minutes).unwrap_or(60) * 60);
    // A resumed workflow keeps the deadline of its start, not of the reconnect.
    let ran = (loaded.workflow.started_at)
        .map(|at| Duration::from_millis(now_ms().saturating_sub(at).unsigned_abs()))
        .unwrap_or_default();
    Held {
        item,
        writer: RunWriter::new(state.clone(), loaded.target.clone()),
        target: loaded.target.clone(),
        applied: 0,
        applied_known: true,
        deadline: Instant::now() + limit.saturating_sub(ran),
        timeout_minutes: minutes,
        stop_reason: None,
        approval_steps: (plan.steps.iter())
            .filter(|s| s.kind == StepKind::Approval)
            .cloned()
            .collect(),
        waiters: HashMap::new(),
        lease: Lease {
            written,
            epoch: reclaims(),
        },
        masker: Masker::new(prepared.secrets.values().map(String::as_str)),
    }
}

/// Starts a claimed item (`claimed`: just before the claim wrote its lease): the
/// assignment message to send, or None when its build already ended. An error is why the
/// workflow cannot run (the caller ends it with that message).
pub async fn start(
    state: &AppState,
    runner: &RunnerInfo,
    runner_id: &str,
    item: QueueItem,
    claimed: Instant,
) -> Result<Option<(Held, ServerMessage)>, String> {
    if item.attempts > 1 {
        // It was requeued: the runner that held it before may still be connected here.
        RECLAIMS.fetch_add(1, Ordering::SeqCst);
    }
    let loaded = load(state, &item, runner_id).await?;
    if loaded.build_ended {
        return Ok(None);
    }
    // The clone step is adapted to the runner's backend, not the server's.
    let mut config = (*state.config).clone();
    config.backend = runner.backend;
    let view = AppState {
        config: Arc::new(config),
        ..state.clone()
    };
    let prepared = plan::prepare(&view, &loaded.repo, &loaded.workflow).await?;
    let log_offsets = if item.attempts > 1 {
        stored_lines(state, &loaded.target).await?
    } else {
        BTreeMap::new()
    };
    let assign = Assign {
        assignment: item.id,
        workflow: gantry_proto::WorkflowInfo {
            repo: loaded.target.repo.clone(),
            build_number: loaded.target.build_number,
            name: loaded.workflow.name.clone(),
            key: backend::workflow_id(loaded.target.build_id, item.workflow_id).0,
        },
        secrets: Secrets(prepared.secrets.clone()),
        lease_ms: super::LEASE_MS.unsigned_abs(),
        log_offsets,
        plan: prepared.plan.clone(),
    };
    let message = ServerMessage::Assign(Box::new(assign));
    check_frame_size(&message)?;
    // After the size check: building the masker for a huge secret is slow.
    let held = held(state, item, &loaded, &prepared, Some(claimed));
    mark_running(state, &loaded.target).await;
    Ok(Some((held, message)))
}

/// Refuses an assignment the runner could not read: every runner that claimed it would
/// otherwise fail on it in turn.
fn check_frame_size(message: &ServerMessage) -> Result<(), String> {
    let bytes = encode(message).len();
    if bytes <= MAX_FRAME_BYTES {
        return Ok(());
    }
    let mib = |bytes: usize| bytes as f64 / (1024.0 * 1024.0);
    Err(format!(
        "the plan with its secrets is {:.1} MiB; the limit is {:.0} MiB: make the pipeline \
         or the secrets it uses smaller",
        mib(bytes),
        mib(MAX_FRAME_BYTES)
    ))
}

/// Re-attaches an assignment the runner still holds after it reconnected; a store error
/// is [`Unresumable::Store`], not a reason to drop it.
pub async fn resume(
    state: &AppState,
    runner_id: &str,
    item: QueueItem,
) -> Result<Held, Unresumable> {
    let loaded = load(state, &item, runner_id).await?;
    // Read again for the secret values to mask (the runner keeps its adapted plan).
    let prepared = plan::prepare(state, &loaded.repo, &loaded.workflow).await?;
    let mut held = held(state, item, &loaded, &prepared, None);
    held.applied_known = false;
    Ok(held)
}

/// The last line number each started step stored in an earlier attempt (a runner that
/// died mid-step): the new attempt numbers its lines after them.
async fn stored_lines(
    state: &AppState,
    target: &RunTarget,
) -> Result<BTreeMap<String, u64>, String> {
    let mut offsets = BTreeMap::new();
    for step in target
        .steps
        .iter()
        .filter(|s| s.status != RunStatus::Pending)
    {
        let mut last = None;
        loop {
            let page = (state.store)
                .read_logs(step.id, last, gantry_store::MAX_LOG_PAGE)
                .await
                .map_err(|e| format!("reading the earlier attempt's log failed: {e}"))?;
            match page.last() {
                Some(line) => last = Some(line.number),
                None => break,
            }
        }
        if let Some(number) = last {
            offsets.insert(step.name.clone(), number.unsigned_abs());
        }
    }
    Ok(offsets)
}

/// The workflow and its build are running (the build's status moves only forward).
async fn mark_running(state: &AppState, target: &RunTarget) {
    let change = StatusChange {
        status: RunStatus::Running,
        at: now_ms(),
        error: None,
    };
    if let Err(error) = (state.store)
        .update_workflow_status(target.workflow_id, &change)
        .await
    {
        tracing::error!(workflow.id = target.workflow_id, error = %error, "storing a workflow status failed");
    }
    match state
        .store
        .update_build_status(target.build_id, &change)
        .await
    {
        Ok(true) => target.announce_build(state, RunStatus::Running, None),
        Ok(false) => {}
        Err(error) => {
            tracing::error!(build.id = target.build_id, error = %error, "storing a build status failed")
        }
    }
}

impl Held {
    /// The assignment's id.
    pub fn id(&self) -> AssignmentId {
        self.item.id
    }

    /// Approval steps waiting for a person (after a resume, their waits start again).
    pub fn blocked_approvals(&self) -> Vec<String> {
        (self.target.steps.iter())
            .filter(|s| {
                s.status == RunStatus::Blocked && self.target.approval_steps.contains(&s.name)
            })
            .map(|s| s.name.clone())
            .collect()
    }

    /// True when the lease must be written (which checks that the runner still holds the
    /// item) before the runner's next message is stored: less than
    /// [`LEASE_REWRITE_BELOW`] of it remains, it was forgotten, or a requeued item was
    /// claimed again since it was written.
    pub fn lease_due(&self) -> bool {
        self.lease.due()
    }

    /// The store holds a lease written (to run [`LEASE`]) just after `written`; `epoch`
    /// is [`reclaims`] read before the write.
    pub fn lease_written(&mut self, written: Instant, epoch: u64) {
        self.lease = Lease {
            written: Some(written),
            epoch,
        };
    }

    /// The build may have been cancelled: the next message checks the store again.
    pub fn forget_lease(&mut self) {
        self.lease = Lease::default();
    }

    /// True while a lease this server wrote still runs: nobody else can hold the item.
    pub fn lease_runs(&self) -> bool {
        self.lease.runs()
    }

    fn has_step(&self, name: &str) -> bool {
        self.target.steps.iter().any(|s| s.name == name)
    }

    /// Stores a step's new state; refused for a step outside the workflow, or an approval
    /// step's success without a recorded approval; [`Unstored::Retry`] when the store
    /// failed.
    pub async fn write_step(
        &mut self,
        state: &AppState,
        update: &StepUpdate,
    ) -> Result<(), Unstored> {
        if !self.has_step(&update.step) {
            return Err(Unstored::Refused(format!(
                "step `{}` is not part of assignment {}; nothing was written",
                update.step,
                self.id()
            )));
        }
        self.check_approval(state, update).await?;
        let report = StepReport {
            status: step_status(update.state),
            exit_code: update.exit_code,
            error: update.error.as_deref().map(|e| self.clean_error(e)),
            ..StepReport::pending(&update.step)
        };
        self.writer
            .step_changed(&report)
            .await
            .map_err(|e| self.retry_message(e))
    }

    /// Stores log lines (a line already stored is kept once); refused for a step outside
    /// the workflow or lines not numbered consecutively; [`Unstored::Retry`] when the
    /// store failed.
    pub async fn write_logs(&mut self, logs: &Logs) -> Result<(), Unstored> {
        if !self.has_step(&logs.step) {
            return Err(Unstored::Refused(format!(
                "step `{}` is not part of assignment {}; no line was written",
                logs.step,
                self.id()
            )));
        }
        logs.check_numbering()?;
        let Some(first) = logs.lines.first() else {
            return Ok(());
        };
        let mut batch = LogBatch::new(logs.step.clone(), first.number);
        for line in &logs.lines {
            let stream = match line.stream {
                Stream::Stdout => OutputStream::Stdout,
                Stream::Stderr => OutputStream::Stderr,
            };
            batch.push(stream, &self.masker.mask(&line.text), line.elapsed_ms);
        }
        self.writer
            .logs(&batch)
            .await
            .map_err(|e| self.retry_message(e))
    }

    /// A store failure while writing a runner's message: it comes again.
    fn retry_message(&self, error: String) -> Unstored {
        Unstored::Retry(format!(
            "the server could not store a message of assignment {}: {error}; it is not \
             acknowledged and comes again",
            self.id()
        ))
    }

    /// Completes the queue item and records how the assignment ended; refused (nothing
    /// stored) when the runner no longer holds the item.
    pub async fn finish(
        &self,
        state: &AppState,
        outcome: Outcome,
        error: Option<String>,
    ) -> Result<(), Unfinished> {
        // Completing first: only the holder's completion succeeds, so a runner whose lease
        // ended between the lease check and here cannot end another runner's workflow. A
        // `done` sent again after its completion committed (the answer was lost) finds the
        // item done by this runner: the statuses below are written again, which changes
        // nothing once they are stored (a status only moves forward; the same final status
        // again is no change, publishes nothing and keeps `finished_at`).
        let runner_id = &self.target.runner_id;
        match state.store.complete_item(self.item.id, runner_id).await {
            Ok(Completion::Completed | Completion::AlreadyDone) => {}
            Ok(Completion::NotHeld) => {
                return Err(Unfinished::NotHeld(format!(
                    "assignment {} is no longer held by this runner ({runner_id}): its lease \
                     ended or the build was cancelled; its outcome was not stored",
                    self.id()
                )));
            }
            Err(error) => {
                tracing::error!(queue.item = self.item.id, error = %error, "completing a queue item failed");
                return Err(Unfinished::Retry(format!(
                    "the server could not complete assignment {}: {error}; its done is \
                     sent again",
                    self.id()
                )));
            }
        }
        let error = error.map(|e| self.clean_error(&e));
        let (status, error) = reported(outcome, self.stop_reason.as_deref(), error);
        let steps = self.stored_steps(state).await;
        let (status, error) = worsened(status, error, &steps);
        // The item is done: a `done` sent again finds it done by this runner and writes
        // the statuses again (see above).
        finish::finish_workflow(state, &self.target, status, error)
            .await
            .map_err(|e| {
                Unfinished::Retry(format!(
                    "the server completed assignment {} but could not store how it ended: \
                     {e}; its done is sent again",
                    self.id()
                ))
            })
    }

    /// A runner's error message as stored: secrets masked, at most [`MAX_ERROR_BYTES`].
    pub fn clean_error(&self, error: &str) -> String {
        let masked = self.masker.mask(error);
        if masked.len() <= MAX_ERROR_BYTES {
            return masked.into_owned();
        }
        let mut end = MAX_ERROR_BYTES;
        while !masked.is_char_boundary(end) {
            end -= 1;
        }
        format!(
            "{}… (cut at {} KiB)",
            &masked[..end],
            MAX_ERROR_BYTES / 1024
        )
    }

    /// The workflow's steps as stored (names and statuses).
    async fn stored_steps(&self, state: &AppState) -> Vec<(String, RunStatus)> {
        (self.read_steps(state).await.into_iter())
            .map(|s| (s.name, s.status))
            .collect()
    }

    /// The workflow's steps as stored now.
    async fn read_steps(&self, state: &AppState) -> Vec<gantry_store::Step> {
        let Ok(Some(build)) = state.store.build_by_id(self.target.build_id).await else {
            return Vec::new();
        };
        (build.workflows.into_iter())
            .filter(|w| w.workflow.id == self.target.workflow_id)
            .flat_map(|w| w.steps)
            .collect()
    }

    /// An approval step succeeds only once a person's approval is stored: the runner
    /// cannot approve for them.
    async fn check_approval(&self, state: &AppState, update: &StepUpdate) -> Result<(), String> {
        let is_approval = self.target.approval_steps.contains(&update.step);
        if !is_approval || update.state != StepState::Success {
            return Ok(());
        }
        let approved = (self.read_steps(state).await.into_iter())
            .find(|s| s.name == update.step)
            .and_then(|s| s.approval)
            .is_some_and(|a| a.decision == gantry_store::ApprovalDecision::Approved);
        if approved {
            return Ok(());
        }
        Err(format!(
            "approval step `{}` of assignment {} has no recorded approval; its success was \
             not stored (it succeeds once a person approves it)",
            update.step,
            self.id()
        ))
    }
}

/// The workflow's status from the runner's outcome (`error`: its message, cleaned) and
/// why the server stopped it, if it did: a run the server stopped (a timeout) ends in
/// `error` with the server's reason, whether the runner reports it cancelled or, as it
/// does while shutting down, in error for a reason of its own.
fn reported(
    outcome: Outcome,
    stop_reason: Option<&str>,
    error: Option<String>,
) -> (RunStatus, Option<String>) {
    match (outcome, stop_reason) {
        (Outcome::Success, _) => (RunStatus::Success, None),
        (Outcome::Failure, _) => (RunStatus::Failure, None),
        (Outcome::Cancelled | Outcome::Error, Some(reason)) => {
            (RunStatus::Error, Some(reason.to_string()))
        }
        (Outcome::Cancelled, None) => (RunStatus::Killed, None),
        (Outcome::Error, None) => (
            RunStatus::Error,
            Some(error.unwrap_or_else(|| "the run failed on the runner".into())),
        ),
    }
}

/// The workflow's status: what its stored steps say, which the runner's report can only
/// make worse (a runner cannot end a workflow in success while a step failed or never
/// finished).
fn worsened(
    reported: RunStatus,
    error: Option<String>,
    steps: &[(String, RunStatus)],
) -> (RunStatus, Option<String>) {
    let from_steps = finish::build_status(&steps.iter().map(|(_, s)| *s).collect::<Vec<_>>());
    let unfinished = (steps.iter())
        .find(|(_, s)| !matches!(s, RunStatus::Success | RunStatus::Skipped))
        .filter(|_| {
            !matches!(
                from_steps,
                RunStatus::Failure | RunStatus::Error | RunStatus::Killed
            )
        });
    let (derived, derived_error) = match unfinished {
        Some((name, status)) if reported == RunStatus::Success => (
            RunStatus::Error,
            Some(format!(
                "the runner reported success while step `{name}` was {}; restart the build",
                status.as_str()
            )),
        ),
        _ => (from_steps, None),
    };
    if finish::build_status(&[reported, derived]) == reported {
        (reported, error)
    } else {
        (derived, derived_error)
    }
}

fn step_status(state: StepState) -> StepStatus {
    match state {
        StepState::Running => StepStatus::Running,
        StepState::Blocked => StepStatus::Blocked,
        StepState::Success => StepStatus::Success,
        StepState::Failure => StepStatus::Failure,
        StepState::Skipped => StepStatus::Skipped,
        StepState::Cancelled => StepStatus::Cancelled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_reason_to_stop_a_run_is_kept_over_the_runners() {
        let timeout = Some("the repository's timeout (1 min) passed");
        let shut_down = || Some("server shut down".to_string());
        assert_eq!(
            reported(Outcome::Error, timeout, shut_down()),
            (RunStatus::Error, timeout.map(String::from))
        );
        assert_eq!(
            reported(Outcome::Cancelled, timeout, None),
            (RunStatus::Error, timeout.map(String::from))
        );
        assert_eq!(
            reported(Outcome::Error, None, shut_down()),
            (RunStatus::Error, shut_down())
        );
        assert_eq!(
            reported(Outcome::Cancelled, None, None),
            (RunStatus::Killed, None)
        );
        assert_eq!(
            reported(Outcome::Success, timeout, None),
            (RunStatus::Success, None)
        );
    }

    #[test]
    fn a_cached_lease_is_due_again_once_events_may_have_been_missed() {
        let lease = Lease {
            written: Some(Instant::now()),
            epoch: reclaims(),
        };
        forget_all_leases();
        assert!(lease.due());
        assert!(!lease.runs());
    }

    #[test]
    fn a_cached_lease_is_measured_on_the_monotonic_clock_from_its_write() {
        let fresh = Lease {
            written: Some(Instant::now()),
            epoch: 0,
        };
        let quarter_ago = Lease {
            written: Instant::now().checked_sub(LEASE / 4 + Duration::from_millis(100)),
            ..fresh
        };
        let ended = Lease {
            written: Instant::now().checked_sub(LEASE + Duration::from_millis(100)),
            ..fresh
        };
        // Epochs may move while other tests run: compare with the current one.
        let at = |lease: Lease| Lease {
            epoch: reclaims(),
            ..lease
        };
        assert!(!at(fresh).due() && at(fresh).runs());
        assert!(at(quarter_ago).due() && at(quarter_ago).runs());
        assert!(at(ended).due() && !at(ended).runs());
        assert!(Lease::default().due() && !Lease::default().runs());
    }
}
