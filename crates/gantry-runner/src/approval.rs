//! Approval steps: who decides, and what they decided.

use async_trait::async_trait;
use gantry_pipeline::plan::Step;

use crate::backend::WorkflowId;

/// Decides approval steps (the server asks a person; `gantry exec` may ask on the terminal).
#[async_trait]
pub trait Approver: Send + Sync {
    /// Blocks until someone approves or rejects `step`. The runtime applies the step's
    /// `approval_timeout_secs` and cancellation around this call.
    async fn decide(&self, workflow: &WorkflowId, step: &Step) -> ApprovalDecision;
}

/// What a person decided about an approval step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalDecision {
    /// The step succeeds.
    Approved {
        /// Who approved.
        by: String,
    },
    /// The step fails.
    Rejected {
        /// Who rejected.
        by: String,
        /// Why.
        reason: String,
    },
}

/// The approver used when none is set: rejects every approval step.
pub(crate) struct NoApprover;

#[async_trait]
impl Approver for NoApprover {
    async fn decide(&self, _workflow: &WorkflowId, _step: &Step) -> ApprovalDecision {
        ApprovalDecision::Rejected {
            by: "gantry".into(),
            reason: "no approver".into(),
        }
    }
}
