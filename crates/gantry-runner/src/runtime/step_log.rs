//! One step's log: reassembled, masked, numbered lines sent in batches.
//!
//! Lines are gathered into a [`LogBatch`] while output keeps arriving. A batch is sent as
//! soon as the output pauses (nothing more is ready to read), when it is full, or when its
//! first line has waited [`LogBatch::MAX_HOLD`] — so a live viewer sees no delay, and a
//! step printing millions of short lines costs one event per thousand of them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use futures_util::{FutureExt as _, StreamExt as _};

use crate::backend::{LogChunk, LogStream, OutputStream};
use crate::lines::LineAssembler;
use crate::log_batch::LogBatch;
use crate::mask::Masker;
use crate::report::RunEvent;

use super::events::RunEvents;

/// Turns a step's output chunks into [`LogBatch`] events, numbering lines across retries.
pub(super) struct StepLog {
    events: Arc<RunEvents>,
    masker: Arc<Masker>,
    started: Instant,
    stdout: LineAssembler,
    stderr: LineAssembler,
    batches: Batches,
}

/// Lines waiting to be sent: the batch being filled and full ones.
struct Batches {
    step: String,
    /// Number of the next line.
    next_number: u64,
    /// The batch being filled.
    open: LogBatch,
    /// When `open` got its first line.
    open_since: Option<Instant>,
    /// Full batches, oldest first.
    full: VecDeque<LogBatch>,
}

impl Batches {
    fn new(step: &str) -> Self {
        Self {
            step: step.to_owned(),
            next_number: 1,
            open: LogBatch::new(step, 1),
            open_since: None,
            full: VecDeque::new(),
        }
    }

    /// Adds the next line; a batch that reaches its limits joins the full ones.
    fn add(&mut self, stream: OutputStream, text: &str, elapsed_ms: u64) {
        if self.open.is_empty() {
            self.open_since = Some(Instant::now());
        }
        self.open.push(stream, text, elapsed_ms);
        self.next_number += 1;
        if self.open.len() >= LogBatch::MAX_LINES || self.open.text_len() >= LogBatch::MAX_BYTES {
            self.close();
        }
    }

    /// Makes the open batch (if it has lines) a full one.
    fn close(&mut self) {
        if self.open.is_empty() {
            return;
        }
        let next = LogBatch::new(self.step.as_str(), self.next_number);
        self.full.push_back(std::mem::replace(&mut self.open, next));
        self.open_since = None;
    }

    /// True when the open batch's first line has waited long enough.
    fn open_too_long(&self) -> bool {
        self.open_since
            .is_some_and(|since| since.elapsed() >= LogBatch::MAX_HOLD)
    }

    fn is_empty(&self) -> bool {
        self.open.is_empty() && self.full.is_empty()
    }
}

impl StepLog {
    /// A log for `step` whose elapsed times count from now.
    pub(super) fn new(step: &str, events: Arc<RunEvents>, masker: Arc<Masker>) -> Self {
        Self {
            events,
            masker,
            started: Instant::now(),
            stdout: LineAssembler::default(),
            stderr: LineAssembler::default(),
            batches: Batches::new(step),
        }
    }

    /// Reads `output` to its end, then flushes unfinished lines. A read error ends the
    /// log with a line saying so; it does not fail the step (its exit code decides).
    ///
    /// Gathered lines are sent whenever the output has nothing more ready, so no line
    /// waits for output that has not been written yet. If this future is dropped half-way,
    /// unsent lines stay here for [`StepLog::flush`].
    pub(super) async fn follow(&mut self, mut output: LogStream) {
        loop {
            let item = if self.batches.is_empty() {
                output.next().await
            } else {
                match output.next().now_or_never() {
                    Some(item) => item,
                    None => {
                        self.send_all().await;
                        continue;
                    }
                }
            };
            match item {
                Some(Ok(chunk)) => {
                    self.chunk(chunk).await;
                    // Output that is always ready must not keep the runtime's thread (and
                    // the step's cancellation) waiting.
                    tokio::task::consume_budget().await;
                }
                Some(Err(e)) => {
                    self.note(&format!("gantry: reading the log failed: {e}"))
                        .await;
                    break;
                }
                None => break,
            }
        }
        self.flush().await;
    }

    /// Adds raw output; sends full batches, and the open one once it waited long enough.
    async fn chunk(&mut self, chunk: LogChunk) {
        let elapsed_ms = self.elapsed_ms();
        let (stream, batches) = (chunk.stream, &mut self.batches);
        let assembler = match stream {
            OutputStream::Stdout => &mut self.stdout,
            OutputStream::Stderr => &mut self.stderr,
        };
        assembler.push(&chunk.data, &self.masker, |line| {
            batches.add(stream, line, elapsed_ms);
        });
        if self.batches.open_too_long() {
            self.batches.close();
        }
        self.send_full().await;
    }

    /// Sends the unfinished last line of each stream, if any, and every unsent line.
    pub(super) async fn flush(&mut self) {
        let elapsed_ms = self.elapsed_ms();
        let batches = &mut self.batches;
        self.stdout.finish(&self.masker, |line| {
            batches.add(OutputStream::Stdout, line, elapsed_ms);
        });
        self.stderr.finish(&self.masker, |line| {
            batches.add(OutputStream::Stderr, line, elapsed_ms);
        });
        self.send_all().await;
    }

    /// Adds a line of Gantry's own (a retry, an approval) to the step's log, masked, and
    /// sends it with the lines before it.
    pub(super) async fn note(&mut self, text: &str) {
        let elapsed_ms = self.elapsed_ms();
        for line in text.lines() {
            let masked = self.masker.mask(line);
            self.batches.add(OutputStream::Stderr, &masked, elapsed_ms);
        }
        self.send_all().await;
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Sends every unsent line.
    async fn send_all(&mut self) {
        self.batches.close();
        self.send_full().await;
    }

    /// Sends the full batches, oldest first. Lines nobody takes (the consumer is gone, or
    /// too slow after a cancel) are dropped; the run goes on.
    async fn send_full(&mut self) {
        while !self.batches.full.is_empty() {
            // Room first: if this future is dropped while it waits, the batch is still
            // queued here and a later flush sends it.
            let permit = self.events.room(false).await;
            let Some(batch) = self.batches.full.pop_front() else {
                return;
            };
            match permit {
                Some(permit) => permit.send(RunEvent::Logs(batch)),
                None => self.batches.full.clear(),
            }
        }
    }
}
