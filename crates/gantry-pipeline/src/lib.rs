//! Gantry's pipeline compiler: `.pipeline.yml` (or Drone's `.drone.yml`) → diagnostics →
//! [`Plan`]s. Pure: no IO, no async.
//!
//! - [`lint`] reports every problem of a file that does not depend on the build.
//! - [`compile`] turns a file into one [`Plan`] per pipeline and matrix combination for a
//!   given [`CompileContext`], or returns every problem found.
//! - [`json_schema`] describes the `.pipeline.yml` document for editors.

mod context;
mod diagnostic;
pub mod plan;
mod yaml;

use serde::{Deserialize, Serialize};

pub use context::{CompileContext, DEFAULT_CLONE_IMAGE, EVENTS};
pub use diagnostic::{Code, Diagnostic, Severity};
pub use plan::*;

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
/// the diagnostics.
pub fn lint(file: &str, source: &str) -> Vec<Diagnostic> {
    let _ = (file, source);
    Vec::new()
}

/// Compiles `source` for the build described by `ctx`: the plans to run, or every
/// problem found (ordered by position).
pub fn compile(
    file: &str,
    source: &str,
    ctx: &CompileContext,
) -> Result<Compiled, Vec<Diagnostic>> {
    let _ = (file, source, ctx);
    Ok(Compiled {
        plans: Vec::new(),
        skipped: Vec::new(),
        warnings: Vec::new(),
    })
}

/// The JSON schema of a `.pipeline.yml` document.
pub fn json_schema() -> serde_json::Value {
    serde_json::json!({})
}
