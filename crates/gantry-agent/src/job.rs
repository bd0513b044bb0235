//! One assignment running on this host, and what it reports in protocol terms.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use gantry_pipeline::plan::Step;
use gantry_proto::{Assign, AssignmentId, LogLine, Outcome, RunnerMessage, StepState, Stream};
use gantry_runner::{
    ApprovalDecision, Approver, OutputStream, PipelineStatus, RunConfig, RunEvent, RunOutcome,
    Runtime, StepStatus, WorkflowId,
};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::RunnerSetup;

/// Events a run may have in flight (each log batch holds up to 1024 lines).
const EVENT_BUFFER: usize = 64;

/// What a running assignment tells the connection.
pub enum JobEvent {
    /// A step changed state or wrote lines.
    Run(RunEvent),
    /// The run ended (after its last event).
    Finished(RunOutcome),
}

/// Runtimes waiting for a decision, by assignment and step.
type Waiting = HashMap<(AssignmentId, String), oneshot::Sender<ApprovalDecision>>;

/// Approval decisions the server sent, by assignment and step, for the waiting runtime.
#[derive(Clone, Default)]
pub struct Decisions {
    waiting: Arc<Mutex<Waiting>>,
}

impl Decisions {
    /// Hands a decision to the runtime waiting for it (none waiting: ignored).
    pub fn decide(&self, assignment: AssignmentId, step: &str, decision: ApprovalDecision) {
        let waiting = self
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(assignment, step.to_string()));
        if let Some(sender) = waiting {
            let _ = sender.send(decision);
        }
    }
}

/// Waits for the server's decision (the runtime reports the step `blocked`, which makes
/// the server ask a person).
struct RemoteApprover {
    assignment: AssignmentId,
    decisions: Decisions,
}

#[async_trait]
impl Approver for RemoteApprover {
    async fn decide(&self, _workflow: &WorkflowId, step: &Step) -> ApprovalDecision {
        let (tx, rx) = oneshot::channel();
        self.decisions
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((self.assignment, step.name.clone()), tx);
        match rx.await {
            Ok(decision) => decision,
            // The assignment went away; the runtime's cancellation ends the wait.
            Err(_) => std::future::pending().await,
        }
    }
}

/// A job's event, tagged with its assignment and the job's generation (an assignment
/// given again to this runner runs as a new job; the old one's late events are told
/// apart).
pub type Tagged = (AssignmentId, u64, JobEvent);

/// Starts the assignment; its events arrive on `events`, tagged with its id and
/// `generation`.
pub fn spawn(
    setup: &RunnerSetup,
    assign: Assign,
    generation: u64,
    events: mpsc::Sender<Tagged>,
    decisions: Decisions,
) -> CancellationToken {
    let cancel = CancellationToken::new();
    let config = RunConfig {
        secrets: assign.secrets.0,
        ..RunConfig::default()
    };
    let approver = RemoteApprover {
        assignment: assign.assignment,
        decisions,
    };
    let runtime =
        Runtime::new(Arc::clone(&setup.backend), config).with_approver(Arc::new(approver));
    let (id, token) = (assign.assignment, cancel.clone());
    tokio::spawn(async move {
        let (tx, mut rx) = mpsc::channel(EVENT_BUFFER);
        let forward = {
            let events = events.clone();
            tokio::spawn(async move {
                while let Some(event) = rx.recv().await {
                    if events
                        .send((id, generation, JobEvent::Run(event)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            })
        };
        let key = WorkflowId(assign.workflow.key.clone());
        let outcome = runtime.run(&key, &assign.plan, tx, token).await;
        let _ = forward.await;
        let _ = events
            .send((id, generation, JobEvent::Finished(outcome)))
            .await;
    });
    cancel
}

/// The protocol message for a run event (None for states the server does not record).
pub fn message(
    assignment: AssignmentId,
    seq: u64,
    event: JobEvent,
    log_offsets: &BTreeMap<String, u64>,
) -> Option<RunnerMessage> {
    match event {
        JobEvent::Run(RunEvent::Step(report)) => {
            Some(RunnerMessage::StepUpdate(gantry_proto::StepUpdate {
                assignment,
                seq,
                state: step_state(report.status)?,
                step: report.step,
                exit_code: report.exit_code,
                error: report.error,
            }))
        }
        JobEvent::Run(RunEvent::Logs(batch)) => {
            let offset = log_offsets.get(batch.step()).copied().unwrap_or(0);
            Some(RunnerMessage::Logs(gantry_proto::Logs {
                assignment,
                seq,
                step: batch.step().to_string(),
                lines: batch
                    .iter()
                    .map(|line| LogLine {
                        number: line.number.saturating_add(offset),
                        stream: match line.stream {
                            OutputStream::Stdout => Stream::Stdout,
                            OutputStream::Stderr => Stream::Stderr,
                        },
                        text: line.text.to_string(),
                        elapsed_ms: line.elapsed_ms,
                    })
                    .collect(),
            }))
        }
        JobEvent::Finished(outcome) => Some(RunnerMessage::Done(gantry_proto::Done {
            assignment,
            seq,
            outcome: match outcome.status {
                PipelineStatus::Success => Outcome::Success,
                PipelineStatus::Failure => Outcome::Failure,
                PipelineStatus::Cancelled => Outcome::Cancelled,
                PipelineStatus::Error => Outcome::Error,
            },
            error: outcome.error,
        })),
    }
}

fn step_state(status: StepStatus) -> Option<StepState> {
    Some(match status {
        StepStatus::Pending => return None,
        StepStatus::Running => StepState::Running,
        StepStatus::Blocked => StepState::Blocked,
        StepStatus::Success => StepState::Success,
        StepStatus::Failure => StepState::Failure,
        StepStatus::Skipped => StepState::Skipped,
        StepStatus::Cancelled => StepState::Cancelled,
    })
}
