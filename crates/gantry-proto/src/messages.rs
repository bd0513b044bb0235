//! The messages. Runner → server: [`RunnerMessage`]; server → runner: [`ServerMessage`].

use std::collections::BTreeMap;

use gantry_pipeline::plan::Plan;
use serde::{Deserialize, Serialize};

/// The id of one assignment: the server's queue item id. A runner may act only on the
/// assignments the server gave (or resumed for) the same runner token.
pub type AssignmentId = i64;

/// What a runner sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunnerMessage {
    /// The first message of every connection.
    Hello(Hello),
    /// "Still alive": extends the lease of every assignment the runner holds.
    Heartbeat,
    /// A step (or service) changed state.
    StepUpdate(StepUpdate),
    /// Log lines of one step.
    Logs(Logs),
    /// The assignment ended; sent again until the server acknowledges it.
    Done(Done),
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The hello was accepted.
    Welcome(Welcome),
    /// The hello was refused; the server closes the connection after it.
    Refused(Refused),
    /// Run this workflow.
    Assign(Box<Assign>),
    /// Every message of the assignment up to `seq` is stored: the runner may forget them.
    Ack(Ack),
    /// Stop the assignment (a person cancelled the build, its timeout passed, or the
    /// runner lost its lease).
    Cancel(Cancel),
    /// A person decided an approval step of the assignment.
    Decision(Decision),
    /// A message was refused (it stays refused if sent again); the connection goes on.
    Error(ErrorMessage),
}

/// The runner introduces itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version it speaks ([`crate::PROTOCOL_VERSION`]).
    pub version: u32,
    /// A name for people (the server identifies the runner by its token, not by this).
    pub runner_name: String,
    /// Labels a workflow's `labels:` must be a subset of.
    pub labels: BTreeMap<String, String>,
    /// Workflows it runs at once.
    pub capacity: u32,
    /// Backends it can run steps on (`docker`, `local`); the first is used.
    pub backends: Vec<String>,
    /// Assignments it is still running from an earlier connection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resume: Vec<AssignmentId>,
}

/// The server accepted the hello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The protocol version the server speaks (equal to the runner's).
    pub version: u32,
    /// The id the server knows this runner by (derived from its token).
    pub runner_id: String,
    /// A lease lasts this long after each heartbeat, in milliseconds.
    pub lease_ms: u64,
    /// Send a heartbeat at least this often, in milliseconds.
    pub heartbeat_ms: u64,
    /// Assignments of `Hello::resume` the runner still holds: it resends what was not
    /// acknowledged and goes on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resumed: Vec<AssignmentId>,
    /// Assignments of `Hello::resume` it no longer holds: the runner stops them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<Dropped>,
}

/// An assignment the runner may not resume, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropped {
    /// The assignment.
    pub assignment: AssignmentId,
    /// Why (its lease ended and the work was requeued, the build was cancelled...).
    pub reason: String,
}

/// The server refused the hello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    /// What is wrong and what to do.
    pub reason: String,
    /// The protocol version the server speaks.
    pub server_version: u32,
}

/// Which workflow an assignment runs, for people and for the backend's object names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowInfo {
    /// `owner/name` of the repository.
    pub repo: String,
    /// The build's number in its repository.
    pub build_number: i64,
    /// The workflow's name.
    pub name: String,
    /// The backend-side id of the workflow (names its containers, network, workspace).
    pub key: String,
}

/// Secret values of an assignment, by name. `Debug` shows the names only.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secrets(pub BTreeMap<String, String>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Run a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assign {
    /// The assignment's id.
    pub assignment: AssignmentId,
    /// Which workflow.
    pub workflow: WorkflowInfo,
    /// The compiled plan, adapted to the runner's backend.
    pub plan: Plan,
    /// The secrets this plan uses, and no others; every value is masked in its logs.
    pub secrets: Secrets,
    /// The lease, in milliseconds (heartbeats extend it).
    pub lease_ms: u64,
    /// Lines an earlier attempt of this workflow already stored, by step: this attempt
    /// numbers a step's lines after them, so neither attempt's lines are lost.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub log_offsets: BTreeMap<String, u64>,
}

