//! Webhook delivery ids, so a replayed delivery starts nothing.

use async_trait::async_trait;

use crate::error::StoreResult;
use crate::time::Millis;

/// Delivery ids seen per repository.
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Records a delivery id for a repository: true the first time, false for a replay.
    async fn record_delivery(
        &self,
        repo_id: i64,
        delivery_id: &str,
        received_at: Millis,
    ) -> StoreResult<bool>;
}

/// Refuses delivery ids the table cannot key on.
pub(crate) fn check_delivery_id(delivery_id: &str) -> StoreResult<()> {
    if delivery_id.is_empty() || delivery_id.len() > 200 {
        return Err(crate::error::StoreError::InvalidInput {
            field: "delivery id".to_string(),
            reason: "it must be 1 to 200 characters".to_string(),
        });
    }
    Ok(())
}
