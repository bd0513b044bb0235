//! Benchmark: 20 trivial sequential steps through the Docker backend (directly and through
//! the Runtime) against a shell loop of `docker run --rm` measured in the same run.
//!
//! Run it with `bash bench/docker.sh` (release build, test image built first).
//! Options: `--steps N` (default 20), `--rounds R` (default 3; the median is reported),
//! `--calls` (also print how long each backend call took, summed over all rounds).

mod timed;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use gantry_docker::{DockerBackend, DockerConfig};
use gantry_pipeline::plan::{Plan, PullPolicy, Resources, RunOn, Step, StepKind};
use gantry_runner::{Backend, PipelineStatus, RunConfig, Runtime, WorkflowId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use timed::{Timed, Totals};

const IMAGE: &str = "gantry-test/busybox:latest";

type BoxError = Box<dyn std::error::Error>;

/// What to measure.
struct Options {
    steps: usize,
    rounds: usize,
    calls: bool,
}

fn main() -> Result<(), BoxError> {
    let options = parse_args()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench(options))
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        steps: 20,
        rounds: 3,
        calls: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--calls" {
            options.calls = true;
            continue;
        }
        let value = args.next().and_then(|v| v.parse::<usize>().ok());
        match (arg.as_str(), value) {
            ("--steps", Some(v)) if v > 0 => options.steps = v,
            ("--rounds", Some(v)) if v > 0 => options.rounds = v,
            _ => {
                return Err(format!(
                    "usage: bench_docker [--steps N] [--rounds R] [--calls] (at `{arg}`)"
                ));
            }
        }
    }
    Ok(options)
}

/// Median times of the four ways, and the per-call breakdown of the two backend ways.
struct Figures {
    shell: Duration,
    shell_on_network: Duration,
    direct: Duration,
    runtime: Duration,
    direct_calls: Totals,
    runtime_calls: Totals,
}

async fn bench(options: Options) -> Result<(), BoxError> {
    let mut config = DockerConfig::default();
    let bench_id = format!("bench-{}", std::process::id());
    config
        .extra_labels
        .insert("gantry.bench".into(), bench_id.clone());
    let backend = Arc::new(Timed::new(Arc::new(DockerBackend::connect(config).await?)));
    let plan = chain(options.steps);
    // Warm-up: the first container start pays for caches the others reuse.
    docker_run_loop(1, None)?;
    backend_direct(backend.as_ref(), &plan, &format!("{bench_id}-warmup")).await?;
    backend.take();
    // The backend runs every step on a per-workflow bridge network (service names, and
    // isolation from other builds); this baseline pays for the same kind of network.
    let network = format!("gantry-{bench_id}-baseline");
    docker_cli(&["network", "create", "--label", "gantry.bench", &network])?;
    let figures = measure(&backend, &plan, &bench_id, &options, &network).await;
    docker_cli(&["network", "rm", &network])?;
    report(&figures?, &options);
    Ok(())
}

/// Runs the rounds, interleaving the three ways so load changes hit them alike.
async fn measure(
    backend: &Arc<Timed<DockerBackend>>,
    plan: &Plan,
    bench_id: &str,
    options: &Options,
    network: &str,
) -> Result<Figures, BoxError> {
    let (mut shell, mut direct, mut runtime) = (Vec::new(), Vec::new(), Vec::new());
    let mut shell_on_network = Vec::new();
    let (mut direct_calls, mut runtime_calls) = (Totals::new(), Totals::new());
    for round in 0..options.rounds {
        shell.push(docker_run_loop(options.steps, None)?);
        shell_on_network.push(docker_run_loop(options.steps, Some(network))?);
        let id = format!("{bench_id}-d{round}");
        direct.push(backend_direct(backend.as_ref(), plan, &id).await?);
        merge(&mut direct_calls, backend.take());
        let id = WorkflowId(format!("{bench_id}-r{round}"));
        runtime.push(runtime_run(backend, plan, &id).await?);
        merge(&mut runtime_calls, backend.take());
    }
    Ok(Figures {
        shell: median(shell),
        shell_on_network: median(shell_on_network),
        direct: median(direct),
        runtime: median(runtime),
        direct_calls,
        runtime_calls,
    })
}

