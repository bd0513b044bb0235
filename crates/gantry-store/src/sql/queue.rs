//! The work queue. A claimer reads a page of pending items, keeps those whose labels fit,
//! and takes the first with one `UPDATE ... WHERE id = (SELECT ... WHERE state =
//! 'pending') RETURNING`: the state test hands an item to one claimer only. On Postgres
//! the inner select adds `FOR UPDATE SKIP LOCKED`, so concurrent claimers (several server
//! replicas) pass over a row another is taking instead of queueing behind it; SQLite runs
//! one writer at a time anyway.

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;

use super::rows::{QueueRow, convert, queue_columns};
use super::{PostgresStore, SqliteStore};
use crate::error::{StoreError, StoreResult, is_unique_violation};
use crate::queue::{Completion, QueueItem, QueueStore, RequeueOutcome, labels_fit};
use crate::time::Millis;

/// Candidates looked at per round of a claim.
const CLAIM_PAGE: i64 = 64;

fn check_lease(lease_ms: i64) -> StoreResult<()> {
    if lease_ms <= 0 {
        return Err(StoreError::InvalidInput {
            field: "lease".to_string(),
            reason: format!("{lease_ms} ms; a lease must be positive"),
        });
    }
    Ok(())
}

macro_rules! queue_store_impl {
    ($store:ty, $lock:literal) => {
        impl $store {
            /// One round of a claim over the next page of pending items after `after`:
            /// the claimed item, or the last id looked at when the page was full.
            async fn claim_round(
                &self,
                after: i64,
                runner_id: &str,
                runner_labels: &BTreeMap<String, String>,
                allowed: Option<&HashSet<i64>>,
                lease_until: Millis,
            ) -> StoreResult<Result<QueueItem, Option<i64>>> {
                let candidates = sqlx::query_as::<_, QueueRow>(concat!(
                    "SELECT ",
                    queue_columns!(),
                    " FROM queue_items WHERE state = 'pending' AND id > $1 ORDER BY id LIMIT $2"
                ))
                .bind(after)
                .bind(CLAIM_PAGE)
                .fetch_all(&self.pool)
                .await?;
                let full_page = candidates.len() as i64 == CLAIM_PAGE;
                let items = convert(candidates, QueueRow::into_item)?;
                let fits = |item: &&QueueItem| {
                    labels_fit(&item.labels, runner_labels)
                        && allowed.is_none_or(|ids| ids.contains(&item.repo_id))
                };
                for item in items.iter().filter(fits) {
                    let claimed = sqlx::query_as::<_, QueueRow>(concat!(
                        "UPDATE queue_items SET state = 'claimed', runner_id = $2, lease_until = $3, \
                         attempts = attempts + 1 WHERE id = (SELECT id FROM queue_items \
                         WHERE id = $1 AND state = 'pending'",
                        $lock,
                        ") RETURNING ",
                        queue_columns!()
                    ))
                    .bind(item.id)
                    .bind(runner_id)
                    .bind(lease_until)
                    .fetch_optional(&self.pool)
                    .await?;
                    if let Some(row) = claimed {
                        return Ok(Ok(row.into_item()?));
                    }
                }
                let last = items.last().map(|item| item.id);
                Ok(Err(if full_page { last } else { None }))
            }

            /// The ids of the repositories these patterns name.
            async fn repo_ids(&self, patterns: &[String]) -> StoreResult<HashSet<i64>> {
                let mut ids = HashSet::new();
                for pattern in patterns {
                    let Some((owner, name)) = pattern.split_once('/') else {
                        continue;
                    };
                    let found: Vec<i64> = if name == "*" {
                        sqlx::query_scalar("SELECT id FROM repos WHERE owner = $1")
                            .bind(owner)
                            .fetch_all(&self.pool)
                            .await?
                    } else {
                        sqlx::query_scalar("SELECT id FROM repos WHERE owner = $1 AND name = $2")
                            .bind(owner)
                            .bind(name)
                            .fetch_all(&self.pool)
                            .await?
                    };
                    ids.extend(found);
                }
                Ok(ids)
            }
        }

        #[async_trait]
        impl QueueStore for $store {
            async fn enqueue(&self, workflow_id: i64, now: Millis) -> StoreResult<QueueItem> {
                let inserted = sqlx::query_as::<_, QueueRow>(concat!(
                    "INSERT INTO queue_items (workflow_id, build_id, repo_id, labels, state, \
                     attempts, enqueued_at) SELECT w.id, w.build_id, b.repo_id, w.labels, \
                     'pending', 0, $2 FROM workflows w JOIN builds b ON b.id = w.build_id \
                     WHERE w.id = $1 RETURNING ",
                    queue_columns!()
                ))
                .bind(workflow_id)
                .bind(now)
                .fetch_optional(&self.pool)
                .await;
                match inserted {
                    Ok(Some(row)) => row.into_item(),
                    Ok(None) => Err(StoreError::NotFound {
                        what: format!("workflow {workflow_id}"),
                    }),
                    Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict {
                        what: format!("a pending or claimed queue item for workflow {workflow_id}"),
                    }),
                    Err(e) => Err(e.into()),
                }
            }

            async fn claim_next(
                &self,
                runner_id: &str,
                runner_labels: &BTreeMap<String, String>,
                now: Millis,
                lease_ms: i64,
            ) -> StoreResult<Option<QueueItem>> {
                self.claim_next_in(runner_id, runner_labels, None, now, lease_ms)
                    .await
            }

            async fn claim_next_in(
                &self,
                runner_id: &str,
                runner_labels: &BTreeMap<String, String>,
                repos: Option<&[String]>,
                now: Millis,
                lease_ms: i64,
            ) -> StoreResult<Option<QueueItem>> {
                check_lease(lease_ms)?;
                let lease_until = now.saturating_add(lease_ms);
                let allowed = match repos {
                    Some(patterns) => Some(self.repo_ids(patterns).await?),
                    None => None,
                };
                if allowed.as_ref().is_some_and(HashSet::is_empty) {
                    return Ok(None);
                }
                let mut after = 0;
                loop {
                    match self
                        .claim_round(after, runner_id, runner_labels, allowed.as_ref(), lease_until)
                        .await?
                    {
                        Ok(item) => return Ok(Some(item)),
                        Err(Some(next)) => after = next,
                        Err(None) => return Ok(None),
                    }
                }
            }

            async fn extend_lease(
                &self,
                item_id: i64,
                runner_id: &str,
                lease_until: Millis,
            ) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE queue_items SET lease_until = $3 \
                     WHERE id = $1 AND runner_id = $2 AND state = 'claimed'",
                )
                .bind(item_id)
                .bind(runner_id)
                .bind(lease_until)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn complete_item(
                &self,
                item_id: i64,
                runner_id: &str,
            ) -> StoreResult<Completion> {
                let done = sqlx::query(
                    "UPDATE queue_items SET state = 'done', lease_until = NULL \
                     WHERE id = $1 AND runner_id = $2 AND state = 'claimed'",
                )
                .bind(item_id)
                .bind(runner_id)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 1 {
                    return Ok(Completion::Completed);
                }
                // Done is final: an item done by this runner stays so.
                let already: Option<i64> = sqlx::query_scalar(
                    "SELECT id FROM queue_items \
                     WHERE id = $1 AND runner_id = $2 AND state = 'done'",
                )
                .bind(item_id)
                .bind(runner_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(match already {
                    Some(_) => Completion::AlreadyDone,
                    None => Completion::NotHeld,
                })
            }

            async fn done_item(
                &self,
                item_id: i64,
                runner_id: &str,
            ) -> StoreResult<Option<QueueItem>> {
                let row = sqlx::query_as::<_, QueueRow>(concat!(
                    "SELECT ",
                    queue_columns!(),
                    " FROM queue_items WHERE id = $1 AND runner_id = $2 AND state = 'done'"
                ))
                .bind(item_id)
                .bind(runner_id)
                .fetch_optional(&self.pool)
                .await?;
                row.map(QueueRow::into_item).transpose()
            }

            async fn requeue_expired(
                &self,
                now: Millis,
                max_attempts: i64,
            ) -> StoreResult<RequeueOutcome> {
                let message = format!(
                    "gave up after {max_attempts} attempts: each time the runner stopped \
                     renewing its lease (lost connection or crash)"
                );
                let mut tx = self.write_tx().await?;
                let failed = sqlx::query_as::<_, QueueRow>(concat!(
                    "UPDATE queue_items SET state = 'failed', error = $3, lease_until = NULL \
                     WHERE state = 'claimed' AND lease_until < $1 AND attempts >= $2 RETURNING ",
                    queue_columns!()
                ))
                .bind(now)
                .bind(max_attempts)
                .bind(&message)
                .fetch_all(&mut *tx)
                .await?;
                let requeued = sqlx::query_as::<_, QueueRow>(concat!(
                    "UPDATE queue_items SET state = 'pending', runner_id = NULL, lease_until = NULL \
                     WHERE state = 'claimed' AND lease_until < $1 RETURNING ",
                    queue_columns!()
                ))
                .bind(now)
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(RequeueOutcome {
                    requeued: convert(requeued, QueueRow::into_item)?,
                    failed: convert(failed, QueueRow::into_item)?,
                })
            }

            async fn list_pending(&self) -> StoreResult<Vec<QueueItem>> {
                let rows = sqlx::query_as::<_, QueueRow>(concat!(
                    "SELECT ",
                    queue_columns!(),
                    " FROM queue_items WHERE state = 'pending' ORDER BY id"
                ))
                .fetch_all(&self.pool)
                .await?;
                convert(rows, QueueRow::into_item)
            }

            async fn cancel_build_items(&self, build_id: i64, reason: &str) -> StoreResult<u64> {
                let done = sqlx::query(
                    "UPDATE queue_items SET state = 'failed', error = $2, lease_until = NULL \
                     WHERE build_id = $1 AND state IN ('pending', 'claimed')",
                )
                .bind(build_id)
                .bind(reason)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

queue_store_impl!(SqliteStore, "");
queue_store_impl!(PostgresStore, " FOR UPDATE SKIP LOCKED");
