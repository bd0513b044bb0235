//! What running a workflow needs on the server, whichever runner runs it: the plan
//! adapted to the runner's backend with its secrets ([`plan`]), the names and backend of
//! the built-in runner ([`backend`]), writing reported statuses and lines ([`writer`]),
//! waiting for approvals ([`approver`]) and ending workflows and builds ([`finish`]).
//!
//! Workflows run on runners speaking the runner protocol (crate::runners), the server's
//! built-in runner included. A private repository's clone step gets the repository
//! secrets `netrc_username`, `netrc_password` (and optionally `netrc_machine`) as masked
//! `CI_NETRC_*` variables.

pub(crate) mod approver;
pub mod backend;
pub(crate) mod finish;
pub mod plan;
pub(crate) mod writer;

use gantry_store::{RunStatus, Step};

use crate::live::{EventKind, LiveEvent};
use crate::state::AppState;

pub use finish::finish_build;
pub use writer::step_status;

/// Claims of one workflow before it is given up.
pub(crate) const MAX_ATTEMPTS: i64 = 3;

/// Who a workflow run belongs to: enough to write its statuses and announce them.
#[derive(Debug, Clone)]
pub struct RunTarget {
    /// The id of the runner that runs it.
    pub runner_id: String,
    /// Repository id.
    pub repo_id: i64,
    /// `owner/name`.
    pub repo: String,
    /// Build id.
    pub build_id: i64,
    /// Build number.
    pub build_number: i64,
    /// Workflow id.
    pub workflow_id: i64,
    /// The workflow's steps.
    pub steps: Vec<Step>,
    /// Names of its approval steps.
    pub approval_steps: Vec<String>,
}

impl RunTarget {
    /// Tells `/api/events` followers that the build's status changed.
    pub fn announce_build(&self, state: &AppState, status: RunStatus, error: Option<String>) {
        state.live.publish_event(LiveEvent {
            kind: EventKind::Build,
            repo_id: self.repo_id,
            repo: self.repo.clone(),
            build: self.build_number,
            step: None,
            status,
            error,
        });
    }
}

/// A workflow whose runners kept vanishing ends in `error` (its open steps closed), and
/// its build with it, rather than staying `pending` forever. An error is the store's:
/// nothing (or not all of it) was written, and the caller gives it up again later (a
/// workflow or build already ended stays as it is).
pub(crate) async fn give_up(
    state: &AppState,
    item: &gantry_store::QueueItem,
) -> Result<(), String> {
    let message = item.error.clone().unwrap_or_else(|| {
        format!("no runner finished this workflow in {MAX_ATTEMPTS} attempts; restart the build")
    });
    let store_error = |e: gantry_store::StoreError| format!("reading the build failed: {e}");
    let repo = state
        .store
        .repo_by_id(item.repo_id)
        .await
        .map_err(store_error)?;
    let build = state
        .store
        .build_by_id(item.build_id)
        .await
        .map_err(store_error)?;
    // Deleted: nothing is left to end.
    let (Some(repo), Some(build)) = (repo, build) else {
        return Ok(());
    };
    let target = RunTarget {
        runner_id: String::new(),
        repo_id: repo.id,
        repo: repo.full_name(),
        build_id: build.build.id,
        build_number: build.build.number,
        workflow_id: item.workflow_id,
        steps: Vec::new(),
        approval_steps: Vec::new(),
    };
    finish::finish_workflow(state, &target, RunStatus::Error, Some(message)).await
}
