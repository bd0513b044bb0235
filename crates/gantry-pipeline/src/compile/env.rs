//! The environment every step gets: `CI_*`, the `DRONE_*` names Drone plugins read,
//! matrix variables and the caller's extra variables. It is also what `${VAR}`
//! substitutes from. The clone step gets the build facts only ([`facts`]).

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

/// Variables the runtime sets when a step starts (the pipeline status so far): unknown at
/// compile time.
pub const RUNTIME_NAMES: [&str; 3] = [
    "CI_BUILD_STATUS",
    "DRONE_BUILD_STATUS",
    "CI_PIPELINE_STATUS",
];

/// True when user `environment` may not set `name`; `plugin` adds `PLUGIN_*` (a plugin's
/// settings must come from `settings`, where they are checked) and `GIT_*` (git inside a
/// plugin image reads `GIT_CONFIG_*`, `GIT_SSH_COMMAND`, ...).
pub fn is_reserved(name: &str, plugin: bool) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.starts_with("CI_")
        || upper.starts_with("DRONE_")
        || RESERVED.contains(&upper.as_str())
        || (plugin && (upper.starts_with("PLUGIN_") || upper.starts_with("GIT_")))
}

/// Names that reach every step (matrix variables, the caller's extra variables): reserved
/// as for plugin steps, since they reach plugin steps too.
pub fn is_reserved_everywhere(name: &str) -> bool {
    is_reserved(name, true)
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

/// The environment shared by every step of a plan (without the per-step names): the
/// build facts, the matrix combination and the caller's extra variables.
pub fn base(ctx: &CompileContext, pipeline: &PipelineFacts) -> BTreeMap<String, String> {
    let mut env = facts(ctx, pipeline);
    env.insert("CI_MATRIX".into(), matrix_label(pipeline.matrix));
    env.extend(pipeline.matrix.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.extend(
        ctx.extra_env
            .iter()
            .filter(|(k, _)| !is_reserved_everywhere(k))
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    env
}

/// The `CI_*` and `DRONE_*` facts of the build: nothing a user wrote (the clone step's
/// environment).
pub fn facts(ctx: &CompileContext, facts: &PipelineFacts) -> BTreeMap<String, String> {
    let (owner, repo_name) = ctx.repo.split_once('/').unwrap_or(("", ctx.repo.as_str()));
    let build_number = ctx.build_number.to_string();
    let pairs: [(&str, &str); 21] = [
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
        ("CI_PREV_BUILD_STATUS", &ctx.prev_build_status),
        ("CI_PULL_REQUEST", &ctx.pull_request),
        ("CI_DEPLOY_TARGET", &ctx.deploy_target),
        ("CI_CRON_JOB", &ctx.cron),
        ("CI_PIPELINE_NAME", facts.name),
        ("CI_WORKSPACE", facts.workspace),
    ];
    let mut env: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    env.extend(drone_names(ctx, facts));
    env.extend(semver_names(&ctx.tag));
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
    let source_branch = if ctx.source_branch.is_empty() {
        &ctx.branch
    } else {
        &ctx.source_branch
    };
    let drone: [(&str, &str); 29] = [
        ("DRONE", "true"),
        ("DRONE_REPO", &ctx.repo),
        ("DRONE_REPO_OWNER", owner),
        ("DRONE_REPO_NAME", repo_name),
        ("DRONE_REPO_BRANCH", &ctx.branch),
        ("DRONE_REPO_LINK", &ctx.repo_link),
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
        ("DRONE_COMMIT_LINK", &ctx.commit_link),
        ("DRONE_BRANCH", &ctx.branch),
        ("DRONE_SOURCE_BRANCH", source_branch),
        ("DRONE_TARGET_BRANCH", &ctx.branch),
        ("DRONE_TAG", &ctx.tag),
        ("DRONE_BUILD_NUMBER", &build_number),
        ("DRONE_BUILD_EVENT", drone_event),
        ("DRONE_BUILD_LINK", &ctx.build_link),
        ("DRONE_PULL_REQUEST", &ctx.pull_request),
        ("DRONE_DEPLOY_TO", &ctx.deploy_target),
        ("DRONE_CRON", &ctx.cron),
        ("DRONE_WORKSPACE", facts.workspace),
        ("DRONE_STAGE_NAME", facts.name),
    ];
    drone
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// `DRONE_SEMVER*` for a tag that is a semantic version (`v1.2.3-rc.1+build.5`); nothing
/// for other tags.
fn semver_names(tag: &str) -> BTreeMap<String, String> {
    let Some(version) = Semver::parse(tag.strip_prefix('v').unwrap_or(tag)) else {
        return BTreeMap::new();
    };
    let short = format!("{}.{}.{}", version.major, version.minor, version.patch);
    [
        ("DRONE_SEMVER", tag.strip_prefix('v').unwrap_or(tag)),
        ("DRONE_SEMVER_SHORT", short.as_str()),
        ("DRONE_SEMVER_MAJOR", version.major),
        ("DRONE_SEMVER_MINOR", version.minor),
        ("DRONE_SEMVER_PATCH", version.patch),
        ("DRONE_SEMVER_PRERELEASE", version.pre),
        ("DRONE_SEMVER_BUILD", version.build),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

/// The parts of `MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]`.
struct Semver<'a> {
    major: &'a str,
    minor: &'a str,
    patch: &'a str,
    pre: &'a str,
    build: &'a str,
}

impl<'a> Semver<'a> {
    fn parse(text: &'a str) -> Option<Self> {
        let (rest, build) = text.split_once('+').unwrap_or((text, ""));
        let (core, pre) = rest.split_once('-').unwrap_or((rest, ""));
        let mut parts = core.split('.');
        let (major, minor, patch) = (parts.next()?, parts.next()?, parts.next()?);
        let number = |s: &str| {
            !s.is_empty()
                && s.chars().all(|c| c.is_ascii_digit())
                && (s == "0" || !s.starts_with('0'))
        };
        let ident = |s: &str| {
            s.split('.')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        };
        let ok = parts.next().is_none()
            && [major, minor, patch].into_iter().all(number)
            && (pre.is_empty() || ident(pre))
            && (build.is_empty() || ident(build))
            && !(rest.contains('-') && pre.is_empty())
            && !(text.contains('+') && build.is_empty());
        ok.then_some(Semver {
            major,
            minor,
            patch,
            pre,
            build,
        })
    }
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
        assert!(!is_reserved("GIT_AUTHOR_NAME", false));
        assert!(is_reserved_everywhere("GIT_CONFIG_COUNT"));
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
        assert!(!env.contains_key("CI_BUILD_STATUS"));
        assert!(!env.contains_key("DRONE_SEMVER"));
    }

    #[test]
    fn semver_names_only_for_semver_tags() {
        let names = semver_names("v1.2.3-rc.1+b5");
        assert_eq!(names["DRONE_SEMVER"], "1.2.3-rc.1+b5");
        assert_eq!(names["DRONE_SEMVER_SHORT"], "1.2.3");
        assert_eq!(names["DRONE_SEMVER_MAJOR"], "1");
        assert_eq!(names["DRONE_SEMVER_PRERELEASE"], "rc.1");
        assert_eq!(names["DRONE_SEMVER_BUILD"], "b5");
        for tag in [
            "",
            "latest",
            "v1.2",
            "1.02.3",
            "1.2.3-",
            "1.2.3.4",
            "release-1",
        ] {
            assert!(semver_names(tag).is_empty(), "{tag}");
        }
    }
}
