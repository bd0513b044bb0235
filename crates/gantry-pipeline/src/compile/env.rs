//! The environment every step gets: `CI_*`, the `DRONE_*` names Drone plugins read, and
//! matrix variables. It is also what `${VAR}` substitutes from.

use std::collections::BTreeMap;

use crate::context::CompileContext;

/// Names user `environment` may not set on any step (besides every `CI_*` and `DRONE_*`).
const RESERVED: [&str; 11] = [
    "CI",
    "DRONE",
    "PATH",
    "HOME",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
];

/// True when user `environment` may not set `name`; `plugin` adds `PLUGIN_*` (a plugin's
/// settings must come from `settings`, where they are checked).
pub fn is_reserved(name: &str, plugin: bool) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.starts_with("CI_")
        || upper.starts_with("DRONE_")
        || RESERVED.contains(&upper.as_str())
        || (plugin && upper.starts_with("PLUGIN_"))
}

/// What the build environment needs besides the context.
pub struct PipelineFacts<'a> {
    /// Pipeline name.
    pub name: &'a str,
    /// Workspace path.
    pub workspace: &'a str,
    /// This plan's matrix combination.
    pub matrix: &'a BTreeMap<String, String>,
}

/// The environment shared by every step of a plan (without the per-step names).
pub fn base(ctx: &CompileContext, facts: &PipelineFacts) -> BTreeMap<String, String> {
    let (owner, repo_name) = ctx.repo.split_once('/').unwrap_or(("", ctx.repo.as_str()));
    let build_number = ctx.build_number.to_string();
    let pairs: [(&str, &str); 23] = [
        ("CI", "true"),
        ("CI_REPO", &ctx.repo),
        ("CI_REPO_OWNER", owner),
        ("CI_REPO_NAME", repo_name),
        ("CI_REPO_URL", &ctx.repo_url),
        ("CI_COMMIT_SHA", &ctx.sha),
        ("CI_COMMIT_BEFORE", &ctx.before),
        ("CI_COMMIT_REF", &ctx.git_ref),
        ("CI_COMMIT_BRANCH", &ctx.branch),
        ("CI_COMMIT_TAG", &ctx.tag),
        ("CI_COMMIT_MESSAGE", &ctx.message),
        ("CI_COMMIT_AUTHOR", &ctx.author),
        ("CI_BUILD_NUMBER", &build_number),
        ("CI_BUILD_EVENT", &ctx.event),
        ("CI_BUILD_LINK", &ctx.build_link),
        // The runtime replaces this with the status so far when the step starts.
        ("CI_BUILD_STATUS", "success"),
        ("CI_PREV_BUILD_STATUS", &ctx.prev_build_status),
        ("CI_PULL_REQUEST", &ctx.pull_request),
        ("CI_DEPLOY_TARGET", &ctx.deploy_target),
        ("CI_CRON_JOB", &ctx.cron),
        ("CI_PIPELINE_NAME", facts.name),
        ("CI_WORKSPACE", facts.workspace),
        ("CI_MATRIX", &matrix_label(facts.matrix)),
    ];
    let mut env: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    env.extend(drone_names(ctx, facts));
    env.extend(facts.matrix.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// The `DRONE_*` names Drone plugins read.
fn drone_names(ctx: &CompileContext, facts: &PipelineFacts) -> BTreeMap<String, String> {
    let (owner, repo_name) = ctx.repo.split_once('/').unwrap_or(("", ctx.repo.as_str()));
    let build_number = ctx.build_number.to_string();
    let drone_event = if ctx.event == "manual" {
        "custom"
    } else {
        ctx.event.as_str()
    };
    let semver = ctx.tag.trim_start_matches('v');
    let drone: [(&str, &str); 28] = [
        ("DRONE", "true"),
        ("DRONE_REPO", &ctx.repo),
        ("DRONE_REPO_OWNER", owner),
        ("DRONE_REPO_NAME", repo_name),
        ("DRONE_REPO_BRANCH", &ctx.branch),
        ("DRONE_GIT_HTTP_URL", &ctx.repo_url),
        ("DRONE_REMOTE_URL", &ctx.repo_url),
        ("DRONE_COMMIT", &ctx.sha),
        ("DRONE_COMMIT_SHA", &ctx.sha),
        ("DRONE_COMMIT_BEFORE", &ctx.before),
        ("DRONE_COMMIT_AFTER", &ctx.sha),
        ("DRONE_COMMIT_REF", &ctx.git_ref),
        ("DRONE_COMMIT_BRANCH", &ctx.branch),
        ("DRONE_COMMIT_MESSAGE", &ctx.message),
        ("DRONE_COMMIT_AUTHOR", &ctx.author),
        ("DRONE_BRANCH", &ctx.branch),
        ("DRONE_TARGET_BRANCH", &ctx.branch),
        ("DRONE_TAG", &ctx.tag),
        ("DRONE_BUILD_NUMBER", &build_number),
        ("DRONE_BUILD_EVENT", drone_event),
        ("DRONE_BUILD_LINK", &ctx.build_link),
        ("DRONE_BUILD_STATUS", "success"),
        ("DRONE_PULL_REQUEST", &ctx.pull_request),
        ("DRONE_DEPLOY_TO", &ctx.deploy_target),
        ("DRONE_CRON", &ctx.cron),
        ("DRONE_WORKSPACE", facts.workspace),
        ("DRONE_STAGE_NAME", facts.name),
        ("DRONE_SEMVER", semver),
    ];
    drone
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Adds the names that differ per step.
pub fn add_step_names(env: &mut BTreeMap<String, String>, step: &str) {
    env.insert("CI_STEP_NAME".into(), step.to_owned());
    env.insert("DRONE_STEP_NAME".into(), step.to_owned());
}

/// `RUST=stable DB=postgres` (empty without a matrix).
fn matrix_label(matrix: &BTreeMap<String, String>) -> String {
    matrix
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_names() {
        for name in [
            "CI",
            "CI_COMMIT_SHA",
            "DRONE_TAG",
            "PATH",
            "LD_PRELOAD",
            "https_proxy",
            "Home",
        ] {
            assert!(is_reserved(name, false), "{name}");
        }
        assert!(!is_reserved("PLUGIN_REPO", false));
        assert!(is_reserved("PLUGIN_REPO", true));
        assert!(!is_reserved("DATABASE_URL", true));
    }

    #[test]
    fn base_environment_has_the_spec_names() {
        let ctx = CompileContext {
            repo: "org/app".into(),
            event: "manual".into(),
            build_number: 7,
            ..CompileContext::default()
        };
        let matrix = BTreeMap::from([("RUST".to_string(), "beta".to_string())]);
        let env = base(
            &ctx,
            &PipelineFacts {
                name: "default",
                workspace: "/workspace",
                matrix: &matrix,
            },
        );
        assert_eq!(env["CI_REPO_NAME"], "app");
        assert_eq!(env["DRONE_BUILD_EVENT"], "custom");
        assert_eq!(env["CI_BUILD_NUMBER"], "7");
        assert_eq!(env["RUST"], "beta");
        assert_eq!(env["CI_MATRIX"], "RUST=beta");
    }
}
