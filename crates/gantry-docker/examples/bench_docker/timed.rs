//! A `Backend` wrapper that adds up how long each call takes, and keeps when each call
//! began and ended, to show where time goes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::StreamExt;
use gantry_pipeline::plan::{Plan, Step};
use gantry_runner::{Backend, BackendError, LogStream, StepExit, WorkflowId};

/// Call name → (count, total time).
pub type Totals = BTreeMap<&'static str, (u32, Duration)>;

/// One call: which, for which step (empty for workflow calls), when it began and ended
/// (since the measurement began).
#[derive(Debug, Clone)]
pub struct Span {
    pub call: &'static str,
    pub step: String,
    pub begin: Duration,
    pub end: Duration,
}

/// What was measured since the last [`Timed::take`].
#[derive(Default)]
pub struct Measured {
    pub totals: Totals,
    pub spans: Vec<Span>,
}

struct Record {
    epoch: Instant,
    measured: Measured,
}

/// Times every call of the wrapped backend; `logs` counts until its stream ends.
pub struct Timed<B> {
    inner: Arc<B>,
    record: Arc<Mutex<Record>>,
}

impl<B> Timed<B> {
    /// Wraps `inner`.
    pub fn new(inner: Arc<B>) -> Self {
        let record = Record {
            epoch: Instant::now(),
            measured: Measured::default(),
        };
        Self {
            inner,
            record: Arc::new(Mutex::new(record)),
        }
    }

    /// What was measured so far; the next measurement begins now.
    pub fn take(&self) -> Measured {
        let mut record = self.record.lock().unwrap_or_else(|e| e.into_inner());
        record.epoch = Instant::now();
        std::mem::take(&mut record.measured)
    }

    fn add(&self, call: &'static str, step: &str, since: Instant) {
        add(&self.record, call, step, since);
    }
}

fn add(record: &Mutex<Record>, call: &'static str, step: &str, since: Instant) {
    let mut record = record.lock().unwrap_or_else(|e| e.into_inner());
    let begin = since.saturating_duration_since(record.epoch);
    let end = record.epoch.elapsed();
    let entry = record.measured.totals.entry(call).or_default();
    entry.0 += 1;
    entry.1 += end.saturating_sub(begin);
    record.measured.spans.push(Span {
        call,
        step: step.to_string(),
        begin,
        end,
    });
}

#[async_trait]
impl<B: Backend + 'static> Backend for Timed<B> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn probe(&self) -> Result<(), BackendError> {
        self.inner.probe().await
    }

    async fn reap_leftovers(&self) -> Result<usize, BackendError> {
        self.inner.reap_leftovers().await
    }

    async fn setup_workflow(&self, id: &WorkflowId, plan: &Plan) -> Result<(), BackendError> {
        let t = Instant::now();
        let r = self.inner.setup_workflow(id, plan).await;
        self.add("setup_workflow", "", t);
        r
    }

    async fn prepare_step(
        &self,
        id: &WorkflowId,
        step: &Step,
        secrets: &[(String, String)],
    ) -> Result<(), BackendError> {
        let t = Instant::now();
        let r = self.inner.prepare_step(id, step, secrets).await;
        self.add("prepare_step", &step.name, t);
        r
    }

    async fn start_step(
        &self,
        id: &WorkflowId,
        step: &Step,
        secrets: &[(String, String)],
    ) -> Result<(), BackendError> {
        let t = Instant::now();
        let r = self.inner.start_step(id, step, secrets).await;
        self.add("start_step", &step.name, t);
        r
    }

    async fn logs(&self, id: &WorkflowId, step: &Step) -> Result<LogStream, BackendError> {
        let t = Instant::now();
        let stream = self.inner.logs(id, step).await?;
        let record = self.record.clone();
        let step = step.name.clone();
        let mut ended = false;
        Ok(Box::pin(stream.chain(futures_util::stream::poll_fn(
            move |_| {
                if !ended {
                    ended = true;
                    add(&record, "logs (until end)", &step, t);
                }
                std::task::Poll::Ready(None)
            },
        ))))
    }

    async fn wait_step(&self, id: &WorkflowId, step: &Step) -> Result<StepExit, BackendError> {
        let t = Instant::now();
        let r = self.inner.wait_step(id, step).await;
        self.add("wait_step", &step.name, t);
        r
    }

    async fn destroy_step(&self, id: &WorkflowId, step: &Step) -> Result<(), BackendError> {
        let t = Instant::now();
        let r = self.inner.destroy_step(id, step).await;
        self.add("destroy_step", &step.name, t);
        r
    }

    async fn destroy_workflow(&self, id: &WorkflowId) -> Result<(), BackendError> {
        let t = Instant::now();
        let r = self.inner.destroy_workflow(id).await;
        self.add("destroy_workflow", "", t);
        r
    }
}

/// Prints a breakdown: calls, total and mean time per call.
pub fn print(label: &str, totals: &Totals) {
    println!("  {label}:");
    for (call, (count, total)) in totals {
        let mean = total.as_secs_f64() * 1000.0 / f64::from((*count).max(1));
        println!(
            "    {call:<18} x{count:<4} total {:>8.1} ms   mean {mean:>6.1} ms",
            total.as_secs_f64() * 1000.0
        );
    }
}

/// Prints, per step of one run, where its time went: the pause between the end of the
/// previous step's wait and this step's start call, the start call, the pause before the
/// wait call, the wait, and how far ahead of the start its preparation ended.
pub fn print_timeline(spans: &[Span]) {
    let find = |call: &str, step: &str| spans.iter().find(|s| s.call == call && s.step == step);
    let mut starts: Vec<&Span> = spans.iter().filter(|s| s.call == "start_step").collect();
    starts.sort_by_key(|s| s.begin);
    let ms = |d: f64| d * 1000.0;
    let secs = |d: Duration| d.as_secs_f64();
    println!("timeline of the last run through the Runtime (ms):");
    println!("  step    after prev wait   start   before wait     wait   prepared ahead");
    let mut sums = [0.0f64; 5];
    let mut previous_wait_end: Option<Duration> = None;
    for start in &starts {
        let wait = find("wait_step", &start.step);
        let prepared = find("prepare_step", &start.step);
        let gap = previous_wait_end.map(|end| secs(start.begin) - secs(end));
        let row = [
            gap.unwrap_or(f64::NAN),
            secs(start.end) - secs(start.begin),
            wait.map_or(f64::NAN, |w| secs(w.begin) - secs(start.end)),
            wait.map_or(f64::NAN, |w| secs(w.end) - secs(w.begin)),
            prepared.map_or(f64::NAN, |p| secs(start.begin) - secs(p.end)),
        ];
        println!(
            "  {:<6} {:>15.1} {:>7.1} {:>13.1} {:>8.1} {:>16.1}",
            start.step,
            ms(row[0]),
            ms(row[1]),
            ms(row[2]),
            ms(row[3]),
            ms(row[4])
        );
        for (sum, value) in sums.iter_mut().zip(row) {
            if value.is_finite() {
                *sum += value;
            }
        }
        previous_wait_end = wait.map(|w| w.end);
    }
    let n = starts.len().max(1) as f64;
    println!(
        "  mean   {:>15.1} {:>7.1} {:>13.1} {:>8.1} {:>16.1}",
        ms(sums[0] / (n - 1.0).max(1.0)),
        ms(sums[1] / n),
        ms(sums[2] / n),
        ms(sums[3] / n),
        ms(sums[4] / (n - 1.0).max(1.0))
    );
}
