//! Evaluating `when` against the build.

use crate::ast::{Condition, Filter, GlobKey, Pattern, When};
use crate::context::CompileContext;
use crate::plan::RunOn;

/// Whether a `when` lets its pipeline or step run: the statuses to run under, or why not.
pub fn evaluate(when: &When, ctx: &CompileContext) -> Result<RunOn, String> {
    let mut run_on = RunOn {
        success: false,
        failure: false,
    };
    let mut reasons = Vec::new();
    for condition in &when.alternatives {
        match matches(condition, ctx) {
            Ok(()) => {
                let status = condition.status.unwrap_or_default();
                run_on.success |= status.success;
                run_on.failure |= status.failure;
            }
            Err(reason) => reasons.push(reason),
        }
    }
    if run_on.success || run_on.failure {
        return Ok(run_on);
    }
    Err(match reasons.as_slice() {
        [] => "its `when` has no conditions".into(),
        [one] => one.clone(),
        many => format!(
            "none of its {} `when` conditions match ({})",
            many.len(),
            many.join("; ")
        ),
    })
}

/// The statuses a `when` asks for, ignoring every other condition (for lint, where every
/// step is kept).
pub fn statuses(when: &When) -> RunOn {
    let mut run_on = RunOn {
        success: false,
        failure: false,
    };
    for condition in &when.alternatives {
        let status = condition.status.unwrap_or_default();
        run_on.success |= status.success;
        run_on.failure |= status.failure;
    }
    if run_on.success || run_on.failure {
        run_on
    } else {
        RunOn::default()
    }
}

/// Every key of one condition map must match.
fn matches(condition: &Condition, ctx: &CompileContext) -> Result<(), String> {
    if let Some(event) = &condition.event
        && !filter_matches(event, &ctx.event, false)
    {
        return Err(format!("event `{}` {}", ctx.event, describe(event)));
    }
    for (key, filter) in &condition.globs {
        let ok = match key {
            GlobKey::Path => paths_match(filter, ctx.changed_files.as_deref()),
            _ => filter_matches(filter, value_of(*key, ctx), true),
        };
        if !ok {
            return Err(match key {
                GlobKey::Path => path_reason(filter),
                _ => format!(
                    "{} `{}` {}",
                    key.key(),
                    value_of(*key, ctx),
                    describe(filter)
                ),
            });
        }
    }
    Ok(())
}

fn value_of(key: GlobKey, ctx: &CompileContext) -> &str {
    match key {
        GlobKey::Branch => &ctx.branch,
        GlobKey::Ref => &ctx.git_ref,
        GlobKey::Tag => &ctx.tag,
        GlobKey::Target => &ctx.deploy_target,
        GlobKey::Cron => &ctx.cron,
        GlobKey::Repo => &ctx.repo,
        GlobKey::Path => "",
    }
}

/// Unknown changed files (`None`, or an empty list: forges send none for some events)
/// match; otherwise some file must match.
fn paths_match(filter: &Filter, files: Option<&[String]>) -> bool {
    files
        .filter(|files| !files.is_empty())
        .is_none_or(|files| files.iter().any(|f| filter_matches(filter, f, true)))
}

fn filter_matches(filter: &Filter, value: &str, glob: bool) -> bool {
    let hit = |p: &Pattern| match (&p.glob, glob) {
        (Some(matcher), true) => matcher.is_match(value),
        _ => p.text.value == value,
    };
    (filter.include.is_empty() || filter.include.iter().any(hit)) && !filter.exclude.iter().any(hit)
}

/// "no changed file matches `api/**` (excluding `**/*.md`)".
fn path_reason(filter: &Filter) -> String {
    let exclude = list(&filter.exclude);
    match (filter.include.is_empty(), filter.exclude.is_empty()) {
        (true, _) => format!("every changed file matches excluded {exclude}"),
        (false, true) => format!("no changed file matches {}", list(&filter.include)),
        (false, false) => format!(
            "no changed file matches {} (excluding {exclude})",
            list(&filter.include)
        ),
    }
}

fn list(patterns: &[Pattern]) -> String {
    patterns
        .iter()
        .map(|p| format!("`{}`", p.text.value))
        .collect::<Vec<_>>()
        .join(", ")
}

/// "is not `tag`", "does not match `main`, `release/*`", "matches excluded `*.md`".
fn describe(filter: &Filter) -> String {
    match (filter.include.is_empty(), filter.exclude.is_empty()) {
        (false, true) => format!("does not match {}", list(&filter.include)),
        (true, false) => format!("matches excluded {}", list(&filter.exclude)),
        (false, false) => format!(
            "does not match {} (excluding {})",
            list(&filter.include),
            list(&filter.exclude)
        ),
        (true, true) => "does not match".into(),
    }
}
