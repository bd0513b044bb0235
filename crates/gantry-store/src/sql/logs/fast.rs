//! The one-round-trip append for the common batch: new lines, none stored before, all
//! within the cap. The database checks those conditions where it stores the chunks (on
//! Postgres in `gantry_append_log_chunks`, see its migration) and, when one does not hold,
//! stores nothing, so the caller falls back to the exact path, which reads the step's usage
//! and stored ranges first and plans each line.

use super::chunk::{Chunk, chunks_of};
use crate::error::{StoreError, StoreResult};
use crate::logs::{AppendOutcome, LogCap, LogLine};

/// A batch cut into chunks, with what it adds to the step's usage.
pub(super) struct FastBatch {
    /// Lines in the batch (every one of them is stored on the fast path).
    pub lines: i64,
    /// Text bytes of those lines, counted as the cap counts them.
    pub bytes: i64,
    /// The lowest and highest numbers of the batch.
    pub low: i64,
    pub high: i64,
    pub chunks: Vec<Chunk>,
}

impl FastBatch {
    /// The batch as chunks, or `None` when it repeats a number (the exact path keeps the
    /// first of each) or cannot fit under the cap even on an empty step.
    pub fn of(lines: &[LogLine], cap: &LogCap) -> Option<Self> {
        let count = i64::try_from(lines.len()).ok()?;
        let bytes = lines.iter().try_fold(0i64, |sum, line| {
            sum.checked_add(i64::try_from(line.text.len()).ok()?)
        })?;
        if count > cap.max_lines || bytes > cap.max_bytes {
            return None;
        }
        let chunks = chunks_of(lines.iter().collect());
        let repeats = chunks
            .windows(2)
            .any(|pair| pair[1].first_number <= pair[0].last_number);
        if repeats {
            return None;
        }
        Some(FastBatch {
            lines: count,
            bytes,
            low: chunks.first()?.first_number,
            high: chunks.last()?.last_number,
            chunks,
        })
    }

    /// The chunks' columns as arrays, one element per chunk.
    pub fn columns(&self) -> ChunkColumns<'_> {
        let strs = |field: fn(&Chunk) -> &str| self.chunks.iter().map(field).collect();
        ChunkColumns {
            first_numbers: self.chunks.iter().map(|c| c.first_number).collect(),
            last_numbers: self.chunks.iter().map(|c| c.last_number).collect(),
            streams: strs(|c| c.streams.as_str()),
            elapsed_ms: strs(|c| c.elapsed_ms.as_str()),
            text_ends: strs(|c| c.text_ends.as_str()),
            texts: strs(|c| c.texts.as_str()),
        }
    }

    /// What a stored batch reports.
    pub fn stored(&self) -> AppendOutcome {
        AppendOutcome {
            stored: usize::try_from(self.lines).unwrap_or(usize::MAX),
            dropped: 0,
            truncated_now: false,
        }
    }
}

/// The columns of `log_chunks` for a batch, as the arrays the database unnests.
pub(super) struct ChunkColumns<'a> {
    pub first_numbers: Vec<i64>,
    pub last_numbers: Vec<i64>,
    pub streams: Vec<&'a str>,
    pub elapsed_ms: Vec<&'a str>,
    pub text_ends: Vec<&'a str>,
    pub texts: Vec<&'a str>,
}

/// What the database answered to a fast append: stored, or why not.
pub(super) fn verdict(
    step_id: i64,
    answer: &str,
    batch: &FastBatch,
) -> StoreResult<Option<AppendOutcome>> {
    match answer {
        "stored" => Ok(Some(batch.stored())),
        "no step" => Err(StoreError::NotFound {
            what: format!("step {step_id}"),
        }),
        // "cap" or "overlap": the exact path decides line by line.
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::line;
    use super::*;

    #[test]
    fn a_batch_with_a_repeated_number_takes_the_exact_path() {
        let cap = LogCap::default();
        let lines = [line(3, "a"), line(1, "bb"), line(2, "c"), line(7, "d")];
        let batch = FastBatch::of(&lines, &cap).expect("distinct numbers");
        assert_eq!(
            (batch.lines, batch.bytes, batch.low, batch.high),
            (4, 5, 1, 7)
        );
        assert_eq!(batch.chunks.len(), 2);
        let repeated = [line(1, "a"), line(2, "b"), line(1, "c")];
        assert!(FastBatch::of(&repeated, &cap).is_none());
    }

    #[test]
    fn a_batch_larger_than_the_cap_takes_the_exact_path() {
        let cap = LogCap {
            max_bytes: 10,
            max_lines: 2,
        };
        assert!(FastBatch::of(&[line(0, "a"), line(1, "b")], &cap).is_some());
        assert!(FastBatch::of(&[line(0, "a"), line(1, "b"), line(2, "c")], &cap).is_none());
        assert!(FastBatch::of(&[line(0, &"x".repeat(11))], &cap).is_none());
    }
}
