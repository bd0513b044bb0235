//! The line a failed step's page lands on, found once per step.
//!
//! Finding it may read the whole log (the error can sit anywhere, and without one the
//! last line is taken), so the answer for a finished step is kept in memory: its log no
//! longer changes. The first page the build page renders anyway is searched first, so a
//! log with an early error costs no extra read at all.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use gantry_store::{LogLine, MAX_LOG_PAGE};

use super::ansi::looks_like_error;
use super::view::WebResult;
use crate::state::AppState;

/// Finished steps whose answer is kept; past this the oldest answers go first.
const MAX_REMEMBERED: usize = 4_096;

/// The first-error line of finished steps, by step id. Cheap to clone.
#[derive(Clone, Default)]
pub struct FirstErrors {
    inner: Arc<Mutex<Remembered>>,
}

#[derive(Default)]
struct Remembered {
    lines: HashMap<i64, i64>,
    /// Step ids in the order they were remembered (the oldest is evicted first).
    order: VecDeque<i64>,
}

impl std::fmt::Debug for FirstErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirstErrors")
            .field("remembered", &self.remembered().lines.len())
            .finish()
    }
}

impl FirstErrors {
    fn remembered(&self) -> MutexGuard<'_, Remembered> {
        // Only inserts and removals happen under the lock: a panic cannot corrupt it.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The first line of finished step `step_id` that reads like an error (see
    /// `ansi::looks_like_error`), else its last line (a failing command's last words are
    /// usually why); `first_page` holds its first lines, already read.
    pub async fn find(
        &self,
        state: &AppState,
        step_id: i64,
        first_page: &[LogLine],
    ) -> WebResult<i64> {
        if let Some(line) = first_page.iter().find(|l| looks_like_error(&l.text)) {
            return Ok(line.number);
        }
        if let Some(known) = self.remembered().lines.get(&step_id) {
            return Ok(*known);
        }
        let found = scan(state, step_id, first_page).await?;
        let mut remembered = self.remembered();
        if remembered.lines.len() >= MAX_REMEMBERED
            && let Some(oldest) = remembered.order.pop_front()
        {
            remembered.lines.remove(&oldest);
        }
        if remembered.lines.insert(step_id, found).is_none() {
            remembered.order.push_back(step_id);
        }
        Ok(found)
    }
}

/// Reads the log after `first_page` until a line reads like an error or the log ends.
async fn scan(state: &AppState, step_id: i64, first_page: &[LogLine]) -> WebResult<i64> {
    let mut last = first_page.last().map_or(0, |l| l.number);
    let mut after = (last > 0).then_some(last);
    loop {
        let page = state.store.read_logs(step_id, after, MAX_LOG_PAGE).await?;
        let Some(end) = page.last() else {
            return Ok(last);
        };
        if let Some(line) = page.iter().find(|l| looks_like_error(&l.text)) {
            return Ok(line.number);
        }
        last = end.number;
        after = Some(last);
    }
}
