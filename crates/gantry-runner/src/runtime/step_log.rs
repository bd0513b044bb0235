//! One step's log: reassembled, masked, numbered lines sent as events.

use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::backend::{LogChunk, LogStream, OutputStream};
use crate::lines::LineAssembler;
use crate::mask::Masker;
use crate::report::{LogLine, RunEvent};

/// Turns a step's output chunks into [`LogLine`] events, numbering lines across retries.
pub(super) struct StepLog {
    step: String,
    events: mpsc::Sender<RunEvent>,
    masker: Arc<Masker>,
    number: u64,
    started: Instant,
    stdout: LineAssembler,
    stderr: LineAssembler,
    ready: Vec<String>,
}

impl StepLog {
    /// A log for `step` whose elapsed times count from now.
    pub(super) fn new(step: &str, events: mpsc::Sender<RunEvent>, masker: Arc<Masker>) -> Self {
        Self {
            step: step.to_owned(),
            events,
            masker,
            number: 0,
            started: Instant::now(),
            stdout: LineAssembler::default(),
            stderr: LineAssembler::default(),
            ready: Vec::new(),
        }
    }

    /// Reads `output` to its end, then flushes unfinished lines. A read error ends the
    /// log with a line saying so; it does not fail the step (its exit code decides).
    pub(super) async fn follow(&mut self, mut output: LogStream) {
        while let Some(item) = output.next().await {
            match item {
                Ok(chunk) => self.chunk(chunk).await,
                Err(e) => {
                    self.note(&format!("gantry: reading the log failed: {e}"))
                        .await;
                    break;
                }
            }
        }
        self.flush().await;
    }

    /// Adds raw output; sends every line it completes.
    pub(super) async fn chunk(&mut self, chunk: LogChunk) {
        let assembler = match chunk.stream {
            OutputStream::Stdout => &mut self.stdout,
            OutputStream::Stderr => &mut self.stderr,
        };
        assembler.push(&chunk.data, &self.masker, &mut self.ready);
        self.send_ready(chunk.stream).await;
    }

    /// Sends the unfinished last line of each stream, if any.
    pub(super) async fn flush(&mut self) {
        self.stdout.finish(&self.masker, &mut self.ready);
        self.send_ready(OutputStream::Stdout).await;
        self.stderr.finish(&self.masker, &mut self.ready);
        self.send_ready(OutputStream::Stderr).await;
    }

    /// Adds a line of Gantry's own (a retry, an approval) to the step's log, masked.
    pub(super) async fn note(&mut self, text: &str) {
        for line in text.lines() {
            let masked = self.masker.mask(line).into_owned();
            self.ready.push(masked);
        }
        self.send_ready(OutputStream::Stderr).await;
    }

    async fn send_ready(&mut self, stream: OutputStream) {
        if self.ready.is_empty() {
            return;
        }
        let elapsed_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        for text in self.ready.drain(..) {
            self.number += 1;
            let line = LogLine {
                step: self.step.clone(),
                number: self.number,
                stream,
                text,
                elapsed_ms,
            };
            // `try_send` first: a burst of lines then costs no future per line. A caller
            // that stopped listening does not stop the run.
            match self.events.try_send(RunEvent::Log(line)) {
                Err(mpsc::error::TrySendError::Full(event)) => {
                    let _ = self.events.send(event).await;
                }
                Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }
}
