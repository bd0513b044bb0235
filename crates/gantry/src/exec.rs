//! `gantry exec`: run a pipeline in the current directory with the same engine the server
//! uses.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use async_trait::async_trait;
use gantry_docker::{DockerBackend, DockerConfig};
use gantry_pipeline::plan::{Plan, Step};
use gantry_runner::{
    ApprovalDecision, Approver, Backend, LocalBackend, PipelineStatus, RunConfig, Runtime,
    WorkflowId,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::context::{local_context, pipeline_file, read_pipeline};
use crate::output::Printer;
use crate::secrets::{parse_pair, read_secrets_file};
use crate::{BackendKind, ExecArgs};

/// Runs `gantry exec`.
pub fn run(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let file = pipeline_file(args.file.clone())?;
    let name = file.display().to_string();
    let source = read_pipeline(&file)?;
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let secrets = collect_secrets(&args)?;

    let mut ctx = local_context(&cwd, &args.event);
    ctx.clone = false;
    ctx.secrets = Some(secrets.keys().cloned().collect());
    ctx.extra_env = args
        .env
        .iter()
        .map(|pair| parse_pair(pair, "--env"))
        .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
    let compiled = match gantry_pipeline::compile(&name, &source, &ctx) {
        Ok(compiled) => compiled,
        Err(diagnostics) => {
            for d in &diagnostics {
                eprintln!("{}", d.render(&source));
            }
            eprintln!("gantry: {name} does not compile; nothing was run");
            return Ok(ExitCode::from(1));
        }
    };
    for skipped in &compiled.skipped {
        eprintln!("pipeline `{}` skipped: {}", skipped.name, skipped.reason);
    }
    if compiled.plans.is_empty() {
        eprintln!(
            "gantry: no pipeline matches event `{}`; nothing to run",
            ctx.event
        );
        return Ok(ExitCode::SUCCESS);
    }
    let plans = select_plans(compiled.plans, &args.steps, args.with_deps)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_plans(args, cwd.as_path(), plans, secrets))
}

fn collect_secrets(args: &ExecArgs) -> anyhow::Result<BTreeMap<String, String>> {
    let mut secrets = match &args.secrets_file {
        Some(path) => read_secrets_file(path)?,
        None => BTreeMap::new(),
    };
    for pair in &args.secrets {
        let (name, value) = parse_pair(pair, "--secret")?;
        secrets.insert(name, value);
    }
    Ok(secrets)
}

/// Applies `--step` to every plan: a plan without any of the named steps is left out, and a
/// name no plan has is an error.
fn select_plans(plans: Vec<Plan>, names: &[String], with_deps: bool) -> anyhow::Result<Vec<Plan>> {
    if names.is_empty() {
        return Ok(plans);
    }
    for name in names {
        if !plans
            .iter()
            .any(|p| p.steps.iter().any(|s| &s.name == name))
        {
            let mut known: Vec<&str> = plans
                .iter()
                .flat_map(|p| p.steps.iter().map(|s| s.name.as_str()))
                .collect();
            known.sort_unstable();
            known.dedup();
            bail!(
                "--step {name}: no such step in any pipeline (steps: {})",
                known.join(", ")
            );
        }
    }
    Ok(plans
        .into_iter()
        .filter(|p| p.steps.iter().any(|s| names.contains(&s.name)))
        .map(|p| select_steps(p, names, with_deps))
        .collect())
}

/// Keeps only the named steps of a plan (and, with `with_deps`, everything they need).
fn select_steps(mut plan: Plan, names: &[String], with_deps: bool) -> Plan {
    let mut keep: BTreeSet<String> = names.iter().cloned().collect();
    if with_deps {
        let mut todo: Vec<String> = keep.iter().cloned().collect();
        while let Some(name) = todo.pop() {
            let needs = plan
                .steps
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.needs.clone())
                .unwrap_or_default();
            for need in needs {
                if keep.insert(need.clone()) {
                    todo.push(need);
                }
            }
        }
    }
    plan.steps.retain(|s| keep.contains(&s.name));
    for step in &mut plan.steps {
        step.needs.retain(|n| keep.contains(n));
    }
    plan
}

/// Picks the backend: the one asked for, else Docker if an engine answers, else local.
async fn choose_backend(
    kind: Option<BackendKind>,
    workspace: &Path,
    sandbox_image: Option<String>,
) -> anyhow::Result<Arc<dyn Backend>> {
    let docker = || {
        DockerBackend::connect(DockerConfig {
            host_workspace: Some(workspace.to_path_buf()),
            sandbox_image: sandbox_image.clone().filter(|i| !i.trim().is_empty()),
            ..DockerConfig::default()
        })
    };
    match kind {
        Some(BackendKind::Docker) => {
            let backend = docker().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            backend.probe().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(Arc::new(backend))
        }
        Some(BackendKind::Local) => Ok(Arc::new(LocalBackend::in_directory(workspace))),
        None => match docker().await {
            Ok(backend) if backend.probe().await.is_ok() => {
                eprintln!("gantry: running on the Docker engine");
                Ok(Arc::new(backend))
            }
            _ => {
                eprintln!(
                    "gantry: no Docker engine answers; running steps as host processes \
                     (local backend)"
                );
                Ok(Arc::new(LocalBackend::in_directory(workspace)))
            }
        },
    }
}