fn report(f: &Figures, options: &Options) {
    let (steps, rounds) = (options.steps, options.rounds);
    println!("steps: {steps} sequential `true` in {IMAGE}; median of {rounds} rounds");
    println!("                                   total   ratio vs loop   vs loop on a network");
    let line = |name: &str, d: Duration| {
        println!(
            "{name:<28} {:>9.1} ms   {:>12.2}   {:>20.2}",
            ms(d),
            ratio(d, f.shell),
            ratio(d, f.shell_on_network)
        );
    };
    line("docker run --rm loop", f.shell);
    line("docker run --rm --network", f.shell_on_network);
    line("backend (direct)", f.direct);
    line("backend via Runtime", f.runtime);
    let per_step = |d: Duration| ms(d) / steps as f64;
    println!(
        "per step: loop {:.1} ms, loop on a network {:.1} ms, direct {:.1} ms, runtime {:.1} ms",
        per_step(f.shell),
        per_step(f.shell_on_network),
        per_step(f.direct),
        per_step(f.runtime),
    );
    if options.calls {
        println!("backend calls, summed over {rounds} rounds:");
        timed::print("direct", &f.direct_calls);
        timed::print("via Runtime", &f.runtime_calls);
    }
}

fn merge(into: &mut Totals, more: Totals) {
    for (call, (count, total)) in more {
        let entry = into.entry(call).or_default();
        entry.0 += count;
        entry.1 += total;
    }
}

/// The baseline: `docker run --rm IMAGE true`, `n` times, from one shell loop (on the
/// default bridge, or on `network`).
fn docker_run_loop(n: usize, network: Option<&str>) -> Result<Duration, BoxError> {
    let network = network
        .map(|n| format!("--network {n}"))
        .unwrap_or_default();
    let script =
        format!("for i in $(seq 1 {n}); do docker run --rm {network} {IMAGE} true || exit 1; done");
    let started = Instant::now();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .status()?;
    if !status.success() {
        return Err(format!("the docker run loop failed: {status}").into());
    }
    Ok(started.elapsed())
}

/// Runs `docker ARGS`, quietly.
fn docker_cli(args: &[&str]) -> Result<(), BoxError> {
    let out = std::process::Command::new("docker").args(args).output()?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!("docker {}: {}", args.join(" "), stderr.trim()).into());
    }
    Ok(())
}

/// The steps through the `Backend` trait as the runtime uses it: setup, then per step
/// start → logs + wait → destroy, then destroy the workflow.
async fn backend_direct(
    backend: &dyn Backend,
    plan: &Plan,
    id: &str,
) -> Result<Duration, BoxError> {
    let id = WorkflowId(id.to_string());
    let started = Instant::now();
    backend.setup_workflow(&id, plan).await?;
    for step in &plan.steps {
        backend.start_step(&id, step, &[]).await?;
        let mut logs = backend.logs(&id, step).await?;
        let drain = async { while logs.next().await.is_some() {} };
        let (exit, ()) = tokio::join!(backend.wait_step(&id, step), drain);
        if exit?.code != 0 {
            return Err(format!("step {} failed", step.name).into());
        }
        backend.destroy_step(&id, step).await?;
    }
    backend.destroy_workflow(&id).await?;
    Ok(started.elapsed())
}

async fn runtime_run(
    backend: &Arc<Timed<DockerBackend>>,
    plan: &Plan,
    id: &WorkflowId,
) -> Result<Duration, BoxError> {
    let runtime = Runtime::new(backend.clone(), RunConfig::default());
    let (tx, mut rx) = mpsc::channel(1024);
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let started = Instant::now();
    let outcome = runtime.run(id, plan, tx, CancellationToken::new()).await;
    let elapsed = started.elapsed();
    drop(runtime);
    let _ = drain.await;
    if outcome.status != PipelineStatus::Success {
        let error = outcome.error.unwrap_or_default();
        return Err(format!("the runtime run ended {}: {error}", outcome.status).into());
    }
    Ok(elapsed)
}

/// `n` steps running `true`, each needing the previous one.
fn chain(n: usize) -> Plan {
    let steps = (0..n)
        .map(|i| Step {
            name: format!("s{i:02}"),
            kind: StepKind::Commands,
            image: IMAGE.to_string(),
            pull: PullPolicy::IfNotExists,
            entrypoint: None,
            commands: vec!["true".to_string()],
            environment: BTreeMap::new(),
            secrets: Vec::new(),
            needs: (i > 0)
                .then(|| format!("s{:02}", i - 1))
                .into_iter()
                .collect(),
            run_on: RunOn::default(),
            failure: Default::default(),
            timeout_secs: None,
            retries: 0,
            detach: false,
            privileged: false,
            volumes: Vec::new(),
            resources: Resources::default(),
            workdir: "/workspace".to_string(),
            approval_timeout_secs: None,
        })
        .collect();
    Plan {
        name: "bench".to_string(),
        matrix: BTreeMap::new(),
        labels: BTreeMap::new(),
        workspace: "/workspace".to_string(),
        services: Vec::new(),
        steps,
        depends_on: Vec::new(),
        run_on: RunOn::default(),
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn ratio(ours: Duration, baseline: Duration) -> f64 {
    ours.as_secs_f64() / baseline.as_secs_f64().max(f64::EPSILON)
}
