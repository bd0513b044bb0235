//! Step logs: idempotent batched appends under a per-step cap, kept as chunks of
//! consecutive lines (see [`chunk`]).

mod chunk;
mod fast;

use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::{FromRow, Postgres, QueryBuilder, Sqlite, Transaction};

use self::chunk::{Chunk, chunks_of, stream_code};
use self::fast::{FastBatch, verdict};
use super::{PostgresStore, SqliteStore};
use crate::error::{StoreError, StoreResult};
use crate::logs::{AppendOutcome, LogCap, LogLine, LogStore, MAX_LOG_PAGE};

/// Chunks per read query: a page is usually one or two chunks, and 16 bound what one
/// query loads (about 1 MiB of text) when the page is long.
const READ_CHUNKS: i64 = 16;

/// A step's log usage, with one stored chunk's range that overlaps the batch (if any).
#[derive(FromRow)]
struct UsageRow {
    log_lines: i64,
    log_bytes: i64,
    log_truncated: bool,
    first_number: Option<i64>,
    last_number: Option<i64>,
}

/// The ranges of stored chunks that overlap a batch, ordered.
struct StoredRanges(Vec<(i64, i64)>);

impl StoredRanges {
    fn contains(&self, number: i64) -> bool {
        let after = self.0.partition_point(|&(_, last)| last < number);
        self.0.get(after).is_some_and(|&(first, _)| first <= number)
    }
}

/// Which lines of a batch to store, given what is stored and the cap.
struct AppendPlan<'a> {
    keep: Vec<&'a LogLine>,
    notice: Option<LogLine>,
    dropped: usize,
    usage: (i64, i64),
}

fn plan_append<'a>(
    lines: &'a [LogLine],
    stored: &StoredRanges,
    usage: &UsageRow,
    cap: &LogCap,
) -> AppendPlan<'a> {
    let mut plan = AppendPlan {
        keep: Vec::new(),
        notice: None,
        dropped: 0,
        usage: (usage.log_lines, usage.log_bytes),
    };
    let mut seen = HashSet::new();
    let mut truncated = usage.log_truncated;
    for line in lines {
        if stored.contains(line.number) || !seen.insert(line.number) {
            continue;
        }
        let bytes = i64::try_from(line.text.len()).unwrap_or(i64::MAX);
        let over = plan.usage.0 + 1 > cap.max_lines || plan.usage.1 + bytes > cap.max_bytes;
        if truncated || over {
            if !truncated {
                truncated = true;
                plan.notice = Some(LogLine {
                    number: line.number,
                    stream: "system".to_string(),
                    text: cap.truncation_notice(),
                    elapsed_ms: line.elapsed_ms,
                });
            }
            plan.dropped += 1;
            continue;
        }
        plan.usage = (plan.usage.0 + 1, plan.usage.1 + bytes);
        plan.keep.push(line);
    }
    plan
}

fn check_lines(lines: &[LogLine]) -> StoreResult<()> {
    if let Some(line) = lines.iter().find(|line| line.number < 0) {
        return Err(StoreError::InvalidInput {
            field: "log line number".to_string(),
            reason: format!("{} is negative; lines are numbered from 0", line.number),
        });
    }
    if let Some(line) = lines
        .iter()
        .find(|line| stream_code(&line.stream).is_none())
    {
        return Err(StoreError::InvalidInput {
            field: "log line stream".to_string(),
            reason: format!(
                "`{}` (line {}) is not a stream; use stdout, stderr or system",
                line.stream, line.number
            ),
        });
    }
    Ok(())
}

/// The page size `read_logs` serves for a requested `limit`.
fn page_size(limit: u32) -> usize {
    match limit {
        0 => 1_000,
        n => n.min(MAX_LOG_PAGE) as usize,
    }
}

