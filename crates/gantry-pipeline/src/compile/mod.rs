//! Typed pipelines → [`Plan`]s for one build: conditions, matrix, ordering, environment.

mod condition;
mod dag;
pub mod env;
mod image;
mod matrix;
mod pipelines;
mod registry;
mod settings;
mod step;
pub mod substitute;

use std::collections::BTreeMap;

use crate::SkippedPipeline;
use crate::ast::{Pipeline, StepDef};
use crate::context::CompileContext;
use crate::diagnostic::Code;
use crate::plan::{Plan, PullPolicy, RunOn, Step, StepKind};
use crate::read::Cx;

pub use dag::CLONE_STEP;

/// The workspace path when the pipeline names none.
pub const DEFAULT_WORKSPACE: &str = "/workspace";
/// Clone depth when the pipeline names none.
pub const DEFAULT_CLONE_DEPTH: u64 = 50;

/// Most steps (services and clone steps included) all plans of one file may have
/// together: a matrix multiplies a pipeline's steps.
pub const MAX_TOTAL_STEPS: usize = 10_000;

/// Compiles every pipeline. With `keep_all` (lint) no pipeline or step is left out by its
/// `when`.
pub fn compile_pipelines(
    cx: &mut Cx,
    pipelines: &[Pipeline],
    ctx: &CompileContext,
    keep_all: bool,
) -> (Vec<Plan>, Vec<SkippedPipeline>) {
    let mut plans = Vec::new();
    let mut skipped = Vec::new();
    let mut total_steps = 0usize;
    // A skipped pipeline is checked without this build's facts about secrets: it does not
    // run, so a secret it names need not exist for this build.
    let unchecked = CompileContext {
        secrets: None,
        ..ctx.clone()
    };
    for pipeline in pipelines {
        let name = pipeline_name(pipeline);
        let verdict = match (&pipeline.when, keep_all) {
            (Some(when), false) => condition::evaluate(when, ctx),
            (Some(when), true) => Ok(condition::statuses(when)),
            (None, _) => Ok(RunOn::default()),
        };
        let (build_ctx, run_on) = match &verdict {
            Ok(run_on) => (ctx, *run_on),
            Err(_) => (&unchecked, RunOn::default()),
        };
        let combinations = pipeline
            .matrix
            .as_ref()
            .map_or_else(|| vec![BTreeMap::new()], matrix::combinations);
        let ordered = Ordered::new(cx, pipeline, build_ctx, keep_all || verdict.is_err());
        total_steps = total_steps.saturating_add(ordered.size() * combinations.len());
        if total_steps > MAX_TOTAL_STEPS {
            too_many_steps(cx, pipeline);
            break;
        }
        let compiled: Vec<Plan> = combinations
            .into_iter()
            .map(|combination| plan(cx, pipeline, build_ctx, combination, &ordered, run_on))
            .collect();
        match verdict {
            Err(reason) => skipped.push(SkippedPipeline { name, reason }),
            Ok(_) => plans.extend(compiled),
        }
    }
    pipelines::link(cx, pipelines, &mut plans, &skipped);
    (plans, skipped)
}

fn too_many_steps(cx: &mut Cx, pipeline: &Pipeline) {
    cx.error(
        Code::TooManySteps,
        &pipeline.at,
        format!(
            "the pipelines of this file have more than {MAX_TOTAL_STEPS} steps in all (matrix combinations count each)"
        ),
        Some("use fewer matrix combinations, fewer steps, or several files".into()),
    );
}

fn pipeline_name(pipeline: &Pipeline) -> String {
    pipeline
        .name
        .as_ref()
        .map_or_else(|| "default".to_owned(), |n| n.value.clone())
}

/// A pipeline's kept steps and their order: the same for every matrix combination, so
/// computed once.
struct Ordered<'a> {
    kept: Kept<'a>,
    services: Kept<'a>,
    needs: Vec<Vec<String>>,
    clone: bool,
}

impl<'a> Ordered<'a> {
    fn new(cx: &mut Cx, pipeline: &'a Pipeline, ctx: &CompileContext, keep_all: bool) -> Self {
        let (kept, filtered) = select(&pipeline.steps, ctx, keep_all);
        let (services, _) = select(&pipeline.services, ctx, keep_all);
        let clone = ctx.clone && !pipeline.clone.disable;
        if clone {
            reserve_clone_name(cx, pipeline);
        }
        let needs = order(cx, pipeline, &kept, &filtered, clone);
        Self {
            kept,
            services,
            needs,
            clone,
        }
    }

    /// Steps of one plan, services and the clone step included.
    fn size(&self) -> usize {
        self.kept.len() + self.services.len() + usize::from(self.clone)
    }
}

