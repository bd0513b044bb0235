//! Remote runners' reads of the queue, and the runners table (who is connected where).

use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::FromRow;

use super::rows::{QueueRow, json_list, json_map, labels_json, queue_columns};
use super::{PostgresStore, SqliteStore};
use crate::error::StoreResult;
use crate::queue::QueueItem;
use crate::runners::{RunnerPresence, RunnerStore};
use crate::time::Millis;

#[derive(FromRow)]
struct PresenceRow {
    connection: String,
    runner_id: String,
    name: String,
    labels: String,
    repos: Option<String>,
    capacity: i64,
    replica: String,
    connected_at: i64,
    last_seen: i64,
}

impl PresenceRow {
    fn into_presence(self) -> StoreResult<RunnerPresence> {
        Ok(RunnerPresence {
            labels: json_map("runners", &self.labels)?,
            repos: (self.repos.as_deref())
                .map(|text| json_list("runners", text))
                .transpose()?,
            connection: self.connection,
            runner_id: self.runner_id,
            name: self.name,
            capacity: self.capacity,
            replica: self.replica,
            connected_at: self.connected_at,
            last_seen: self.last_seen,
        })
    }
}

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

            async fn sync_presence(
                &self,
                replica: &str,
                runners: &[RunnerPresence],
                now: Millis,
                stale_before: Millis,
            ) -> StoreResult<()> {
                let mut tx = self.write_tx().await?;
                let known: Vec<String> =
                    sqlx::query_scalar("SELECT connection FROM runners WHERE replica = $1")
                        .bind(replica)
                        .fetch_all(&mut *tx)
                        .await?;
                let current: HashSet<&str> =
                    runners.iter().map(|r| r.connection.as_str()).collect();
                for gone in known.iter().filter(|c| !current.contains(c.as_str())) {
                    sqlx::query("DELETE FROM runners WHERE connection = $1")
                        .bind(gone)
                        .execute(&mut *tx)
                        .await?;
                }
                for runner in runners {
                    let repos = (runner.repos.as_ref())
                        .map(|r| serde_json::to_string(r).unwrap_or_else(|_| "[]".into()));
                    sqlx::query(
                        "INSERT INTO runners (connection, runner_id, name, labels, repos, \
                         capacity, replica, connected_at, last_seen) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                         ON CONFLICT (connection) DO UPDATE SET last_seen = excluded.last_seen, \
                         replica = excluded.replica",
                    )
                    .bind(&runner.connection)
                    .bind(&runner.runner_id)
                    .bind(&runner.name)
                    .bind(labels_json(&runner.labels))
                    .bind(repos)
                    .bind(runner.capacity)
                    .bind(replica)
                    .bind(runner.connected_at)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                sqlx::query("DELETE FROM runners WHERE last_seen < $1")
                    .bind(stale_before)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn list_presence(&self, seen_since: Millis) -> StoreResult<Vec<RunnerPresence>> {
                let rows = sqlx::query_as::<_, PresenceRow>(
                    "SELECT connection, runner_id, name, labels, repos, capacity, replica, \
                     connected_at, last_seen FROM runners WHERE last_seen >= $1 \
                     ORDER BY connected_at, runner_id, connection",
                )
                .bind(seen_since)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(PresenceRow::into_presence).collect()
            }
        }
    };
}

runner_store_impl!(SqliteStore);
runner_store_impl!(PostgresStore);
