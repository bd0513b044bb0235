//! Creating builds (from hooks, manual triggers, restarts, promotions), cancelling them and
//! deciding their approval steps.

mod actions;
mod approval;
mod create;
mod prepare;
mod resolve;

pub use actions::{cancel, decide, promote, restart};
pub use approval::{ApprovalBoard, DecidedApproval};
pub use create::{PREPARE_SLOTS, create, record, spawn_from_hook, trigger_of_hook};
pub use prepare::{Prepared, Trigger, compile, prepare, workflow_of};
pub use resolve::resolve_branch;
