//! Shared helpers of the runner's integration tests.
#![allow(dead_code)] // each test binary uses a different subset

pub mod fake;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gantry_pipeline::plan::{Plan, Step};
use gantry_runner::{LogLine, RunEvent, RunOutcome, Runtime, StepReport, StepStatus, WorkflowId};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Every test body runs under this limit.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `body`, failing the test if it takes longer than [`TEST_TIMEOUT`].
pub async fn within<T>(body: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST_TIMEOUT, body)
        .await
        .expect("the test did not finish within its timeout")
}

/// A commands step; `extra` fields are merged over the defaults (JSON, as the IR is).
pub fn step(name: &str, commands: &[&str], extra: Value) -> Step {
    let mut value = json!({
        "name": name,
        "kind": "commands",
        "image": "local",
        "commands": commands,
        "workdir": "/workspace",
    });
    merge(&mut value, extra);
    serde_json::from_value(value).expect("test step is valid IR")
}

/// A plan with these steps and services.
pub fn plan_with(services: Vec<Step>, steps: Vec<Step>) -> Plan {
    let value = json!({
        "name": "test",
        "workspace": "/workspace",
        "services": services,
        "steps": steps,
    });
    serde_json::from_value(value).expect("test plan is valid IR")
}

/// A plan with these steps.
pub fn plan(steps: Vec<Step>) -> Plan {
    plan_with(Vec::new(), steps)
}

fn merge(base: &mut Value, extra: Value) {
    if let (Value::Object(base), Value::Object(extra)) = (base, extra) {
        base.extend(extra);
    }
}

/// A workflow id unique to this test process.
pub fn workflow_id(label: &str) -> WorkflowId {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    WorkflowId(format!("{label}-{}-{n}", std::process::id()))
}

/// What a run produced.
pub struct Finished {
    pub outcome: RunOutcome,
    pub events: Vec<RunEvent>,
}

impl Finished {
    /// The final report of `step`.
    pub fn report(&self, step: &str) -> &StepReport {
        self.outcome
            .steps
            .iter()
            .find(|r| r.step == step)
            .unwrap_or_else(|| panic!("no report for {step}: {:?}", self.outcome))
    }

    pub fn status(&self, step: &str) -> StepStatus {
        self.report(step).status
    }

    /// Log lines of `step`, in order.
    pub fn lines(&self, step: &str) -> Vec<LogLine<'_>> {
        self.events
            .iter()
            .filter_map(|e| match e {
                RunEvent::Logs(batch) if batch.step() == step => Some(batch.iter()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// Log texts of `step`, in order.
    pub fn texts(&self, step: &str) -> Vec<&str> {
        self.lines(step).iter().map(|l| l.text).collect()
    }

    /// Every log text of the run, joined by newlines.
    pub fn all_text(&self) -> String {
        let texts: Vec<&str> = self
            .events
            .iter()
            .filter_map(|e| match e {
                RunEvent::Logs(batch) => Some(batch.iter().map(|l| l.text)),
                _ => None,
            })
            .flatten()
            .collect();
        texts.join("\n")
    }
}

/// Runs `plan` to its end, collecting every event.
pub async fn run(runtime: &Runtime, id: &WorkflowId, plan: &Plan) -> Finished {
    run_cancellable(runtime, id, plan, CancellationToken::new()).await
}

/// Runs `plan` with a cancel token the test controls.
pub async fn run_cancellable(
    runtime: &Runtime,
    id: &WorkflowId,
    plan: &Plan,
    cancel: CancellationToken,
) -> Finished {
    let (tx, mut rx) = mpsc::channel(16);
    let collector = tokio::spawn(async move {
        let mut events = Vec::new();
        while let Some(event) = rx.recv().await {
            events.push(event);
        }
        events
    });
    let outcome = runtime.run(id, plan, tx, cancel).await;
    let events = collector.await.expect("collector task");
    Finished { outcome, events }
}

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("gantry-runner-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// True while process `pid` exists and is not a zombie.
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Reads a pid a step wrote into `path`.
pub fn read_pid(path: &Path) -> u32 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .parse()
        .expect("a pid")
}

/// Waits (polling, bounded by the test timeout) until `path` exists.
pub async fn wait_for_file(path: &Path) {
    while !path.exists() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (polling, bounded by the test timeout) until process `pid` is gone.
pub async fn wait_until_dead(pid: u32) {
    while process_alive(pid) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