macro_rules! log_store_impl {
    ($store:ty, $db:ty, $before_insert:literal, $after_insert:literal) => {
        impl $store {
            /// The step's usage and the stored ranges that overlap numbers `low..=high`,
            /// in one query (after `lock_step`).
            async fn usage_and_stored(
                tx: &mut Transaction<'static, $db>,
                step_id: i64,
                low: i64,
                high: i64,
            ) -> StoreResult<(UsageRow, StoredRanges)> {
                let mut rows = sqlx::query_as::<_, UsageRow>(
                    "SELECT s.log_lines, s.log_bytes, s.log_truncated, c.first_number, \
                     c.last_number FROM steps s LEFT JOIN log_chunks c ON c.step_id = s.id \
                     AND c.last_number >= $2 AND c.first_number <= $3 WHERE s.id = $1 \
                     ORDER BY c.last_number",
                )
                .bind(step_id)
                .bind(low)
                .bind(high)
                .fetch_all(&mut **tx)
                .await?;
                let ranges = rows
                    .iter()
                    .filter_map(|row| Some((row.first_number?, row.last_number?)))
                    .collect();
                let usage = rows.pop().ok_or_else(|| StoreError::NotFound {
                    what: format!("step {step_id}"),
                })?;
                Ok((usage, StoredRanges(ranges)))
            }

            /// Inserts the chunks and sets the step's usage in one round trip.
            async fn store_chunks(
                tx: &mut Transaction<'static, $db>,
                step_id: i64,
                chunks: &[Chunk],
                usage: (i64, i64, bool),
            ) -> StoreResult<()> {
                let mut query = QueryBuilder::<$db>::new(concat!(
                    $before_insert,
                    "INSERT INTO log_chunks (step_id, first_number, last_number, streams, \
                     elapsed_ms, text_ends, texts) "
                ));
                query.push_values(chunks, |mut row, chunk| {
                    row.push_bind(step_id)
                        .push_bind(chunk.first_number)
                        .push_bind(chunk.last_number)
                        .push_bind(chunk.streams.as_str())
                        .push_bind(chunk.elapsed_ms.as_str())
                        .push_bind(chunk.text_ends.as_str())
                        .push_bind(chunk.texts.as_str());
                });
                query.push(concat!($after_insert, "UPDATE steps SET log_lines = "));
                query.push_bind(usage.0);
                query.push(", log_bytes = ");
                query.push_bind(usage.1);
                query.push(", log_truncated = ");
                query.push_bind(usage.2);
                query.push(" WHERE id = ");
                query.push_bind(step_id);
                query.build().execute(&mut **tx).await?;
                Ok(())
            }
        }

        #[async_trait]
        impl LogStore for $store {
            async fn append_logs(
                &self,
                step_id: i64,
                lines: &[LogLine],
            ) -> StoreResult<AppendOutcome> {
                check_lines(lines)?;
                if lines.is_empty() {
                    return Ok(AppendOutcome::default());
                }
                if let Some(outcome) = self.append_fast(step_id, lines).await? {
                    return Ok(outcome);
                }
                let low = lines.iter().map(|l| l.number).min().unwrap_or(0);
                let high = lines.iter().map(|l| l.number).max().unwrap_or(0);
                let mut tx = self.log_tx().await?;
                Self::lock_step(&mut tx, step_id).await?;
                let (usage, stored) = Self::usage_and_stored(&mut tx, step_id, low, high).await?;
                let plan = plan_append(lines, &stored, &usage, &self.log_cap);
                if plan.keep.is_empty() && plan.notice.is_none() {
                    tx.commit().await?;
                    return Ok(AppendOutcome {
                        dropped: plan.dropped,
                        ..AppendOutcome::default()
                    });
                }
                let mut rows = plan.keep.clone();
                rows.extend(plan.notice.as_ref());
                let truncated = usage.log_truncated || plan.notice.is_some();
                let usage = (plan.usage.0, plan.usage.1, truncated);
                Self::store_chunks(&mut tx, step_id, &chunks_of(rows), usage).await?;
                tx.commit().await?;
                Ok(AppendOutcome {
                    stored: plan.keep.len(),
                    dropped: plan.dropped,
                    truncated_now: plan.notice.is_some(),
                })
            }

            async fn read_logs(
                &self,
                step_id: i64,
                after: Option<i64>,
                limit: u32,
            ) -> StoreResult<Vec<LogLine>> {
                let limit = page_size(limit);
                let after = after.unwrap_or(-1);
                let mut lines = Vec::new();
                let mut cursor = after;
                loop {
                    let chunks = sqlx::query_as::<_, Chunk>(
                        "SELECT first_number, last_number, streams, elapsed_ms, text_ends, texts \
                         FROM log_chunks WHERE step_id = $1 AND last_number > $2 \
                         ORDER BY last_number LIMIT $3",
                    )
                    .bind(step_id)
                    .bind(cursor)
                    .bind(READ_CHUNKS)
                    .fetch_all(&self.pool)
                    .await?;
                    for chunk in &chunks {
                        chunk.read_into(after, limit, &mut lines)?;
                        cursor = chunk.last_number;
                    }
                    if chunks.len() < READ_CHUNKS as usize || lines.len() >= limit {
                        break;
                    }
                }
                Ok(lines)
            }
        }
    };
}

// The insert and the usage update go in one query: two statements on SQLite, a
// data-modifying `WITH` on Postgres (which takes one statement per query with parameters).
log_store_impl!(SqliteStore, Sqlite, "", "; ");
log_store_impl!(PostgresStore, Postgres, "WITH inserted AS (", ") ");

impl SqliteStore {
    /// A log write: the same `BEGIN IMMEDIATE` as every write.
    async fn log_tx(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        self.write_tx().await
    }

