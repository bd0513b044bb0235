//! Benchmark: 20 trivial sequential steps through the Docker backend (directly and through
//! the Runtime) against a shell loop of `docker run --rm` measured in the same run.
//!
//! Run it with `bash bench/docker.sh` (release build, test image built first).
//! Options: `--steps N` (default 20), `--rounds R` (default 3; the median is reported),
//! `--calls` (also print how long each backend call took, summed over all rounds),
//! `--timeline` (also print, for the last run through the Runtime, where each step's time
//! went between the calls).

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

use timed::{Span, Timed, Totals};

const IMAGE: &str = "gantry-test/busybox:latest";

type BoxError = Box<dyn std::error::Error>;

/// What to measure.
struct Options {
    steps: usize,
    rounds: usize,
    calls: bool,
    timeline: bool,
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
        timeline: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--calls" {
            options.calls = true;
            continue;
        }
        if arg == "--timeline" {
            options.timeline = true;
            continue;
        }
        let value = args.next().and_then(|v| v.parse::<usize>().ok());
        match (arg.as_str(), value) {
            ("--steps", Some(v)) if v > 0 => options.steps = v,
            ("--rounds", Some(v)) if v > 0 => options.rounds = v,
            _ => {
                return Err(format!(
                    "usage: bench_docker [--steps N] [--rounds R] [--calls] [--timeline] (at `{arg}`)"
                ));
            }
        }
    }
    Ok(options)
}

/// The four ways measured, in the order of their columns.
const WAYS: [&str; 4] = [
    "docker run --rm loop",
    "docker run --rm --network",
    "backend (direct)",
    "backend via Runtime",
];

/// The times of every round (one per way, as in [`WAYS`]), and the per-call breakdown of
/// the two backend ways.
struct Figures {
    rounds: Vec<[Duration; 4]>,
    direct_calls: Totals,
    runtime_calls: Totals,
    /// The calls of the last run through the Runtime.
    last_runtime_spans: Vec<Span>,
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
    // Each container on a user-defined network pays for the engine's network set-up; the
    // backend's steps join their workflow's sandbox instead and pay nothing of it. This
    // loop shows what that set-up costs here.
    let network = format!("gantry-{bench_id}-baseline");
    docker_cli(&["network", "create", "--label", "gantry.bench", &network])?;
    let figures = measure(&backend, &plan, &bench_id, &options, &network).await;
    docker_cli(&["network", "rm", &network])?;
    report(&figures?, &options);
    Ok(())
}

/// Runs the rounds. Each round runs the four ways once, starting with a different one
/// each time, so a change of load over the run does not favour one of them.
async fn measure(
    backend: &Arc<Timed<DockerBackend>>,
    plan: &Plan,
    bench_id: &str,
    options: &Options,
    network: &str,
) -> Result<Figures, BoxError> {
    let mut figures = Figures {
        rounds: Vec::new(),
        direct_calls: Totals::new(),
        runtime_calls: Totals::new(),
        last_runtime_spans: Vec::new(),
    };
    for round in 0..options.rounds {
        let mut times = [Duration::ZERO; 4];
        for way in (0..4).map(|k| (k + round) % 4) {
            times[way] = match way {
                0 => docker_run_loop(options.steps, None)?,
                1 => docker_run_loop(options.steps, Some(network))?,
                2 => {
                    let id = format!("{bench_id}-d{round}");
                    let took = backend_direct(backend.as_ref(), plan, &id).await?;
                    merge(&mut figures.direct_calls, backend.take().totals);
                    took
                }
                _ => {
                    let id = WorkflowId(format!("{bench_id}-r{round}"));
                    let took = runtime_run(backend, plan, &id).await?;
                    let measured = backend.take();
                    merge(&mut figures.runtime_calls, measured.totals);
                    figures.last_runtime_spans = measured.spans;
                    took
                }
            };
        }
        figures.rounds.push(times);
    }
    Ok(figures)
}

fn report(f: &Figures, options: &Options) {
    let (steps, rounds) = (options.steps, options.rounds);
    println!("steps: {steps} sequential `true` in {IMAGE}; {rounds} rounds");
    println!(
        "                            median total   ratio vs loop (min-max)   vs loop on a network"
    );
    for (way, name) in WAYS.iter().enumerate() {
        let totals: Vec<Duration> = f.rounds.iter().map(|r| r[way]).collect();
        // Ratios within a round: both sides ran under the same load.
        let ratios = |base: usize| -> Vec<f64> {
            let mut r: Vec<f64> = f.rounds.iter().map(|t| ratio(t[way], t[base])).collect();
            r.sort_by(f64::total_cmp);
            r
        };
        let (vs_loop, vs_network) = (ratios(0), ratios(1));
        println!(
            "{name:<28} {:>9.1} ms   {:>6.2} ({:.2}-{:.2})   {:>20.2}",
            ms(median(totals)),
            vs_loop[vs_loop.len() / 2],
            vs_loop[0],
            vs_loop[vs_loop.len() - 1],
            vs_network[vs_network.len() / 2],
        );
    }
    let per_step =
        |way: usize| ms(median(f.rounds.iter().map(|r| r[way]).collect())) / steps as f64;
    println!(
        "per step: loop {:.1} ms, loop on a network {:.1} ms, direct {:.1} ms, runtime {:.1} ms",
        per_step(0),
        per_step(1),
        per_step(2),
        per_step(3),
    );
    if options.calls {
        println!("backend calls, summed over {rounds} rounds:");
        timed::print("direct", &f.direct_calls);
        timed::print("via Runtime", &f.runtime_calls);
    }
    if options.timeline {
        timed::print_timeline(&f.last_runtime_spans);
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