async fn run_plans(
    args: ExecArgs,
    workspace: &Path,
    plans: Vec<Plan>,
    secrets: BTreeMap<String, String>,
) -> anyhow::Result<ExitCode> {
    let backend = choose_backend(args.backend, workspace, args.sandbox_image.clone()).await?;
    if let Ok(removed) = backend.reap_leftovers().await
        && removed > 0
    {
        eprintln!("gantry: removed {removed} objects left by an earlier run that crashed");
    }
    let cancel = CancellationToken::new();
    let on_ctrl_c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ngantry: cancelling (cleaning up; press Ctrl-C again to abort)");
            on_ctrl_c.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });

    let names = plans
        .iter()
        .flat_map(|p| p.services.iter().chain(&p.steps).map(|s| s.name.clone()))
        .collect::<Vec<_>>();
    let printer = Arc::new(std::sync::Mutex::new(Printer::new(
        names.iter().map(String::as_str),
    )));
    let approver = Arc::new(CliApprover {
        auto: args.approve,
        printer: printer.clone(),
    });
    let config = RunConfig {
        concurrency: args.concurrency.max(1),
        secrets,
        ..RunConfig::default()
    };
    let runtime = Runtime::new(backend, config).with_approver(approver);

    let mut all_ok = true;
    // Pipelines run one after another, each once the pipelines it `depends_on` are done.
    let mut results: BTreeMap<String, bool> = BTreeMap::new();
    for (index, plan) in in_dependency_order(&plans).into_iter().enumerate() {
        let header = describe(plan);
        let deps_ok = plan
            .depends_on
            .iter()
            .all(|d| results.get(d) != Some(&false));
        let runs = if deps_ok {
            plan.run_on.success
        } else {
            plan.run_on.failure
        };
        if !runs {
            let why = if deps_ok {
                "it runs only after a failure"
            } else {
                "a pipeline it depends on failed"
            };
            lock(&printer).line(&format!("=== pipeline {header} skipped: {why}"));
            continue;
        }
        if plans.len() > 1 {
            lock(&printer).line(&format!("=== pipeline {header}"));
        }
        let id = WorkflowId(format!("exec-{}-{index}", std::process::id()));
        // Log lines arrive in batches of up to 1024: 64 events are plenty, and bound what a
        // slow terminal can make pile up.
        let (tx, mut rx) = mpsc::channel(64);
        let run = runtime.run(&id, plan, tx, cancel.clone());
        let print = async {
            while let Some(event) = rx.recv().await {
                lock(&printer).event(&event);
            }
        };
        let (outcome, ()) = tokio::join!(run, print);
        let mut p = lock(&printer);
        p.summary(&outcome.steps);
        let verdict = match outcome.status {
            PipelineStatus::Success => "pipeline succeeded".to_owned(),
            PipelineStatus::Failure => "pipeline failed".to_owned(),
            PipelineStatus::Cancelled => "pipeline cancelled".to_owned(),
            PipelineStatus::Error => format!(
                "pipeline error: {}",
                outcome.error.as_deref().unwrap_or("unknown error")
            ),
        };
        p.line(&format!("\n{verdict}"));
        let ok = outcome.status == PipelineStatus::Success;
        all_ok &= ok;
        let entry = results.entry(plan.name.clone()).or_insert(true);
        *entry &= ok;
        if cancel.is_cancelled() {
            return Ok(ExitCode::from(130));
        }
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The plans in an order where each comes after the pipelines it depends on (file order
/// otherwise; the compiler has refused cycles and unknown names).
fn in_dependency_order(plans: &[Plan]) -> Vec<&Plan> {
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut left: Vec<&Plan> = plans.iter().collect();
    let mut ordered = Vec::with_capacity(plans.len());
    while !left.is_empty() {
        let ready = |p: &&Plan| {
            p.depends_on
                .iter()
                .all(|d| done.contains(d.as_str()) || !plans.iter().any(|q| &q.name == d))
        };
        let Some(pos) = left.iter().position(ready) else {
            ordered.append(&mut left);
            break;
        };
        let plan = left.remove(pos);
        // Every combination of a matrix pipeline shares its name: done when all are.
        if !left.iter().any(|p| p.name == plan.name) {
            done.insert(plan.name.as_str());
        }
        ordered.push(plan);
    }
    ordered
}

fn describe(plan: &Plan) -> String {
    if plan.matrix.is_empty() {
        return plan.name.clone();
    }
    let axes: Vec<String> = plan
        .matrix
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("{} ({})", plan.name, axes.join(", "))
}

fn lock(printer: &std::sync::Mutex<Printer>) -> std::sync::MutexGuard<'_, Printer> {
    printer
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Approves with `--approve`, asks on a terminal, and rejects otherwise.
struct CliApprover {
    auto: bool,
    printer: Arc<std::sync::Mutex<Printer>>,
}

#[async_trait]
impl Approver for CliApprover {
    async fn decide(&self, _workflow: &WorkflowId, step: &Step) -> ApprovalDecision {
        let user = std::env::var("USER").unwrap_or_else(|_| "local user".into());
        if self.auto {
            return ApprovalDecision::Approved {
                by: format!("{user} (--approve)"),
            };
        }
        if !std::io::stdin().is_terminal() {
            return ApprovalDecision::Rejected {
                by: "gantry exec".into(),
                reason: "no terminal to ask; pass --approve to approve approval steps".into(),
            };
        }
        lock(&self.printer).line(&format!("step `{}` waits for approval", step.name));
        let question = format!("Approve step `{}`? [y/N] ", step.name);
        // The printer is not locked while waiting: other steps' logs keep flowing, and
        // Ctrl-C still cancels.
        let answer = tokio::task::spawn_blocking(move || {
            eprint!("{question}");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map(|_| line)
        })
        .await;
        match answer {
            Ok(Ok(line)) if matches!(line.trim(), "y" | "Y" | "yes") => {
                ApprovalDecision::Approved { by: user }
            }
            _ => ApprovalDecision::Rejected {
                by: user,
                reason: "rejected at the prompt".into(),
            },
        }
    }
}
