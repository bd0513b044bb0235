//! Benchmarks of the runtime on the local backend, run by `bench/local.sh`.
//!
//! `bench_local overhead`: a 20-step sequential plan of `true` through the runtime vs a
//! plain loop spawning `/bin/sh -c true` 20 times; prints the overhead per step.
//!
//! `bench_local throughput [short|100]`: one step printing 1,000,000 lines through the
//! runtime into a sink that counts bytes (over an event channel of 64 batches), vs the same
//! command read straight from a pipe; prints MB/s, the ratio, and the process's peak RSS
//! (VmHWM). The optional word picks one workload (for profiling).

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gantry_pipeline::plan::{Plan, Step};
use gantry_runner::{LocalBackend, PipelineStatus, RunConfig, RunEvent, Runtime, WorkflowId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const STEPS: usize = 20;
const ROUNDS: usize = 7;
const LINES: u64 = 1_000_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let which = std::env::args().nth(1).unwrap_or_default();
    match which.as_str() {
        "overhead" => runtime.block_on(overhead()),
        "throughput" => runtime.block_on(throughput()),
        _ => {
            eprintln!("usage: bench_local overhead|throughput");
            std::process::exit(2);
        }
    }
}

fn step(name: &str, commands: &[String], needs: Option<&str>) -> Step {
    let value = serde_json::json!({
        "name": name, "kind": "commands", "image": "local", "workdir": "/workspace",
        "commands": commands, "needs": needs.into_iter().collect::<Vec<_>>(),
    });
    serde_json::from_value(value).expect("bench step")
}

fn plan(steps: Vec<Step>) -> Plan {
    let value = serde_json::json!({"name": "bench", "workspace": "/workspace", "steps": steps});
    serde_json::from_value(value).expect("bench plan")
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `plan` on a fresh temp-workspace local backend, feeding events to `sink`.
async fn run_plan(
    plan: &Plan,
    secrets: BTreeMap<String, String>,
    mut sink: impl FnMut(RunEvent) + Send + 'static,
) -> Duration {
    let base = std::env::temp_dir().join(format!("gantry-bench-{}", std::process::id()));
    let backend = Arc::new(LocalBackend::with_temp_workspaces(&base));
    let config = RunConfig {
        secrets,
        ..RunConfig::default()
    };
    let runtime = Runtime::new(backend, config);
    // Events carry batches of up to 1024 lines: 64 of them hold plenty.
    let (tx, mut rx) = mpsc::channel(64);
    let consumer = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            sink(event);
        }
    });
    let id = WorkflowId("bench".into());
    let started = Instant::now();
    let outcome = runtime.run(&id, plan, tx, CancellationToken::new()).await;
    consumer.await.expect("consumer");
    let took = started.elapsed();
    assert_eq!(outcome.status, PipelineStatus::Success, "{outcome:?}");
    let _ = std::fs::remove_dir_all(&base);
    took
}

async fn overhead() {
    let commands = ["true".to_owned()];
    let steps: Vec<Step> = (0..STEPS)
        .map(|i| {
            let needs = (i > 0).then(|| format!("s{}", i - 1));
            step(&format!("s{i}"), &commands, needs.as_deref())
        })
        .collect();
    let plan = plan(steps);
    let mut raw = Vec::new();
    let mut through = Vec::new();
    for _ in 0..ROUNDS {
        let started = Instant::now();
        for _ in 0..STEPS {
            let status = Command::new("/bin/sh").args(["-c", "true"]).status();
            assert!(status.expect("spawn sh").success());
        }
        raw.push(started.elapsed());
        through.push(run_plan(&plan, BTreeMap::new(), |_| {}).await);
    }
    let (raw, through) = (median(raw), median(through));
    let per_step = (ms(through) - ms(raw)) / STEPS as f64;
    println!("orchestration overhead ({STEPS} sequential steps of `true`, median of {ROUNDS})");
    println!(
        "  baseline  fork/exec `/bin/sh -c true` x{STEPS}: {:8.2} ms",
        ms(raw)
    );
    println!(
        "  runtime   local backend, whole run:        {:8.2} ms",
        ms(through)
    );
    println!(
        "  ratio runtime/baseline: {:.2}x   overhead: {per_step:.2} ms/step (target <= 5)",
        ms(through) / ms(raw)
    );
}

