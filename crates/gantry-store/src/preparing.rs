//! Hook builds recorded before their pipeline is read: the hand-off between the webhook
//! request and the background task that fetches, compiles and attaches the workflows.
//!
//! The request records the delivery and the build (`pending`, no workflows yet, with the
//! trigger facts the preparation needs) in one transaction, so a server that dies after
//! answering the hook still has the build.
//!
//! A preparation is claimed with a lease before it starts: on several replicas one of them
//! prepares each build at a time, and a build whose preparer died (or failed and released
//! it) is taken again by whichever replica sweeps first once the lease ran out.

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
    /// How many times its preparation was claimed, this claim included.
    pub attempts: i64,
    /// Who holds the claim (`None`: never claimed).
    pub claimed_by: Option<String>,
    /// When the claim ends (0: never claimed or released).
    pub claimed_until: Millis,
}

/// A claim on hook builds' preparation: who takes them, and the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparationClaim {
    /// The preparer (a server replica's id).
    pub claimer: String,
    /// The time now: claims that ended before it can be taken.
    pub now: Millis,
    /// When the new claim ends unless renewed.
    pub until: Millis,
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
    /// Claims one build's preparation when nobody holds a live claim on it (atomic: of
    /// two callers one wins); returns its attempt count, `None` when someone else holds
    /// it or it is not preparing any more.
    async fn claim_preparation(
        &self,
        build_id: i64,
        claim: &PreparationClaim,
    ) -> StoreResult<Option<i64>>;
    /// Claims up to `limit` preparations whose claim ended (or never began), plus those
    /// held by `reclaim_own` (a restarted preparer taking back its own), oldest first.
    async fn claim_stale_preparations(
        &self,
        claim: &PreparationClaim,
        reclaim_own: bool,
        limit: i64,
    ) -> StoreResult<Vec<PreparingBuild>>;
    /// Extends `claimer`'s live claim on a preparation to `until`; false when it lost it.
    async fn renew_preparation(
        &self,
        build_id: i64,
        claimer: &str,
        until: Millis,
    ) -> StoreResult<bool>;
    /// Ends `claimer`'s claim at once (a failed attempt), so the next sweep retries it.
    async fn release_preparation(&self, build_id: i64, claimer: &str) -> StoreResult<bool>;
}
