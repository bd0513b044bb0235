//! A consumer that stops reading events cannot hold a cancelled run: the run ends, its
//! cleanup runs, and a consumer that is still reading gets the final step reports.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::fake::{AfterOutput, Call, FakeBackend, StepScript};
use common::{TempDir, plan, process_alive, read_pid, step, wait_for_file, within, workflow_id};
use gantry_runner::{
    LocalBackend, LogChunk, OutputStream, PipelineStatus, RunConfig, RunEvent, Runtime, StepStatus,
};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A runtime whose final reports wait only briefly for a stalled consumer after a cancel.
fn runtime(backend: Arc<dyn gantry_runner::Backend>) -> Runtime {
    let config = RunConfig {
        delivery_grace: Duration::from_millis(200),
        ..RunConfig::default()
    };
    Runtime::new(backend, config)
}

/// A step that prints a line, then neither prints nor ends.
fn talking_forever() -> StepScript {
    StepScript {
        chunks: vec![LogChunk {
            stream: OutputStream::Stdout,
            data: b"hello\n".to_vec(),
        }],
        after_output: AfterOutput::StaysOpen,
        hang: true,
        ..StepScript::default()
    }
}

/// Waits (polling, bounded by the test timeout) until nothing more fits in the channel.
async fn until_full<T>(rx: &mpsc::Receiver<T>) {
    while rx.len() < rx.max_capacity() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits (polling, bounded by the test timeout) until the backend was asked for `call`.
async fn until_called(backend: &FakeBackend, call: &Call) {
    while !backend.calls().contains(call) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_ends_and_cleans_up_while_nobody_reads_its_log() {
    within(async {
        let backend = Arc::new(FakeBackend::new());
        backend.script("talk", talking_forever());
        let rt = runtime(Arc::clone(&backend) as _);
        // Room for the pending and running reports; the log batch finds the channel full.
        let (tx, rx) = mpsc::channel(2);
        let cancel = CancellationToken::new();
        let p = plan(vec![step("talk", &[], json!({}))]);
        let id = workflow_id("stalled-log");
        let run = rt.run(&id, &p, tx, cancel.clone());
        let canceller = async {
            until_called(&backend, &Call::Start("talk".into())).await;
            until_full(&rx).await;
            cancel.cancel();
        };
        let (outcome, ()) = tokio::join!(run, canceller);
        assert_eq!(outcome.status, PipelineStatus::Cancelled, "{outcome:?}");
        let calls = backend.calls();
        assert!(calls.contains(&Call::Destroy("talk".into())), "{calls:?}");
        assert_eq!(calls.last(), Some(&Call::DestroyWorkflow), "{calls:?}");
        drop(rx);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_ends_while_nobody_reads_its_step_reports() {
    within(async {
        let backend = Arc::new(FakeBackend::new());
        let rt = runtime(Arc::clone(&backend) as _);
        // Too small for the pending reports of both steps: the run stalls before its setup.
        let (tx, rx) = mpsc::channel(1);
        let cancel = CancellationToken::new();
        let steps = vec![
            step("first", &[], json!({})),
            step("second", &[], json!({})),
        ];
        let id = workflow_id("stalled-reports");
        let p = plan(steps);
        let run = rt.run(&id, &p, tx, cancel.clone());
        let canceller = async {
            until_full(&rx).await;
            cancel.cancel();
        };
        let (outcome, ()) = tokio::join!(run, canceller);
        assert_eq!(outcome.status, PipelineStatus::Cancelled, "{outcome:?}");
        assert!(
            outcome
                .steps
                .iter()
                .all(|r| r.status == StepStatus::Cancelled),
            "{outcome:?}"
        );
        assert!(backend.calls().contains(&Call::DestroyWorkflow));
        drop(rx);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_times_out_is_destroyed_while_nobody_reads_its_log() {
    within(async {
        let backend = Arc::new(FakeBackend::new());
        backend.script("talk", talking_forever());
        let rt = runtime(Arc::clone(&backend) as _);
        let (tx, rx) = mpsc::channel(2);
        let cancel = CancellationToken::new();
        let p = plan(vec![step("talk", &[], json!({"timeout_secs": 1}))]);
        let id = workflow_id("stalled-timeout");
        let run = rt.run(&id, &p, tx, cancel.clone());
        // Without a cancel the stalled consumer holds the run, but not the timed-out step.
        let canceller = async {
            until_called(&backend, &Call::Destroy("talk".into())).await;
            cancel.cancel();
        };
        let (outcome, ()) = tokio::join!(run, canceller);
        assert_eq!(outcome.steps[0].status, StepStatus::Failure, "{outcome:?}");
        assert!(
            outcome.steps[0]
                .error
                .as_deref()
                .is_some_and(|e| e.contains("timed out"))
        );
        drop(rx);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_reads_again_gets_the_final_reports_of_a_cancelled_run() {
    within(async {
        let backend = Arc::new(FakeBackend::new());
        backend.script("talk", talking_forever());
        // The default grace: the consumer resumes reading well within it.
        let rt = Runtime::new(Arc::clone(&backend) as _, RunConfig::default());
        let (tx, mut rx) = mpsc::channel(2);
        let cancel = CancellationToken::new();
        let p = plan(vec![step("talk", &[], json!({}))]);
        let id = workflow_id("slow-reader");
        let run = rt.run(&id, &p, tx, cancel.clone());
        let reader = async {
            until_called(&backend, &Call::Start("talk".into())).await;
            until_full(&rx).await;
            cancel.cancel();
            let mut events = Vec::new();
            while let Some(event) = rx.recv().await {
                events.push(event);
            }
            events
        };
        let (outcome, events) = tokio::join!(run, reader);
        assert_eq!(outcome.status, PipelineStatus::Cancelled, "{outcome:?}");
        let last_report = events.iter().rev().find_map(|e| match e {
            RunEvent::Step(report) if report.step == "talk" => Some(report),
            _ => None,
        });
        assert_eq!(
            last_report.map(|r| r.status),
            Some(StepStatus::Cancelled),
            "{events:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_local_step_printing_to_nobody_is_killed() {
    within(async {
        let base = TempDir::new("stalled-base");
        let pids = TempDir::new("stalled-pids");
        let pid_file = pids.path().join("printer.pid");
        let backend = Arc::new(LocalBackend::with_temp_workspaces(base.path()));
        let rt = runtime(Arc::clone(&backend) as _);
        let env = json!({"environment": {"PID_FILE": pid_file.to_str().unwrap()}});
        let printer = step(
            "printer",
            &["echo $$ > $PID_FILE.tmp; mv $PID_FILE.tmp $PID_FILE; while :; do echo line; done"],
            env,
        );
        let (tx, rx) = mpsc::channel(4);
        let cancel = CancellationToken::new();
        let id = workflow_id("stalled-local");
        let p = plan(vec![printer]);
        let run = rt.run(&id, &p, tx, cancel.clone());
        let canceller = async {
            wait_for_file(&pid_file).await;
            until_full(&rx).await;
            cancel.cancel();
        };
        let (outcome, ()) = tokio::join!(run, canceller);
        assert_eq!(outcome.status, PipelineStatus::Cancelled, "{outcome:?}");
        assert!(
            !process_alive(read_pid(&pid_file)),
            "the step's process is gone"
        );
        let left: Vec<_> = std::fs::read_dir(base.path()).unwrap().collect();
        assert!(left.is_empty(), "workspace left behind: {left:?}");
        drop(rx);
    })
    .await;
}
