//! A backend that runs nothing: each step follows a script (log chunks, exit, errors), and
//! every call is recorded. For runtime semantics that need exact control.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use gantry_pipeline::plan::{Plan, Step};
use gantry_runner::{
    Backend, BackendError, LogChunk, LogStream, OutputStream, StepExit, WorkflowId,
};
use tokio::sync::Notify;

/// What a step's output does after its scripted chunks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AfterOutput {
    /// It ends.
    #[default]
    Ends,
    /// It stays open without another byte, until the runtime stops reading.
    StaysOpen,
    /// It yields empty chunks, always ready, until the runtime stops reading.
    KeepsFlowing,
}

/// How one step behaves.
#[derive(Debug, Clone)]
pub struct StepScript {
    /// Output, chunk by chunk.
    pub chunks: Vec<LogChunk>,
    /// What the output does after `chunks`.
    pub after_output: AfterOutput,
    /// How it ends.
    pub exit: StepExit,
    /// `start_step` fails with this.
    pub start_error: Option<String>,
    /// `wait_step` never returns (until the runtime gives up on it).
    pub hang: bool,
    /// `prepare_step` fails with this.
    pub prepare_error: Option<String>,
    /// `wait_step` returns only once `prepare_step` was called for this step.
    pub wait_for_prepare_of: Option<String>,
    /// `start_step` returns only once the test called [`FakeBackend::release_starts`].
    pub start_held: bool,
}

impl Default for StepScript {
    fn default() -> Self {
        Self {
            chunks: Vec::new(),
            after_output: AfterOutput::Ends,
            exit: StepExit {
                code: 0,
                oom_killed: false,
            },
            start_error: None,
            hang: false,
            prepare_error: None,
            wait_for_prepare_of: None,
            start_held: false,
        }
    }
}

impl StepScript {
    /// Succeeds after writing these stdout chunks.
    pub fn output(chunks: &[&[u8]]) -> Self {
        Self {
            chunks: chunks
                .iter()
                .map(|c| LogChunk {
                    stream: OutputStream::Stdout,
                    data: c.to_vec(),
                })
                .collect(),
            ..Self::default()
        }
    }
}

/// A recorded backend call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Call {
    Setup,
    Prepare(String),
    Start(String),
    Destroy(String),
    DestroyWorkflow,
}

/// The scripted backend.
#[derive(Default)]
pub struct FakeBackend {
    scripts: Mutex<HashMap<String, StepScript>>,
    calls: Mutex<Vec<(Call, Instant)>>,
    running: AtomicUsize,
    peak: AtomicUsize,
    /// `wait_step` holds every step until this many ran at once (then never again).
    gate: Option<usize>,
    gate_open: Notify,
    /// `setup_workflow` fails with this.
    setup_error: Option<String>,
    /// Steps prepared and not started or destroyed since.
    prepared: Mutex<HashSet<String>>,
    /// Most steps prepared and not started at once.
    prepared_peak: AtomicUsize,
    /// Signalled on every `prepare_step`.
    prepare_seen: Notify,
    /// `CI_BUILD_STATUS` each step was prepared / started with.
    statuses: Mutex<HashMap<Call, String>>,
    /// Set once held starts may return.
    starts_released: tokio::sync::watch::Sender<bool>,
}

impl FakeBackend {
    pub fn new() -> Self {
        Self::default()
    }

    /// Holds each step in `wait_step` until `peak` steps ran at the same time.
    pub fn with_gate(peak: usize) -> Self {
        Self {
            gate: Some(peak),
            ..Self::default()
        }
    }

    /// `setup_workflow` fails with `error`.
    pub fn failing_setup(error: &str) -> Self {
        Self {
            setup_error: Some(error.to_owned()),
            ..Self::default()
        }
    }

    pub fn script(&self, step: &str, script: StepScript) {
        self.scripts.lock().unwrap().insert(step.to_owned(), script);
    }

    fn script_of(&self, step: &str) -> StepScript {
        self.scripts
            .lock()
            .unwrap()
            .get(step)
            .cloned()
            .unwrap_or_default()
    }

