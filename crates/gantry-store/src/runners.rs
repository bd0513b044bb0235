//! What the runner protocol needs beyond the queue: a runner's claimed work, by id.

use async_trait::async_trait;

use crate::error::StoreResult;
use crate::queue::QueueItem;

/// Remote runners' view of the queue.
#[async_trait]
pub trait RunnerStore: Send + Sync {
    /// The queue item `item_id` if `runner_id` holds it (claimed, by that runner); None
    /// otherwise. A reconnecting runner resumes only what this returns.
    async fn claimed_item(&self, item_id: i64, runner_id: &str) -> StoreResult<Option<QueueItem>>;
}
