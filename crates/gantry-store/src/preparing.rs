//! Hook builds recorded before their pipeline is read: the hand-off between the webhook
//! request and the background task that fetches, compiles and attaches the workflows.
//!
//! The request records the delivery and the build (`pending`, no workflows yet, with the
//! trigger facts the preparation needs) in one transaction, so a server that dies after
//! answering the hook still has the build, and prepares it again at its next start.

use async_trait::async_trait;

use crate::builds::{Build, NewBuild, NewWorkflow};
use crate::error::StoreResult;
use crate::status::RunStatus;
use crate::time::Millis;

/// A build still waiting for its pipeline to be read and compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparingBuild {
    /// The build (`pending`, no workflows).
    pub build: Build,
    /// The trigger facts recorded with it (JSON text, the server's own shape).
    pub trigger: String,
}

/// What preparing a build found.
#[derive(Debug, Clone)]
pub struct Preparation {
    /// The commit built (a tag object peeled to its commit).
    pub sha: String,
    /// `pending` (workflows attached and enqueued), `error` or `skipped`.
    pub status: RunStatus,
    /// Why it is in `error` or `skipped`.
    pub error: Option<String>,
    /// Compile diagnostics, JSON text.
    pub diagnostics: Option<String>,
    /// One per plan (none unless `pending`).
    pub workflows: Vec<NewWorkflow>,
    /// When the preparation ended (the queue time of the workflows).
    pub at: Millis,
}

/// Hook builds between the request and their preparation.
#[async_trait]
pub trait PreparationStore: Send + Sync {
    /// In one transaction: records the delivery id and, unless it is a replay, creates
    /// `build` (which must be `pending`) without workflows and keeps `trigger` for its
    /// preparation. `None` for a replayed delivery: nothing is created.
    async fn record_hook_build(
        &self,
        delivery_id: &str,
        build: &NewBuild,
        trigger: &str,
    ) -> StoreResult<Option<Build>>;
    /// Builds recorded by [`record_hook_build`](Self::record_hook_build) and not prepared
    /// yet, oldest first.
    async fn preparing_builds(&self) -> StoreResult<Vec<PreparingBuild>>;
    /// Ends a build's preparation in one transaction: sets its commit and status and
    /// attaches the workflows (enqueued when `pending`). False, changing nothing but the
    /// trigger, when the build is not preparing any more (it was cancelled meanwhile, or
    /// another task prepared it).
    async fn finish_preparation(&self, build_id: i64, outcome: &Preparation) -> StoreResult<bool>;
}
