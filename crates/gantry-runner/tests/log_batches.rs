//! Log lines travel in batches: many lines per event, numbered across batches, bounded in
//! size, and never held back while the step's output pauses or keeps flowing.

mod common;

use std::sync::Arc;

use common::fake::{AfterOutput, FakeBackend, StepScript};
use common::{plan, run, step, within, workflow_id};
use gantry_runner::{
    LogBatch, LogChunk, OutputStream, PipelineStatus, RunConfig, RunEvent, Runtime,
};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn runtime(backend: &Arc<FakeBackend>) -> Runtime {
    Runtime::new(backend.clone(), RunConfig::default())
}

fn stdout(data: Vec<u8>) -> LogChunk {
    LogChunk {
        stream: OutputStream::Stdout,
        data,
    }
}

fn batches(events: &[RunEvent]) -> Vec<&LogBatch> {
    events
        .iter()
        .filter_map(|e| match e {
            RunEvent::Logs(batch) => Some(batch),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_short_lines_arrive_in_few_batches_numbered_in_order() {
    within(async {
        let text: String = (1..=10_000).map(|n| format!("{n}\n")).collect();
        let chunks = text.as_bytes().chunks(4096).map(|c| stdout(c.to_vec()));
        let backend = Arc::new(FakeBackend::new());
        let script = StepScript {
            chunks: chunks.collect(),
            ..StepScript::default()
        };
        backend.script("count", script);
        let p = plan(vec![step("count", &[], json!({}))]);
        let done = run(&runtime(&backend), &workflow_id("batches"), &p).await;
        assert_eq!(done.outcome.status, PipelineStatus::Success);
        let lines = done.lines("count");
        let numbers: Vec<u64> = lines.iter().map(|l| l.number).collect();
        assert_eq!(numbers, (1..=10_000).collect::<Vec<u64>>());
        assert_eq!(lines[9_999].text, "10000");
        let batches = batches(&done.events);
        assert!(batches.len() <= 100, "{} batches", batches.len());
        assert!(batches.iter().all(|b| b.len() <= LogBatch::MAX_LINES));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_closed_at_the_byte_limit() {
    within(async {
        let line = format!("{}\n", "x".repeat(10 * 1024));
        let backend = Arc::new(FakeBackend::new());
        let script = StepScript {
            chunks: vec![stdout(line.repeat(20).into_bytes())],
            ..StepScript::default()
        };
        backend.script("wide", script);
        let p = plan(vec![step("wide", &[], json!({}))]);
        let done = run(&runtime(&backend), &workflow_id("bytes"), &p).await;
        let batches = batches(&done.events);
        assert_eq!(batches.iter().map(|b| b.len()).sum::<usize>(), 20);
        assert!(batches.len() >= 3, "{} batches", batches.len());
        // Closed once it reaches the limit: never more than one line past it.
        let most = LogBatch::MAX_BYTES + 10 * 1024;
        assert!(batches.iter().all(|b| b.text_len() <= most));
    })
    .await;
}

/// Runs a one-step plan whose step never ends and cancels it once a line containing
/// `wanted` arrived. Returns that line's batch. If lines were held back until the output
/// ends, this would never return (the test's timeout fails it).
async fn first_line_while_running(script: StepScript, wanted: &str) -> LogBatch {
    let backend = Arc::new(FakeBackend::new());
    backend.script("talk", script);
    let p = plan(vec![step("talk", &[], json!({}))]);
    let runtime = runtime(&backend);
    let cancel = CancellationToken::new();
    let (tx, mut rx) = mpsc::channel(16);
    let id = workflow_id("live");
    let run = runtime.run(&id, &p, tx, cancel.clone());
    let watch = async {
        let mut seen = None;
        while let Some(event) = rx.recv().await {
            if let RunEvent::Logs(batch) = event
                && seen.is_none()
                && batch.iter().any(|l| l.text.contains(wanted))
            {
                seen = Some(batch);
                cancel.cancel();
            }
        }
        seen
    };
    let (outcome, seen) = tokio::join!(run, watch);
    assert_eq!(outcome.status, PipelineStatus::Cancelled, "{outcome:?}");
    seen.expect("the line arrived")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_arrives_while_the_output_pauses() {
    within(async {
        let script = StepScript {
            chunks: vec![stdout(b"hello\npartial".to_vec())],
            after_output: AfterOutput::StaysOpen,
            hang: true,
            ..StepScript::default()
        };
        let batch = first_line_while_running(script, "hello").await;
        assert_eq!(batch.iter().map(|l| l.text).collect::<Vec<_>>(), ["hello"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_arrives_while_the_output_keeps_flowing() {
    within(async {
        let script = StepScript {
            chunks: vec![stdout(b"first\n".to_vec())],
            after_output: AfterOutput::KeepsFlowing,
            hang: true,
            ..StepScript::default()
        };
        let batch = first_line_while_running(script, "first").await;
        assert_eq!(batch.get(0).map(|l| l.number), Some(1));
    })
    .await;
}
