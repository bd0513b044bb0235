//! Approval decisions, announced to the runner that waits on the step.

use gantry_store::Approval;
use tokio::sync::broadcast;

/// A decision recorded in the store for an approval step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecidedApproval {
    /// The step decided.
    pub step_id: i64,
    /// Who, when and how.
    pub approval: Approval,
}

/// Where recorded approval decisions are announced. The runner's approver subscribes,
/// then reads the store (a decision may predate the subscription), then waits here.
#[derive(Debug, Clone)]
pub struct ApprovalBoard {
    sender: broadcast::Sender<DecidedApproval>,
}

impl Default for ApprovalBoard {
    fn default() -> Self {
        ApprovalBoard {
            sender: broadcast::channel(64).0,
        }
    }
}

impl ApprovalBoard {
    /// Decisions announced from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<DecidedApproval> {
        self.sender.subscribe()
    }

    /// Announces a decision already recorded in the store.
    pub fn announce(&self, decided: DecidedApproval) {
        // No subscriber means no runner waits on it now; the store holds the decision.
        let _ = self.sender.send(decided);
    }
}
