//! Approval steps on the server: the runtime waits here until the API records a decision.

use std::collections::HashMap;

use async_trait::async_trait;
use gantry_pipeline::plan::Step;
use gantry_runner::{ApprovalDecision, Approver, WorkflowId};
use gantry_store::Approval;
use tokio::sync::broadcast::error::RecvError;

use crate::state::AppState;

/// Waits for the API's decision on an approval step (the runtime applies the step's
/// approval timeout and cancellation around the wait).
pub struct StoreApprover {
    state: AppState,
    build_id: i64,
    /// Step name → store id, for this workflow.
    step_ids: HashMap<String, i64>,
}

impl StoreApprover {
    /// An approver for the steps of one workflow of a build.
    pub fn new(state: AppState, build_id: i64, step_ids: HashMap<String, i64>) -> Self {
        StoreApprover {
            state,
            build_id,
            step_ids,
        }
    }

    /// The decision already stored for a step, if any.
    async fn stored_decision(&self, step_id: i64) -> Option<Approval> {
        let build = self.state.store.build_by_id(self.build_id).await.ok()??;
        build
            .workflows
            .into_iter()
            .flat_map(|w| w.steps)
            .find(|s| s.id == step_id)
            .and_then(|s| s.approval)
    }
}

fn decision(approval: Approval) -> ApprovalDecision {
    match approval.decision {
        gantry_store::ApprovalDecision::Approved => ApprovalDecision::Approved { by: approval.by },
        gantry_store::ApprovalDecision::Rejected => ApprovalDecision::Rejected {
            reason: format!("rejected by {}", approval.by),
            by: approval.by,
        },
    }
}

#[async_trait]
impl Approver for StoreApprover {
    async fn decide(&self, _workflow: &WorkflowId, step: &Step) -> ApprovalDecision {
        let Some(&step_id) = self.step_ids.get(&step.name) else {
            return ApprovalDecision::Rejected {
                by: "gantry".into(),
                reason: format!("step `{}` is not in the stored build", step.name),
            };
        };
        // Subscribe before reading the store: a decision made in between is not missed.
        let mut board = self.state.approvals.subscribe();
        if let Some(approval) = self.stored_decision(step_id).await {
            return decision(approval);
        }
        loop {
            match board.recv().await {
                Ok(decided) if decided.step_id == step_id => return decision(decided.approval),
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => {
                    if let Some(approval) = self.stored_decision(step_id).await {
                        return decision(approval);
                    }
                }
                Err(RecvError::Closed) => {
                    // The server is going away; the runtime's cancellation ends the wait.
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}
