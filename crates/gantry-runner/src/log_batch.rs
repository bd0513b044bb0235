//! Batches of log lines: what [`RunEvent::Logs`](crate::RunEvent::Logs) carries.
//!
//! A step can print millions of short lines. One event, one `String` and one wake-up of the
//! receiver per line cost more than reading and masking the line, so lines travel in
//! batches whose texts share one buffer: a batch costs three allocations, however many
//! lines it holds.

use std::time::Duration;

use serde::ser::SerializeStruct as _;
use serde::{Deserialize, Serialize};

use crate::backend::OutputStream;

/// Consecutive lines of one step's output, in order, already masked.
///
/// The runtime sends the lines a step wrote as soon as its output pauses, and at the
/// latest [`LogBatch::MAX_HOLD`] after the first of them, so batching costs a live viewer
/// no visible delay. A batch holds at most [`LogBatch::MAX_LINES`] lines and about
/// [`LogBatch::MAX_BYTES`] of text (plus one line at most), which bounds what a bounded
/// event channel can hold.
///
/// It serialises as `{"step": …, "lines": [{"number", "stream", "text", "elapsed_ms"}…]}`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "WireBatch")]
pub struct LogBatch {
    step: String,
    first_number: u64,
    /// Every line's text, one after the other.
    text: String,
    lines: Vec<LineEntry>,
}

/// Where one line's text ends in the batch's buffer, and what else is known of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LineEntry {
    end: usize,
    stream: OutputStream,
    elapsed_ms: u64,
}

/// One line of a step's output, already masked, borrowed from its [`LogBatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LogLine<'a> {
    /// Line number within the step, from 1 (continues across retries).
    pub number: u64,
    /// Stream it was written to.
    pub stream: OutputStream,
    /// The text, masked, without its line ending.
    pub text: &'a str,
    /// Milliseconds since the step's first attempt started.
    pub elapsed_ms: u64,
}

impl LogBatch {
    /// Most lines in one batch.
    pub const MAX_LINES: usize = 1024;
    /// Text bytes after which a batch is complete.
    pub const MAX_BYTES: usize = 64 * 1024;
    /// Longest a line waits in an unsent batch while output keeps flowing.
    pub const MAX_HOLD: Duration = Duration::from_millis(50);

    /// An empty batch of `step` whose first line will be number `first_number`.
    pub fn new(step: impl Into<String>, first_number: u64) -> Self {
        Self {
            step: step.into(),
            first_number,
            text: String::new(),
            lines: Vec::new(),
        }
    }

    /// Appends the next line (numbered after the ones already here).
    pub fn push(&mut self, stream: OutputStream, text: &str, elapsed_ms: u64) {
        self.text.push_str(text);
        self.lines.push(LineEntry {
            end: self.text.len(),
            stream,
            elapsed_ms,
        });
    }

    /// Step (or service) name.
    pub fn step(&self) -> &str {
        &self.step
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// True without lines.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Bytes of text of all lines together (line endings not counted).
    pub fn text_len(&self) -> usize {
        self.text.len()
    }

    /// Number of the first line (that of the next line pushed, when empty).
    pub fn first_number(&self) -> u64 {
        self.first_number
    }

    /// The `index`th line of the batch.
    pub fn get(&self, index: usize) -> Option<LogLine<'_>> {
        let entry = self.lines.get(index)?;
        let start = index
            .checked_sub(1)
            .and_then(|before| self.lines.get(before))
            .map_or(0, |e| e.end);
        Some(self.line(index, start, entry))
    }

    /// The lines, in order.
    pub fn iter(&self) -> LogLines<'_> {
        LogLines {
            batch: self,
            index: 0,
            start: 0,
        }
    }

    fn line(&self, index: usize, start: usize, entry: &LineEntry) -> LogLine<'_> {
        LogLine {
            number: self.first_number.saturating_add(index as u64),
            stream: entry.stream,
            // `end`s are offsets `push` recorded after whole `&str`s: always in bounds and
            // on character boundaries.
            text: self.text.get(start..entry.end).unwrap_or_default(),
            elapsed_ms: entry.elapsed_ms,
        }
    }
}

/// The lines of a [`LogBatch`], in order.
pub struct LogLines<'a> {
    batch: &'a LogBatch,
    index: usize,
    start: usize,
}

