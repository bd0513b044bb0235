//! Creating builds (from hooks, manual triggers, restarts, promotions), cancelling them and
//! deciding their approval steps.

mod approval;

pub use approval::{ApprovalBoard, DecidedApproval};