/// One plan: a pipeline for one matrix combination.
fn plan(
    cx: &mut Cx,
    pipeline: &Pipeline,
    ctx: &CompileContext,
    combination: BTreeMap<String, String>,
    ordered: &Ordered,
    run_on: RunOn,
) -> Plan {
    let name = pipeline_name(pipeline);
    let workspace = pipeline
        .workspace
        .as_ref()
        .map_or(DEFAULT_WORKSPACE, |w| w.value.as_str())
        .to_owned();
    let facts = env::PipelineFacts {
        name: &name,
        workspace: &workspace,
        matrix: &combination,
    };
    let base_env = env::base(ctx, &facts);
    let scope = step::Scope {
        ctx,
        base_env: &base_env,
        pipeline_env: &pipeline.environment,
        volumes: &pipeline.volumes,
        workspace: &workspace,
    };
    let mut steps: Vec<Step> = Vec::with_capacity(ordered.size());
    if ordered.clone {
        steps.push(clone_step(
            pipeline,
            ctx,
            env::facts(ctx, &facts),
            &workspace,
        ));
    }
    for ((def, name, run_on), needs) in ordered.kept.iter().zip(&ordered.needs) {
        steps.push(step::build(cx, &scope, def, name, needs.clone(), *run_on));
    }
    let services = ordered
        .services
        .iter()
        .map(|(def, name, _)| step::build(cx, &scope, def, name, Vec::new(), RunOn::default()))
        .collect();
    Plan {
        name,
        matrix: combination,
        labels: pipeline.labels.clone(),
        workspace,
        services,
        steps,
        depends_on: Vec::new(),
        run_on,
    }
}

type Kept<'a> = Vec<(&'a StepDef, &'a str, RunOn)>;

/// Named steps whose `when` matches (all of them with `keep_all`), and the names of those
/// left out with the reason.
fn select<'a>(
    defs: &'a [StepDef],
    ctx: &CompileContext,
    keep_all: bool,
) -> (Kept<'a>, BTreeMap<String, String>) {
    let mut kept = Vec::new();
    let mut filtered = BTreeMap::new();
    for def in defs {
        let Some(name) = &def.name else { continue };
        let verdict = match (&def.when, keep_all) {
            (None, _) => Ok(RunOn::default()),
            (Some(when), true) => Ok(condition::statuses(when)),
            (Some(when), false) => condition::evaluate(when, ctx),
        };
        match verdict {
            Ok(run_on) => kept.push((def, name.value.as_str(), run_on)),
            Err(reason) => {
                filtered.insert(name.value.clone(), reason);
            }
        }
    }
    (kept, filtered)
}

fn reserve_clone_name(cx: &mut Cx, pipeline: &Pipeline) {
    for def in pipeline.steps.iter().chain(&pipeline.services) {
        if let Some(name) = def.name.as_ref().filter(|n| n.value == CLONE_STEP) {
            cx.error(
                Code::DuplicateStep,
                &name.at,
                "the name `clone` is taken by the implicit checkout step",
                Some(
                    "rename the step, or set `clone: {disable: true}` to check out yourself".into(),
                ),
            );
        }
    }
}

fn order(
    cx: &mut Cx,
    pipeline: &Pipeline,
    kept: &Kept,
    filtered: &BTreeMap<String, String>,
    clone: bool,
) -> Vec<Vec<String>> {
    let stage_index = |def: &StepDef| {
        let (_, stages) = pipeline.stages.as_ref()?;
        let stage = def.stage.as_ref()?;
        stages.iter().position(|s| s.value == stage.value)
    };
    let dag_steps: Vec<dag::DagStep> = kept
        .iter()
        .map(|(def, name, run_on)| dag::DagStep {
            name,
            at: def.name.as_ref().map_or(&def.at, |n| &n.at),
            depends_on: def.depends_on.as_deref(),
            stage: stage_index(def),
            after_failure: run_on.failure && !run_on.success,
        })
        .collect();
    let all_steps: Vec<&str> = pipeline
        .steps
        .iter()
        .filter_map(|s| s.name.as_ref())
        .map(|n| n.value.as_str())
        .collect();
    let services: Vec<&str> = pipeline
        .services
        .iter()
        .filter_map(|s| s.name.as_ref())
        .map(|n| n.value.as_str())
        .collect();
    let ordering = dag::Ordering {
        dag: pipeline.stages.is_some() || pipeline.steps.iter().any(|s| s.depends_on.is_some()),
        clone,
        filtered,
        all_steps: &all_steps,
        services: &services,
    };
    dag::order(cx, &dag_steps, &ordering)
}

/// The implicit checkout step: the clone image, configured like a plugin.
fn clone_step(
    pipeline: &Pipeline,
    ctx: &CompileContext,
    mut environment: BTreeMap<String, String>,
    workspace: &str,
) -> Step {
    env::add_step_names(&mut environment, CLONE_STEP);
    let depth = pipeline.clone.depth.unwrap_or(DEFAULT_CLONE_DEPTH);
    environment.insert("PLUGIN_DEPTH".into(), depth.to_string());
    if pipeline.clone.skip_verify {
        environment.insert("PLUGIN_SKIP_VERIFY".into(), "true".into());
    }
    if ctx.event == "tag" {
        environment.insert("PLUGIN_TAGS".into(), "true".into());
    }
    Step {
        name: CLONE_STEP.into(),
        kind: StepKind::Clone,
        image: ctx.clone_image.clone(),
        pull: PullPolicy::IfNotExists,
        entrypoint: None,
        commands: Vec::new(),
        environment,
        secrets: Vec::new(),
        needs: Vec::new(),
        run_on: RunOn::default(),
        failure: Default::default(),
        timeout_secs: ctx.default_timeout_secs,
        retries: pipeline.clone.retries,
        detach: false,
        privileged: false,
        volumes: Vec::new(),
        resources: Default::default(),
        workdir: workspace.to_owned(),
        approval_timeout_secs: None,
    }
}
