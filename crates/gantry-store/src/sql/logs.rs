//! Step logs: idempotent batched appends under a per-step cap.

use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::{FromRow, Postgres, QueryBuilder, Sqlite, Transaction};

use super::{PostgresStore, SqliteStore};
use crate::error::{StoreError, StoreResult};
use crate::logs::{AppendOutcome, LogCap, LogLine, LogStore, MAX_LOG_PAGE};

/// Rows per INSERT: 5 binds each stays far below both databases' parameter limits.
const INSERT_CHUNK: usize = 1_000;

#[derive(FromRow)]
struct LogUsage {
    log_lines: i64,
    log_bytes: i64,
    log_truncated: bool,
}

#[derive(FromRow)]
struct LogRow {
    number: i64,
    stream: String,
    text: String,
    elapsed_ms: i64,
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
    stored: &HashSet<i64>,
    usage: &LogUsage,
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
        if stored.contains(&line.number) || !seen.insert(line.number) {
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

/// The text with NUL replaced by U+FFFD: Postgres text cannot hold NUL, and both
/// databases must store the same lines.
fn without_nul(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

fn check_lines(lines: &[LogLine]) -> StoreResult<()> {
    if let Some(line) = lines.iter().find(|line| line.number < 0) {
        return Err(StoreError::InvalidInput {
            field: "log line number".to_string(),
            reason: format!("{} is negative; lines are numbered from 0", line.number),
        });
    }
    Ok(())
}

impl SqliteStore {
    /// Multi-row INSERTs of up to [`INSERT_CHUNK`] lines.
    async fn insert_lines(
        tx: &mut Transaction<'static, Sqlite>,
        step_id: i64,
        lines: &[&LogLine],
    ) -> StoreResult<()> {
        for chunk in lines.chunks(INSERT_CHUNK) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO log_lines (step_id, number, stream, text, elapsed_ms) ",
            );
            insert.push_values(chunk, |mut row, line| {
                row.push_bind(step_id)
                    .push_bind(line.number)
                    .push_bind(without_nul(&line.stream))
                    .push_bind(without_nul(&line.text))
                    .push_bind(line.elapsed_ms);
            });
            insert.push(" ON CONFLICT (step_id, number) DO NOTHING");
            insert.build().execute(&mut **tx).await?;
        }
        Ok(())
    }
}

impl PostgresStore {
    /// One INSERT from arrays (`UNNEST` of four array parameters) instead of a VALUES
    /// list of thousands of parameters. No `ON CONFLICT`: speculative insertion costs
    /// Postgres twice a plain insert, and the caller holds the step's row lock and has
    /// already left out the lines that are stored.
    async fn insert_lines(
        tx: &mut Transaction<'static, Postgres>,
        step_id: i64,
        lines: &[&LogLine],
    ) -> StoreResult<()> {
        let clean = |text: &str| without_nul(text).into_owned();
        sqlx::query(
            "INSERT INTO log_lines (step_id, number, stream, text, elapsed_ms) \
             SELECT $1, * FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::bigint[])",
        )
        .bind(step_id)
        .bind(lines.iter().map(|l| l.number).collect::<Vec<i64>>())
        .bind(
            lines
                .iter()
                .map(|l| clean(&l.stream))
                .collect::<Vec<String>>(),
        )
        .bind(
            lines
                .iter()
                .map(|l| clean(&l.text))
                .collect::<Vec<String>>(),
        )
        .bind(lines.iter().map(|l| l.elapsed_ms).collect::<Vec<i64>>())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

macro_rules! log_store_impl {
    ($store:ty, $db:ty, $lock_step:literal) => {
        impl $store {
            async fn stored_numbers(
                tx: &mut Transaction<'static, $db>,
                step_id: i64,
                lines: &[LogLine],
            ) -> StoreResult<HashSet<i64>> {
                let low = lines.iter().map(|l| l.number).min().unwrap_or(0);
                let high = lines.iter().map(|l| l.number).max().unwrap_or(-1);
                let numbers: Vec<i64> = sqlx::query_scalar(
                    "SELECT number FROM log_lines WHERE step_id = $1 AND number >= $2 AND number <= $3",
                )
                .bind(step_id)
                .bind(low)
                .bind(high)
                .fetch_all(&mut **tx)
                .await?;
                Ok(numbers.into_iter().collect())
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
                let mut tx = self.write_tx().await?;
                let usage = sqlx::query_as::<_, LogUsage>(concat!(
                    "SELECT log_lines, log_bytes, log_truncated FROM steps WHERE id = $1",
                    $lock_step
                ))
                .bind(step_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::NotFound {
                    what: format!("step {step_id}"),
                })?;
                let stored = Self::stored_numbers(&mut tx, step_id, lines).await?;
                let plan = plan_append(lines, &stored, &usage, &self.log_cap);
                let mut rows = plan.keep.clone();
                rows.extend(plan.notice.as_ref());
                Self::insert_lines(&mut tx, step_id, &rows).await?;
                sqlx::query(
                    "UPDATE steps SET log_lines = $2, log_bytes = $3, log_truncated = $4 WHERE id = $1",
                )
                .bind(step_id)
                .bind(plan.usage.0)
                .bind(plan.usage.1)
                .bind(usage.log_truncated || plan.notice.is_some())
                .execute(&mut *tx)
                .await?;
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
                let limit = match limit {
                    0 => 1_000,
                    n => n.min(MAX_LOG_PAGE),
                };
                let rows = sqlx::query_as::<_, LogRow>(
                    "SELECT number, stream, text, elapsed_ms FROM log_lines \
                     WHERE step_id = $1 AND number > $2 ORDER BY number LIMIT $3",
                )
                .bind(step_id)
                .bind(after.unwrap_or(-1))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|row| LogLine {
                        number: row.number,
                        stream: row.stream,
                        text: row.text,
                        elapsed_ms: row.elapsed_ms,
                    })
                    .collect())
            }
        }
    };
}

log_store_impl!(SqliteStore, Sqlite, "");
log_store_impl!(PostgresStore, Postgres, " FOR UPDATE");

#[cfg(test)]
mod tests {
    use super::*;

    fn line(number: i64, text: &str) -> LogLine {
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
        let usage = LogUsage {
            log_lines: 1,
            log_bytes: 1,
            log_truncated: false,
        };
        let lines: Vec<LogLine> = (0..6).map(|n| line(n, "x")).collect();
        let stored = HashSet::from([0]);
        let plan = plan_append(&lines, &stored, &usage, &cap);
        let kept: Vec<i64> = plan.keep.iter().map(|l| l.number).collect();
        assert_eq!(kept, vec![1, 2]);
        assert_eq!(plan.notice.as_ref().map(|n| n.number), Some(3));
        assert_eq!(plan.dropped, 3);
    }
}
