//! Gantry's pipeline compiler: `.pipeline.yml` (or Drone's `.drone.yml`) → diagnostics →
//! [`Plan`]s. Pure: no IO, no async.
//!
//! - [`lint`] reports every problem of a file that does not depend on the build.
//! - [`compile`] turns a file into one [`Plan`] per pipeline and matrix combination for a
//!   given [`CompileContext`], or returns every problem found.
//! - [`json_schema`] describes the `.pipeline.yml` document for editors.

mod ast;
mod compile;
mod context;
mod diagnostic;
mod parse;
mod paths;
pub mod plan;
mod read;
mod schema;
mod suggest;
mod validate;
mod yaml;

use serde::{Deserialize, Serialize};

pub use context::{CompileContext, DEFAULT_CLONE_IMAGE, EVENTS};
pub use diagnostic::{Code, Diagnostic, Severity};
pub use plan::*;
pub use schema::json_schema;

/// The result of a successful compilation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Compiled {
    /// One plan per pipeline and matrix combination that runs for this build.
    pub plans: Vec<Plan>,
    /// Pipelines whose `when` (or Drone `trigger`) does not match this build.
    pub skipped: Vec<SkippedPipeline>,
    /// Warnings (never errors) found while compiling.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Diagnostic>,
}

/// A pipeline that does not run for this build, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedPipeline {
    /// The pipeline's name.
    pub name: String,
    /// Why it does not run, for people: "event `push` is not one of `tag`".
    pub reason: String,
}

/// Every structural and semantic problem of `source` that does not depend on the build
/// (all steps kept, repository untrusted), ordered by position. `file` names the file in
/// the diagnostics; a name ending in `.drone.yml` reads the file as Drone 1.x.
pub fn lint(file: &str, source: &str) -> Vec<Diagnostic> {
    let mut cx = read::Cx::new(file, source);
    let pipelines = parse::parse_file(&mut cx, is_drone_file(file));
    if !pipelines.is_empty() {
        compile::compile_pipelines(&mut cx, &pipelines, &CompileContext::default(), true);
    }
    finish(cx.diagnostics)
}

/// Compiles `source` for the build described by `ctx`: the plans to run, or every
/// problem found (ordered by position).
pub fn compile(
    file: &str,
    source: &str,
    ctx: &CompileContext,
) -> Result<Compiled, Vec<Diagnostic>> {
    let mut cx = read::Cx::new(file, source);
    check_context(&mut cx, ctx);
    let pipelines = parse::parse_file(&mut cx, is_drone_file(file));
    let (plans, skipped) = compile::compile_pipelines(&mut cx, &pipelines, ctx, false);
    let diagnostics = finish(cx.diagnostics);
    if diagnostics.iter().any(Diagnostic::is_error) {
        return Err(diagnostics);
    }
    Ok(Compiled {
        plans,
        skipped,
        warnings: diagnostics,
    })
}

/// True for `.drone.yml` / `.drone.yaml` (any directory).
fn is_drone_file(file: &str) -> bool {
    let name = file.rsplit(['/', '\\']).next().unwrap_or(file);
    name.ends_with(".drone.yml") || name.ends_with(".drone.yaml")
}

fn check_context(cx: &mut read::Cx, ctx: &CompileContext) {
    let whole_file = read::At::default();
    if !EVENTS.contains(&ctx.event.as_str()) {
        let help = suggest::did_you_mean(&ctx.event, EVENTS)
            .unwrap_or_else(|| format!("use one of: {}", EVENTS.join(", ")));
        cx.error(
            Code::InvalidContext,
            &whole_file,
            format!("unknown build event `{}`", ctx.event),
            Some(help),
        );
    }
    for name in ctx.extra_env.keys() {
        let problem = if !parse::units::is_env_name(name) {
            "is not a valid variable name (letters, digits and `_`)"
        } else if compile::env::is_reserved_everywhere(name) {
            "is reserved (`CI_*`, `DRONE_*`, `PLUGIN_*`, `GIT_*`, `PATH`, `HOME`, `LD_*`, proxies)"
        } else {
            continue;
        };
        cx.error(
            Code::ReservedEnv,
            &whole_file,
            format!(
                "extra variable `{}` {problem}",
                diagnostic::escape_controls(name)
            ),
            Some("pick another name for `--env`".into()),
        );
    }
    if ctx.clone && ctx.clone_image.trim().is_empty() {
        cx.error(
            Code::InvalidContext,
            &whole_file,
            "the clone image is empty",
            Some(format!(
                "use `{DEFAULT_CLONE_IMAGE}`, or disable the clone step"
            )),
        );
    }
}

/// Drops repeated diagnostics (a matrix compiles the same step several times) and orders
/// the rest by position.
fn finish(diagnostics: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let mut seen = std::collections::BTreeSet::new();
    let mut unique: Vec<Diagnostic> = diagnostics
        .into_iter()
        .filter(|d| seen.insert((d.line, d.column, d.code, d.message.clone())))
        .collect();
    diagnostic::sort_by_position(&mut unique);
    unique
}