    /// Nothing to lock: `BEGIN IMMEDIATE` already holds the database's write lock.
    async fn lock_step(_tx: &mut Transaction<'static, Sqlite>, _step_id: i64) -> StoreResult<()> {
        Ok(())
    }

    /// No one-round-trip append on SQLite: every batch takes the exact path.
    async fn append_fast(
        &self,
        _step_id: i64,
        _lines: &[LogLine],
    ) -> StoreResult<Option<AppendOutcome>> {
        Ok(None)
    }
}

impl PostgresStore {
    /// A log write whose commit does not wait for the WAL flush (`synchronous_commit =
    /// off` for this transaction only). The database stays consistent; an operating
    /// system or Postgres crash can lose the batches of the last few hundred
    /// milliseconds, and only of steps still running: the step's status change that ends
    /// it commits synchronously, which flushes every earlier log batch with it. This is
    /// the durability SQLite in WAL mode with `synchronous = NORMAL` gives every write.
    async fn log_tx(&self) -> StoreResult<Transaction<'static, Postgres>> {
        Ok(self
            .pool
            .begin_with("BEGIN; SET LOCAL synchronous_commit = off")
            .await?)
    }

    /// Locks the step's row for the transaction, in a statement of its own: the next
    /// statement's snapshot is taken once the lock is granted, so it sees the chunks of
    /// every append that held the lock before (a lock taken by the query that also reads
    /// the chunks would read them as they were before it waited, and two overlapping
    /// retries could both store their lines).
    async fn lock_step(tx: &mut Transaction<'static, Postgres>, step_id: i64) -> StoreResult<()> {
        sqlx::query("SELECT 1 FROM steps WHERE id = $1 FOR UPDATE")
            .bind(step_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// The batch in one round trip when it holds only new lines within the cap (see
    /// [`fast`]), on a connection kept from the previous batch when there is one;
    /// `None` when the exact path must decide.
    async fn append_fast(
        &self,
        step_id: i64,
        lines: &[LogLine],
    ) -> StoreResult<Option<AppendOutcome>> {
        let Some(batch) = FastBatch::of(lines, &self.log_cap) else {
            return Ok(None);
        };
        let columns = batch.columns();
        let mut connection = match self.log_connections.take() {
            Some(connection) => connection,
            None => self.pool.acquire().await?,
        };
        let answer: String = sqlx::query_scalar(
            "SELECT gantry_append_log_chunks($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
             $12, $13)",
        )
        .bind(step_id)
        .bind(batch.lines)
        .bind(batch.bytes)
        .bind(self.log_cap.max_lines)
        .bind(self.log_cap.max_bytes)
        .bind(batch.low)
        .bind(batch.high)
        .bind(&columns.first_numbers)
        .bind(&columns.last_numbers)
        .bind(&columns.streams)
        .bind(&columns.elapsed_ms)
        .bind(&columns.text_ends)
        .bind(&columns.texts)
        .fetch_one(&mut *connection)
        .await?;
        // Kept for the next batch only after a completed query (an error or a cancelled
        // call drops it: the pool checks it on its way back).
        self.log_connections.park(connection, self.pool.is_closed());
        verdict(step_id, &answer, &batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stdout line numbered `number`.
    pub(super) fn line(number: i64, text: &str) -> LogLine {
        LogLine {
            number,
            stream: "stdout".to_string(),
            text: text.to_string(),
            elapsed_ms: 0,
        }
    }

    #[test]
    fn cap_keeps_lines_up_to_the_limit_then_one_notice() {
        let cap = LogCap {
            max_bytes: 1_000,
            max_lines: 3,
        };
        let usage = UsageRow {
            log_lines: 1,
            log_bytes: 1,
            log_truncated: false,
            first_number: None,
            last_number: None,
        };
        let lines: Vec<LogLine> = (0..6).map(|n| line(n, "x")).collect();
        let stored = StoredRanges(vec![(0, 0)]);
        let plan = plan_append(&lines, &stored, &usage, &cap);
        let kept: Vec<i64> = plan.keep.iter().map(|l| l.number).collect();
        assert_eq!(kept, vec![1, 2]);
        assert_eq!(plan.notice.as_ref().map(|n| n.number), Some(3));
        assert_eq!(plan.dropped, 3);
    }

    #[test]
    fn stored_ranges_hold_exactly_their_numbers() {
        let stored = StoredRanges(vec![(2, 4), (7, 7), (10, 20)]);
        let held: Vec<i64> = (0..25).filter(|&n| stored.contains(n)).collect();
        let expected: Vec<i64> = [2, 3, 4, 7].into_iter().chain(10..=20).collect();
        assert_eq!(held, expected);
    }
}