    fn record(&self, call: Call) {
        self.calls.lock().unwrap().push((call, Instant::now()));
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|(c, _)| c.clone())
            .collect()
    }

    /// Lets every held `start_step` return.
    pub fn release_starts(&self) {
        self.starts_released.send_replace(true);
    }

    /// Most steps prepared and not (yet) started at once.
    pub fn prepared_peak(&self) -> usize {
        self.prepared_peak.load(Ordering::SeqCst)
    }

    /// `CI_BUILD_STATUS` of the step of `call` (a `Prepare` or a `Start`).
    pub fn build_status(&self, call: &Call) -> Option<String> {
        self.statuses.lock().unwrap().get(call).cloned()
    }

    fn note_status(&self, call: Call, step: &Step) {
        if let Some(status) = step.environment.get("CI_BUILD_STATUS") {
            self.statuses.lock().unwrap().insert(call, status.clone());
        }
    }

    fn was_prepared(&self, step: &str) -> bool {
        self.calls().contains(&Call::Prepare(step.to_owned()))
    }

    /// Most steps that were between start and end of wait at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Backend for FakeBackend {
    fn name(&self) -> &'static str {
        "fake"
    }

    async fn probe(&self) -> Result<(), BackendError> {
        Ok(())
    }

    async fn reap_leftovers(&self) -> Result<usize, BackendError> {
        Ok(0)
    }

    async fn setup_workflow(&self, _id: &WorkflowId, _plan: &Plan) -> Result<(), BackendError> {
        self.record(Call::Setup);
        match &self.setup_error {
            Some(e) => Err(BackendError::Unavailable(e.clone())),
            None => Ok(()),
        }
    }

    async fn prepare_step(
        &self,
        _id: &WorkflowId,
        step: &Step,
        _secrets: &[(String, String)],
    ) -> Result<(), BackendError> {
        self.record(Call::Prepare(step.name.clone()));
        self.note_status(Call::Prepare(step.name.clone()), step);
        self.prepare_seen.notify_waiters();
        if let Some(e) = self.script_of(&step.name).prepare_error {
            return Err(BackendError::Other(e));
        }
        let mut prepared = self.prepared.lock().unwrap();
        prepared.insert(step.name.clone());
        self.prepared_peak
            .fetch_max(prepared.len(), Ordering::SeqCst);
        Ok(())
    }

    async fn start_step(
        &self,
        _id: &WorkflowId,
        step: &Step,
        _secrets: &[(String, String)],
    ) -> Result<(), BackendError> {
        self.record(Call::Start(step.name.clone()));
        self.note_status(Call::Start(step.name.clone()), step);
        self.prepared.lock().unwrap().remove(&step.name);
        if self.script_of(&step.name).start_held {
            let mut released = self.starts_released.subscribe();
            let _ = released.wait_for(|r| *r).await;
        }
        if let Some(e) = self.script_of(&step.name).start_error {
            return Err(BackendError::Other(e));
        }
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        if self.gate.is_some_and(|gate| now >= gate) {
            self.gate_open.notify_waiters();
        }
        Ok(())
    }

    async fn logs(&self, _id: &WorkflowId, step: &Step) -> Result<LogStream, BackendError> {
        use futures_util::StreamExt as _;
        let script = self.script_of(&step.name);
        let chunks = futures_util::stream::iter(script.chunks.into_iter().map(Ok));
        Ok(match script.after_output {
            AfterOutput::Ends => Box::pin(chunks),
            AfterOutput::StaysOpen => Box::pin(chunks.chain(futures_util::stream::pending())),
            AfterOutput::KeepsFlowing => {
                Box::pin(chunks.chain(futures_util::stream::repeat_with(|| {
                    Ok(LogChunk {
                        stream: OutputStream::Stdout,
                        data: Vec::new(),
                    })
                })))
            }
        })
    }

    async fn wait_step(&self, _id: &WorkflowId, step: &Step) -> Result<StepExit, BackendError> {
        let script = self.script_of(&step.name);
        if let Some(other) = &script.wait_for_prepare_of {
            loop {
                let seen = self.prepare_seen.notified();
                if self.was_prepared(other) {
                    break;
                }
                seen.await;
            }
        }
        if script.hang {
            std::future::pending::<()>().await;
        }
        if let Some(gate) = self.gate {
            loop {
                let opened = self.gate_open.notified();
                if self.peak() >= gate {
                    break;
                }
                opened.await;
            }
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(script.exit)
    }

    async fn destroy_step(&self, _id: &WorkflowId, step: &Step) -> Result<(), BackendError> {
        self.record(Call::Destroy(step.name.clone()));
        self.prepared.lock().unwrap().remove(&step.name);
        Ok(())
    }

    async fn destroy_workflow(&self, _id: &WorkflowId) -> Result<(), BackendError> {
        self.record(Call::DestroyWorkflow);
        Ok(())
    }
}