impl<'a> Iterator for LogLines<'a> {
    type Item = LogLine<'a>;

    fn next(&mut self) -> Option<LogLine<'a>> {
        let entry = self.batch.lines.get(self.index)?;
        let line = self.batch.line(self.index, self.start, entry);
        self.index += 1;
        self.start = entry.end;
        Some(line)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.batch.lines.len() - self.index;
        (left, Some(left))
    }
}

impl ExactSizeIterator for LogLines<'_> {}

impl<'a> IntoIterator for &'a LogBatch {
    type Item = LogLine<'a>;
    type IntoIter = LogLines<'a>;

    fn into_iter(self) -> LogLines<'a> {
        self.iter()
    }
}

impl std::fmt::Debug for LogBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogBatch")
            .field("step", &self.step)
            .field("lines", &self.iter().collect::<Vec<_>>())
            .finish()
    }
}

impl Serialize for LogBatch {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Lines<'a>(&'a LogBatch);
        impl Serialize for Lines<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq(self.0.iter())
            }
        }
        let mut batch = serializer.serialize_struct("LogBatch", 2)?;
        batch.serialize_field("step", &self.step)?;
        batch.serialize_field("lines", &Lines(self))?;
        batch.end()
    }
}

/// A batch as serialised: lines with their own texts.
#[derive(Deserialize)]
struct WireBatch {
    step: String,
    lines: Vec<WireLine>,
}

#[derive(Deserialize)]
struct WireLine {
    number: u64,
    stream: OutputStream,
    text: String,
    elapsed_ms: u64,
}

impl TryFrom<WireBatch> for LogBatch {
    type Error = String;

    fn try_from(wire: WireBatch) -> Result<Self, String> {
        let first = wire.lines.first().map_or(1, |l| l.number);
        let mut batch = LogBatch::new(wire.step, first);
        for (i, line) in wire.lines.iter().enumerate() {
            if Some(line.number) != first.checked_add(i as u64) {
                return Err(format!(
                    "log batch of step `{}`: line {} follows line {}; the lines of a batch \
                     must be numbered consecutively",
                    batch.step,
                    line.number,
                    first.saturating_add(i as u64).saturating_sub(1)
                ));
            }
            batch.push(line.stream, &line.text, line.elapsed_ms);
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LogBatch {
        let mut batch = LogBatch::new("build", 7);
        batch.push(OutputStream::Stdout, "first", 1);
        batch.push(OutputStream::Stderr, "", 2);
        batch.push(OutputStream::Stdout, "dritte Zeile: é€", 3);
        batch
    }

    #[test]
    fn lines_come_back_numbered_in_order() {
        let batch = sample();
        let lines: Vec<(u64, OutputStream, &str, u64)> = batch
            .iter()
            .map(|l| (l.number, l.stream, l.text, l.elapsed_ms))
            .collect();
        assert_eq!(
            lines,
            [
                (7, OutputStream::Stdout, "first", 1),
                (8, OutputStream::Stderr, "", 2),
                (9, OutputStream::Stdout, "dritte Zeile: é€", 3),
            ]
        );
        assert_eq!(batch.get(2), batch.iter().nth(2));
        assert_eq!(batch.get(3), None);
        assert_eq!((batch.len(), batch.text_len()), (3, 5 + 19));
    }

    #[test]
    fn serialises_as_lines_with_their_texts_and_back() {
        let batch = sample();
        let json = serde_json::to_value(&batch).expect("serialise");
        assert_eq!(json["step"], "build");
        assert_eq!(json["lines"][2]["text"], "dritte Zeile: é€");
        assert_eq!(json["lines"][1]["number"], 8);
        assert_eq!(json["lines"][1]["stream"], "stderr");
        let back: LogBatch = serde_json::from_value(json).expect("deserialise");
        assert_eq!(back, batch);
    }

    #[test]
    fn numbering_gaps_are_refused_with_the_step_named() {
        let json = serde_json::json!({"step": "x", "lines": [
            {"number": 1, "stream": "stdout", "text": "a", "elapsed_ms": 0},
            {"number": 3, "stream": "stdout", "text": "b", "elapsed_ms": 0},
        ]});
        let error = serde_json::from_value::<LogBatch>(json)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.contains("step `x`") && error.contains("consecutively"),
            "{error}"
        );
    }
}