/// Bytes and seconds of `sh -c script` read straight from a pipe.
fn raw_pipe(script: &str) -> (u64, Duration) {
    let started = Instant::now();
    let mut child = Command::new("/bin/sh")
        .args(["-c", script])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut buf = vec![0u8; 64 * 1024];
    let mut bytes = 0u64;
    loop {
        match stdout.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes += n as u64,
            Err(e) => panic!("read: {e}"),
        }
    }
    assert!(child.wait().expect("wait").success());
    (bytes, started.elapsed())
}

/// Bytes (text + newline per line), lines, and seconds of `script` through the runtime.
async fn through_runtime(script: &str, secrets: BTreeMap<String, String>) -> (u64, u64, Duration) {
    let bytes = Arc::new(AtomicU64::new(0));
    let lines = Arc::new(AtomicU64::new(0));
    let (sink_bytes, sink_lines) = (Arc::clone(&bytes), Arc::clone(&lines));
    let plan = plan(vec![step("print", &[script.to_owned()], None)]);
    let took = run_plan(&plan, secrets, move |event| {
        if let RunEvent::Logs(batch) = event {
            // Text plus one newline per line, as the command wrote it.
            let bytes = batch.text_len() + batch.len();
            sink_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
            sink_lines.fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
    })
    .await;
    (
        bytes.load(Ordering::Relaxed),
        lines.load(Ordering::Relaxed),
        took,
    )
}

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mb_per_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / 1e6 / took.as_secs_f64()
}

async fn throughput() {
    let secrets = BTreeMap::from([
        ("token".to_owned(), "ghp_0123456789abcdefghij".to_owned()),
        ("password".to_owned(), "correct-horse-battery".to_owned()),
        (
            "key".to_owned(),
            "-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34\n-----END KEY-----".to_owned(),
        ),
    ]);
    let workloads = [
        ("short lines (`seq`)", format!("seq 1 {LINES}")),
        (
            "100-byte lines",
            format!("yes '{}' | head -n {LINES}", "x".repeat(99)),
        ),
    ];
    let rss_before = vm_hwm_kib();
    println!("log throughput: {LINES} lines through the runtime into a counting sink");
    // `bench_local throughput short|100`: only the workloads whose label contains it.
    let only = std::env::args().nth(2).unwrap_or_default();
    for (label, script) in workloads.iter().filter(|(l, _)| l.contains(only.as_str())) {
        let (raw_bytes, raw_took) = raw_pipe(script);
        let (bytes, lines, took) = through_runtime(script, BTreeMap::new()).await;
        let (masked_bytes, _, masked_took) = through_runtime(script, secrets.clone()).await;
        let raw = mb_per_s(raw_bytes, raw_took);
        let plain = mb_per_s(bytes, took);
        let masked = mb_per_s(masked_bytes, masked_took);
        println!("  {label}: {lines} lines, {:.1} MB", bytes as f64 / 1e6);
        println!("    baseline  sh -c '...' read from a pipe: {raw:9.1} MB/s");
        println!(
            "    runtime   no secrets:                   {plain:9.1} MB/s  ({:.2}x of baseline, {:.2} M lines/s)",
            plain / raw,
            lines as f64 / 1e6 / took.as_secs_f64()
        );
        println!(
            "    runtime   3 secrets masked:             {masked:9.1} MB/s  ({:.2}x of baseline)",
            masked / raw
        );
    }
    let rss_after = vm_hwm_kib();
    println!(
        "  peak RSS (VmHWM): {:.1} MiB after all runs ({:.1} MiB before) — target >= 50 MB/s, bounded memory",
        rss_after as f64 / 1024.0,
        rss_before as f64 / 1024.0
    );
}
