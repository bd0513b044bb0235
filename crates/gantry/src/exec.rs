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
    let env = args
        .env
        .iter()
        .map(|pair| parse_pair(pair, "--env"))
        .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
    let plans = compiled
        .plans
        .into_iter()
        .map(|plan| select_steps(plan, &args.steps, args.with_deps).map(|p| with_env(p, &env)))
        .collect::<anyhow::Result<Vec<_>>>()?;

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

/// Keeps only the named steps (and, with `with_deps`, everything they need).
fn select_steps(mut plan: Plan, names: &[String], with_deps: bool) -> anyhow::Result<Plan> {
    if names.is_empty() {
        return Ok(plan);
    }
    let known: BTreeSet<&str> = plan.steps.iter().map(|s| s.name.as_str()).collect();
    for name in names {
        if !known.contains(name.as_str()) {
            let list: Vec<&str> = known.iter().copied().collect();
            bail!(
                "--step {name}: pipeline `{}` has no such step (its steps: {})",
                plan.name,
                list.join(", ")
            );
        }
    }
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
    Ok(plan)
}

fn with_env(mut plan: Plan, env: &BTreeMap<String, String>) -> Plan {
    for step in plan.services.iter_mut().chain(plan.steps.iter_mut()) {
        step.environment
            .extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    plan
}

/// Picks the backend: the one asked for, else Docker if an engine answers, else local.
async fn choose_backend(
    kind: Option<BackendKind>,
    workspace: &Path,
) -> anyhow::Result<Arc<dyn Backend>> {
    let docker = || {
        DockerBackend::connect(DockerConfig {
            host_workspace: Some(workspace.to_path_buf()),
            owner: format!("exec:{}:{}", hostname(), std::process::id()),
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

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

async fn run_plans(
    args: ExecArgs,
    workspace: &Path,
    plans: Vec<Plan>,
    secrets: BTreeMap<String, String>,
) -> anyhow::Result<ExitCode> {
    let backend = choose_backend(args.backend, workspace).await?;
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
    for (index, plan) in plans.iter().enumerate() {
        if plans.len() > 1 {
            let header = describe(plan);
            lock(&printer).line(&format!("=== pipeline {header}"));
        }
        let id = WorkflowId(format!("exec-{}-{index}", std::process::id()));
        let (tx, mut rx) = mpsc::channel(1024);
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
        all_ok &= outcome.status == PipelineStatus::Success;
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
        let printer = self.printer.clone();
        let question = format!("Approve step `{}`? [y/N] ", step.name);
        let answer = tokio::task::spawn_blocking(move || {
            lock(&printer).suspend(|| {
                eprint!("{question}");
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).map(|_| line)
            })
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
