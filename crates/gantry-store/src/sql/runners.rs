//! Remote runners' reads of the queue.

use async_trait::async_trait;

use super::rows::{QueueRow, queue_columns};
use super::{PostgresStore, SqliteStore};
use crate::error::StoreResult;
use crate::queue::QueueItem;
use crate::runners::RunnerStore;

macro_rules! runner_store_impl {
    ($store:ty) => {
        #[async_trait]
        impl RunnerStore for $store {
            async fn claimed_item(
                &self,
                item_id: i64,
                runner_id: &str,
            ) -> StoreResult<Option<QueueItem>> {
                let row = sqlx::query_as::<_, QueueRow>(concat!(
                    "SELECT ",
                    queue_columns!(),
                    " FROM queue_items WHERE id = $1 AND runner_id = $2 AND state = 'claimed'"
                ))
                .bind(item_id)
                .bind(runner_id)
                .fetch_optional(&self.pool)
                .await?;
                row.map(QueueRow::into_item).transpose()
            }
        }
    };
}

runner_store_impl!(SqliteStore);
runner_store_impl!(PostgresStore);