/// Where a step is, as the runner reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Started.
    Running,
    /// Waiting for a person's approval.
    Blocked,
    /// Ended with exit code 0 (or approved).
    Success,
    /// Ended badly.
    Failure,
    /// Not run (its conditions did not match).
    Skipped,
    /// Stopped by a cancel.
    Cancelled,
}

/// A step changed state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepUpdate {
    /// The assignment.
    pub assignment: AssignmentId,
    /// This message's number within the assignment (from 1, one per message).
    pub seq: u64,
    /// Step (or service) name.
    pub step: String,
    /// Its new state.
    pub state: StepState,
    /// The exit code, once it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// Why it failed, masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The stream a line was written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One masked log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Line number within the step, from 1: a resent line has the same number, so the
    /// server stores it once.
    pub number: u64,
    /// Its stream.
    pub stream: Stream,
    /// The text, masked, without its line ending.
    pub text: String,
    /// Milliseconds since the step started.
    pub elapsed_ms: u64,
}

/// Consecutive lines of one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logs {
    /// The assignment.
    pub assignment: AssignmentId,
    /// This message's number within the assignment.
    pub seq: u64,
    /// Step (or service) name.
    pub step: String,
    /// The lines, numbered consecutively.
    pub lines: Vec<LogLine>,
}

impl Logs {
    /// Checks the lines are numbered consecutively from 1 or more.
    pub fn check_numbering(&self) -> Result<(), String> {
        let Some(first) = self.lines.first().map(|l| l.number) else {
            return Ok(());
        };
        if first == 0 {
            return Err(format!(
                "log lines of step `{}` start at 0; number them from 1",
                self.step
            ));
        }
        for (offset, line) in self.lines.iter().enumerate() {
            if Some(line.number) != first.checked_add(offset as u64) {
                return Err(format!(
                    "log lines of step `{}` are not consecutive: line {} at position {offset}",
                    self.step, line.number
                ));
            }
        }
        Ok(())
    }
}

/// How an assignment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every step succeeded (or was allowed to fail).
    Success,
    /// A step failed.
    Failure,
    /// It was cancelled.
    Cancelled,
    /// It could not be carried out (backend unreachable, unusable plan).
    Error,
}

/// The assignment ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    /// The assignment.
    pub assignment: AssignmentId,
    /// This message's number within the assignment (its last).
    pub seq: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// Why, with `error` (masked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Messages up to `seq` of the assignment are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The assignment.
    pub assignment: AssignmentId,
    /// The highest message number stored.
    pub seq: u64,
}

/// Stop an assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancel {
    /// The assignment.
    pub assignment: AssignmentId,
    /// Why, when it was not a person's cancel (the build's timeout, a lost lease).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A decision on an approval step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The assignment.
    pub assignment: AssignmentId,
    /// The approval step.
    pub step: String,
    /// Approved (true) or rejected.
    pub approved: bool,
    /// Who decided.
    pub by: String,
}

/// A refused message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorMessage {
    /// The assignment it concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment: Option<AssignmentId>,
    /// What was wrong.
    pub message: String,
}

impl RunnerMessage {
    /// The assignment and sequence number of an assignment's message.
    pub fn sequenced(&self) -> Option<(AssignmentId, u64)> {
        match self {
            RunnerMessage::StepUpdate(m) => Some((m.assignment, m.seq)),
            RunnerMessage::Logs(m) => Some((m.assignment, m.seq)),
            RunnerMessage::Done(m) => Some((m.assignment, m.seq)),
            RunnerMessage::Hello(_) | RunnerMessage::Heartbeat => None,
        }
    }
}
