//! Step logs: durable lines, ordered by number, capped per step.

use async_trait::async_trait;
use serde::Serialize;

use crate::error::StoreResult;

/// One log line as a runner sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// Line number within the step, from 0; the key that makes appends idempotent.
    pub number: i64,
    /// `stdout`, `stderr`, or `system` for lines Gantry adds; any other is refused.
    pub stream: String,
    /// The text, already masked by the runner, without the trailing newline.
    pub text: String,
    /// Milliseconds since the step started.
    pub elapsed_ms: i64,
}

/// How much log one step may store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogCap {
    /// Bytes of text (default 5 MiB).
    pub max_bytes: i64,
    /// Lines (default 100,000).
    pub max_lines: i64,
}

impl Default for LogCap {
    fn default() -> Self {
        LogCap {
            max_bytes: 5 * 1024 * 1024,
            max_lines: 100_000,
        }
    }
}

impl LogCap {
    /// The visible line stored once when a step passes the cap.
    pub fn truncation_notice(&self) -> String {
        format!(
            "log truncated: the step printed more than {} or {} lines (the rest was dropped)",
            human_bytes(self.max_bytes),
            self.max_lines
        )
    }
}

fn human_bytes(bytes: i64) -> String {
    const MIB: i64 = 1024 * 1024;
    if bytes >= MIB && bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= 1024 && bytes % 1024 == 0 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

/// What `append_logs` did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AppendOutcome {
    /// Lines newly stored (lines already stored are not counted).
    pub stored: usize,
    /// Lines dropped because the step is past its cap.
    pub dropped: usize,
    /// This batch crossed the cap and stored the truncation notice.
    pub truncated_now: bool,
}

/// Step logs.
#[async_trait]
pub trait LogStore: Send + Sync {
    /// Appends a batch of lines to a step in one transaction. Idempotent on (step,
    /// number): a retried batch stores nothing twice. Past the step's [`LogCap`] lines are
    /// dropped and one line with [`LogCap::truncation_notice`] (stream `system`) is stored
    /// in their place. Runs of consecutive lines are stored together, so a runner's batch
    /// (up to 1,024 lines or 64 KiB) costs the database one row.
    async fn append_logs(&self, step_id: i64, lines: &[LogLine]) -> StoreResult<AppendOutcome>;
    /// Lines of a step ordered by number: those numbered above `after` (all when None),
    /// at most `limit` (0 means 1,000; at most 10,000).
    async fn read_logs(
        &self,
        step_id: i64,
        after: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<LogLine>>;
}

/// The largest page `read_logs` returns.
pub const MAX_LOG_PAGE: u32 = 10_000;
