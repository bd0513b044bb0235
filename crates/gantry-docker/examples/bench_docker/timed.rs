//! A `Backend` wrapper that adds up how long each call takes, to show where time goes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::StreamExt;
use gantry_pipeline::plan::{Plan, Step};
use gantry_runner::{Backend, BackendError, LogStream, StepExit, WorkflowId};

/// Call name → (count, total time).
pub type Totals = BTreeMap<&'static str, (u32, Duration)>;

/// Times every call of the wrapped backend; `logs` counts until its stream ends.
pub struct Timed<B> {
    inner: Arc<B>,
    totals: Arc<Mutex<Totals>>,
}

impl<B> Timed<B> {
    /// Wraps `inner`.
    pub fn new(inner: Arc<B>) -> Self {
        Self {
            inner,
            totals: Arc::default(),
        }
    }

    /// What was measured so far, and resets it.
    pub fn take(&self) -> Totals {
        std::mem::take(&mut *self.totals.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn add(&self, call: &'static str, since: Instant) {
        add(&self.totals, call, since);
    }
}

fn add(totals: &Mutex<Totals>, call: &'static str, since: Instant) {
    let mut totals = totals.lock().unwrap_or_else(|e| e.into_inner());
    let entry = totals.entry(call).or_default();
    entry.0 += 1;
    entry.1 += since.elapsed();
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
        self.add("setup_workflow", t);
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
        self.add("prepare_step", t);
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
        self.add("start_step", t);
        r
    }

    async fn logs(&self, id: &WorkflowId, step: &Step) -> Result<LogStream, BackendError> {
        let t = Instant::now();
        let stream = self.inner.logs(id, step).await?;
        let totals = self.totals.clone();
        let mut ended = false;
        Ok(Box::pin(stream.chain(futures_util::stream::poll_fn(
            move |_| {
                if !ended {
                    ended = true;
                    add(&totals, "logs (until end)", t);
                }
                std::task::Poll::Ready(None)
            },
        ))))
    }

    async fn wait_step(&self, id: &WorkflowId, step: &Step) -> Result<StepExit, BackendError> {
        let t = Instant::now();
        let r = self.inner.wait_step(id, step).await;
        self.add("wait_step", t);
        r
    }

    async fn destroy_step(&self, id: &WorkflowId, step: &Step) -> Result<(), BackendError> {
        let t = Instant::now();
        let r = self.inner.destroy_step(id, step).await;
        self.add("destroy_step", t);
        r
    }

    async fn destroy_workflow(&self, id: &WorkflowId) -> Result<(), BackendError> {
        let t = Instant::now();
        let r = self.inner.destroy_workflow(id).await;
        self.add("destroy_workflow", t);
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
