//! What the runner protocol needs beyond the queue: a runner's claimed work, by id, and
//! the runners connected to every replica (their presence).

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;

use crate::error::StoreResult;
use crate::queue::QueueItem;
use crate::time::Millis;

/// A runner connected to some replica, as that replica last recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunnerPresence {
    /// The connection (unique over replicas; a runner that reconnects gets a new one).
    #[serde(skip)]
    pub connection: String,
    /// `runner:<token id>` (or the in-process runner's id).
    pub runner_id: String,
    /// The name it gave.
    pub name: String,
    /// The labels it is routed by (its token's imposed ones included).
    pub labels: BTreeMap<String, String>,
    /// The repositories its token restricts it to (None: every one).
    pub repos: Option<Vec<String>>,
    /// Workflows at once.
    pub capacity: i64,
    /// The replica it is connected to.
    pub replica: String,
    /// Connected since (unix milliseconds).
    pub connected_at: Millis,
    /// Its replica last said it was connected then.
    pub last_seen: Millis,
}

/// Remote runners' view of the queue, and who is connected where.
#[async_trait]
pub trait RunnerStore: Send + Sync {
    /// The queue item `item_id` if `runner_id` holds it (claimed, by that runner); None
    /// otherwise. A reconnecting runner resumes only what this returns.
    async fn claimed_item(&self, item_id: i64, runner_id: &str) -> StoreResult<Option<QueueItem>>;
    /// Records that exactly `runners` are connected to `replica` now: their rows are
    /// written with `last_seen = now` (a known connection keeps its `connected_at`), the
    /// replica's other rows are removed, and so is every row (of any replica) last seen
    /// before `stale_before`.
    async fn sync_presence(
        &self,
        replica: &str,
        runners: &[RunnerPresence],
        now: Millis,
        stale_before: Millis,
    ) -> StoreResult<()>;
    /// The runners of every replica seen at or after `seen_since`, longest connected
    /// first.
    async fn list_presence(&self, seen_since: Millis) -> StoreResult<Vec<RunnerPresence>>;
}
