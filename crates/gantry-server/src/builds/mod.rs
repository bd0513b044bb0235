//! Creating builds (hook builds recorded at once and prepared in the background; manual
//! triggers, restarts and promotions prepared first), cancelling them and deciding their
//! approval steps.

mod actions;
mod approval;
mod create;
mod hook;
mod prepare;
mod resolve;

pub use actions::{cancel, decide, promote, restart};
pub use approval::{ApprovalBoard, DecidedApproval};
pub use create::{create, record};
pub use hook::{
    PREPARE_SLOTS, accept_hook, resume_preparations, spawn_preparation, trigger_of_hook,
};
pub use prepare::{Prepared, Trigger, compile, prepare, workflow_of};
pub use resolve::resolve_branch;
