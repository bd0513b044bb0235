//! The durable work queue: one item per workflow, claimed by runners under a lease.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;

use crate::error::StoreResult;
use crate::status::text_enum;
use crate::time::Millis;

text_enum! {
    /// Where a queue item is in its life.
    QueueState, "queue.state" {
        /// Waiting for a runner.
        Pending = "pending",
        /// Held by a runner until its lease ends.
        Claimed = "claimed",
        /// Finished by its runner.
        Done = "done",
        /// Given up (too many lost leases, or its build was interrupted).
        Failed = "failed",
    }
}

/// A unit of work: run one workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueItem {
    /// Store id.
    pub id: i64,
    /// The workflow to run.
    pub workflow_id: i64,
    /// Its build.
    pub build_id: i64,
    /// Its repository.
    pub repo_id: i64,
    /// Labels a runner must have (each key with the same value).
    pub labels: BTreeMap<String, String>,
    /// State.
    pub state: QueueState,
    /// The runner holding it.
    pub runner_id: Option<String>,
    /// The holder's lease ends then.
    pub lease_until: Option<Millis>,
    /// How many times it was claimed.
    pub attempts: i64,
    /// When it was enqueued.
    pub enqueued_at: Millis,
    /// Why it failed.
    pub error: Option<String>,
}

/// How [`QueueStore::complete_item`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Completion {
    /// The runner held the item: it is done now.
    Completed,
    /// The item was already done by this runner: a completion sent again (its first
    /// answer was lost after the commit). Nothing changed.
    AlreadyDone,
    /// The runner does not hold the item (another runner holds it, or it was requeued,
    /// failed, dropped or never claimed by it). Nothing changed.
    NotHeld,
}

/// What `requeue_expired` did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct RequeueOutcome {
    /// Items back to `pending`.
    pub requeued: Vec<QueueItem>,
    /// Items that reached the attempt limit and are now `failed`.
    pub failed: Vec<QueueItem>,
}

/// The work queue.
///
/// Every claim is exclusive: under any number of concurrent claimers each pending item
/// is handed to exactly one. A runner can extend or complete only the items it holds.
#[async_trait]
pub trait QueueStore: Send + Sync {
    /// Enqueues a workflow of a build (its labels are the workflow's).
    async fn enqueue(&self, workflow_id: i64, now: Millis) -> StoreResult<QueueItem>;
    /// Claims the oldest pending item whose labels are a subset of `runner_labels`,
    /// holding it until `now + lease_ms`; counts an attempt. None when nothing fits.
    async fn claim_next(
        &self,
        runner_id: &str,
        runner_labels: &BTreeMap<String, String>,
        now: Millis,
        lease_ms: i64,
    ) -> StoreResult<Option<QueueItem>>;
    /// [`QueueStore::claim_next`] for a runner restricted to some repositories: items of
    /// any other repository are passed over, never claimed (`repos` are `owner/name` or
    /// `owner/*` patterns, as a runner token's scope holds them; None: every repository).
    async fn claim_next_in(
        &self,
        runner_id: &str,
        runner_labels: &BTreeMap<String, String>,
        repos: Option<&[String]>,
        now: Millis,
        lease_ms: i64,
    ) -> StoreResult<Option<QueueItem>>;
    /// Moves the lease of an item this runner holds to `lease_until`; false if it no
    /// longer holds it (the lease was lost and the item requeued or failed).
    async fn extend_lease(
        &self,
        item_id: i64,
        runner_id: &str,
        lease_until: Millis,
    ) -> StoreResult<bool>;
    /// Marks an item this runner holds as done. Idempotent for that runner: once the
    /// item is done by it, the same call answers `AlreadyDone` (a retry after an answer
    /// lost past the commit), while any other runner gets `NotHeld`.
    async fn complete_item(&self, item_id: i64, runner_id: &str) -> StoreResult<Completion>;
    /// The queue item `item_id` if `runner_id` completed it (done, by that runner); None
    /// otherwise. A lease check that fails on such an item is not a lost lease: the
    /// runner's `done` was stored and its answer lost.
    async fn done_item(&self, item_id: i64, runner_id: &str) -> StoreResult<Option<QueueItem>>;
    /// [`complete_item`](QueueStore::complete_item) as a yes/no: true when the item is
    /// done by this runner, now or already; false if it does not hold it.
    async fn complete(&self, item_id: i64, runner_id: &str) -> StoreResult<bool> {
        Ok(self.complete_item(item_id, runner_id).await? != Completion::NotHeld)
    }
    /// Puts items whose lease ended before `now` back to pending, or fails them with a
    /// message once they were claimed `max_attempts` times. A requeued item's workflow may
    /// have started on the lost runner: the server resets or ends its steps.
    async fn requeue_expired(&self, now: Millis, max_attempts: i64) -> StoreResult<RequeueOutcome>;
    /// Pending items, oldest first, with their labels (to say what runner they wait for).
    async fn list_pending(&self) -> StoreResult<Vec<QueueItem>>;
    /// Drops the pending or claimed items of a build (on cancel); returns how many.
    async fn cancel_build_items(&self, build_id: i64, reason: &str) -> StoreResult<u64>;
}

/// True when every required label is present on the runner with the same value.
pub fn labels_fit(
    required: &BTreeMap<String, String>,
    runner_labels: &BTreeMap<String, String>,
) -> bool {
    required
        .iter()
        .all(|(key, value)| runner_labels.get(key) == Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn required_labels_must_be_a_subset_with_equal_values() {
        let runner = labels(&[("os", "linux"), ("arch", "amd64")]);
        assert!(labels_fit(&labels(&[]), &runner));
        assert!(labels_fit(&labels(&[("os", "linux")]), &runner));
        assert!(!labels_fit(&labels(&[("os", "windows")]), &runner));
        assert!(!labels_fit(&labels(&[("gpu", "yes")]), &runner));
    }
}
