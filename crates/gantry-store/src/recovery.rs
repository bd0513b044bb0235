//! What the server does at start about work a crash interrupted.

use async_trait::async_trait;
use serde::Serialize;

use crate::error::StoreResult;
use crate::time::Millis;

/// Which claimed work counts as lost.
#[derive(Debug, Clone)]
pub struct RecoveryRequest {
    /// Work whose lease expired before this time is lost.
    pub now: Millis,
    /// Runners known dead whatever their leases say (the server's in-process runner after
    /// a restart).
    pub dead_runners: Vec<String>,
    /// The error message interrupted builds, workflows and steps get.
    pub message: String,
}

/// A step that was running when its work was lost: its container may be left over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InterruptedStep {
    /// The step.
    pub step_id: i64,
    /// Its workflow.
    pub workflow_id: i64,
    /// The runner that ran it.
    pub runner_id: Option<String>,
}

/// A build that ended in `error` because its work was lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InterruptedBuild {
    /// The build.
    pub build_id: i64,
    /// Its repository.
    pub repo_id: i64,
    /// Its number.
    pub number: i64,
    /// Every workflow of it that was still active and is now `error`.
    pub workflow_ids: Vec<i64>,
    /// Steps that were running or blocked (now `error`); pending ones became `skipped`.
    pub steps: Vec<InterruptedStep>,
}

/// What `recover_interrupted` changed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Recovered {
    /// Builds that had started: now `error` with the message.
    pub interrupted: Vec<InterruptedBuild>,
    /// Queue items put back because their workflow had not started.
    pub requeued_items: Vec<i64>,
}

/// Crash recovery.
#[async_trait]
pub trait RecoveryStore: Send + Sync {
    /// Finds claimed queue items whose lease expired (or whose runner is dead). A build
    /// none of whose lost workflows had started gets those items requeued; any other
    /// build ends in `error` with the message, with all its active workflows (`error`),
    /// steps (`error` if started, else `skipped`) and queue items (failed). One
    /// transaction; returns what changed so the server can remove containers.
    async fn recover_interrupted(&self, request: &RecoveryRequest) -> StoreResult<Recovered>;
}
