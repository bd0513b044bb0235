//! Turning a stored workflow into the plan and secrets a run needs.

use std::collections::BTreeMap;

use gantry_pipeline::plan::{Plan, SecretEnv, StepKind};
use gantry_store::{Repo, Workflow};

use crate::config::BackendChoice;
use crate::state::AppState;

/// Secret names that hold a private repository's clone credentials.
pub const NETRC_USERNAME_SECRET: &str = "netrc_username";
/// The password or token of the clone credentials.
pub const NETRC_PASSWORD_SECRET: &str = "netrc_password";
/// The host the credentials are for (default: the clone URL's host).
pub const NETRC_MACHINE_SECRET: &str = "netrc_machine";

/// Set on a pull request's clone step when the build is prepared: `true` when its head
/// comes from a fork (or its origin is unknown), `false` when from the repository itself.
pub const PULL_REQUEST_FORK_ENV: &str = "CI_PULL_REQUEST_FORK";

/// What the clone step runs on the local backend: the same exact-SHA checkout the clone
/// image does, with the host's git.
const LOCAL_CLONE_SCRIPT: [&str; 3] = [
    "git init -q .",
    "git fetch -q --depth=1 \"$CI_REPO_URL\" \"$CI_COMMIT_SHA\" || git fetch -q \"$CI_REPO_URL\"",
    "git -c advice.detachedHead=false checkout -q \"$CI_COMMIT_SHA\"",
];

/// A plan ready to run, with the secret values it may use.
#[derive(Debug)]
pub struct PreparedRun {
    /// The plan, checked and adapted to this server's backend.
    pub plan: Plan,
    /// Secret name → value (every value is masked in logs).
    pub secrets: BTreeMap<String, String>,
}

/// Why a plan could not be prepared.
#[derive(Debug)]
pub enum Unprepared {
    /// The stored plan cannot run: preparing it again fails again.
    Unusable(String),
    /// The store failed (reading the secrets): preparing it again may succeed.
    Store(String),
}

impl From<Unprepared> for String {
    fn from(unprepared: Unprepared) -> Self {
        match unprepared {
            Unprepared::Unusable(message) | Unprepared::Store(message) => message,
        }
    }
}

/// Reads and checks the stored plan, points its clone step at the configured image and
/// gives it credentials for a private repository (never to a fork's pull request unless
/// an admin trusts the repository).
pub async fn prepare(
    state: &AppState,
    repo: &Repo,
    workflow: &Workflow,
) -> Result<PreparedRun, Unprepared> {
    let mut plan: Plan = serde_json::from_str(&workflow.plan).map_err(|e| {
        Unprepared::Unusable(format!(
            "the stored plan of workflow `{}` cannot be read ({e}); restart the build to \
             compile it again",
            workflow.name
        ))
    })?;
    plan.validate().map_err(|e| {
        Unprepared::Unusable(format!(
            "the plan of workflow `{}` is unusable: {e}",
            workflow.name
        ))
    })?;
    let mut names = plan.secret_names();
    if gets_clone_credentials(repo.private, repo.trusted, &plan) {
        names.extend(
            [
                NETRC_USERNAME_SECRET,
                NETRC_PASSWORD_SECRET,
                NETRC_MACHINE_SECRET,
            ]
            .map(String::from),
        );
    }
    let values = state
        .store
        .secret_values(repo.id, &names)
        .await
        .map_err(|e| Unprepared::Store(format!("reading the repository's secrets failed: {e}")))?;
    let secrets: BTreeMap<String, String> = values
        .into_iter()
        .map(|(name, value)| (name, value.expose().to_string()))
        .collect();
    let config = &state.config;
    adapt_clone_steps(&mut plan, config.backend, &config.clone_image, &secrets);
    Ok(PreparedRun { plan, secrets })
}

/// Records on a pull request plan's clone step where its head comes from.
pub fn mark_pull_request_origin(plan: &mut Plan, from_fork: bool) {
    for step in plan.steps.iter_mut().filter(|s| s.kind == StepKind::Clone) {
        let origin = if from_fork { "true" } else { "false" };
        step.environment
            .insert(PULL_REQUEST_FORK_ENV.into(), origin.into());
    }
}

/// Whether a run reads the clone credentials: a private repository's clone step gets them,
/// except a fork's pull request, unless an admin trusts the repository (security rule 2).
/// A pull request plan stored without its origin counts as a fork.
fn gets_clone_credentials(private: bool, trusted: bool, plan: &Plan) -> bool {
    let mut clones = plan.steps.iter().filter(|s| s.kind == StepKind::Clone);
    let from_fork = |step: &gantry_pipeline::plan::Step| {
        let env = |name: &str| step.environment.get(name).map(String::as_str);
        env("CI_BUILD_EVENT") == Some("pull_request") && env(PULL_REQUEST_FORK_ENV) != Some("false")
    };
    private && clones.clone().next().is_some() && (trusted || !clones.any(from_fork))
}

/// Sets the clone image (Docker) or a host git checkout (local), plus netrc credentials.
fn adapt_clone_steps(
    plan: &mut Plan,
    backend: BackendChoice,
    clone_image: &str,
    secrets: &BTreeMap<String, String>,
) {
    let has_credentials = secrets.contains_key(NETRC_USERNAME_SECRET);
    for step in plan.steps.iter_mut().filter(|s| s.kind == StepKind::Clone) {
        match backend {
            BackendChoice::Docker => step.image = clone_image.to_string(),
            BackendChoice::Local => {
                step.commands = LOCAL_CLONE_SCRIPT.iter().map(|c| c.to_string()).collect();
            }
        }
        if !has_credentials {
            continue;
        }
        // The values travel as secrets (masked), never as plain environment.
        let pairs = [
            ("CI_NETRC_USERNAME", NETRC_USERNAME_SECRET),
            ("CI_NETRC_PASSWORD", NETRC_PASSWORD_SECRET),
            ("CI_NETRC_MACHINE", NETRC_MACHINE_SECRET),
        ];
        for (env, secret) in pairs {
            if secrets.contains_key(secret) {
                step.secrets.push(SecretEnv {
                    env: env.into(),
                    secret: secret.into(),
                });
            }
        }
        if !secrets.contains_key(NETRC_MACHINE_SECRET) {
            let host = clone_host(step.environment.get("CI_REPO_URL").map(String::as_str));
            step.environment.insert("CI_NETRC_MACHINE".into(), host);
        }
    }
}

/// The host of a clone URL (`https://user@host:port/x` → `host`), empty when it has none.
fn clone_host(url: Option<&str>) -> String {
    let Some(url) = url else { return String::new() };
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    host_port.split(':').next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cloning_plan() -> Plan {
        let ctx = gantry_pipeline::CompileContext {
            repo: "o/r".into(),
            repo_url: "https://git.example:8443/o/r.git".into(),
            sha: "0123456789abcdef0123456789abcdef01234567".into(),
            ..Default::default()
        };
        let yaml = "steps:\n  - name: s\n    image: busybox\n    commands: [true]\n";
        gantry_pipeline::compile(".pipeline.yml", yaml, &ctx)
            .expect("compiles")
            .plans
            .remove(0)
    }

    fn clone_step(plan: &Plan) -> &gantry_pipeline::plan::Step {
        plan.steps
            .iter()
            .find(|s| s.kind == StepKind::Clone)
            .expect("a clone step")
    }

    #[test]
    fn docker_clones_use_the_configured_image_and_netrc_travels_as_secrets() {
        let mut plan = cloning_plan();
        let secrets: BTreeMap<String, String> = [
            (NETRC_USERNAME_SECRET.to_string(), "bot".to_string()),
            (
                NETRC_PASSWORD_SECRET.to_string(),
                "pa55word-xyz".to_string(),
            ),
        ]
        .into();
        adapt_clone_steps(
            &mut plan,
            BackendChoice::Docker,
            "gantry-test/git:latest",
            &secrets,
        );
        let clone = clone_step(&plan);
        assert_eq!(clone.image, "gantry-test/git:latest");
        let envs: Vec<&str> = clone.secrets.iter().map(|s| s.env.as_str()).collect();
        assert_eq!(envs, ["CI_NETRC_USERNAME", "CI_NETRC_PASSWORD"]);
        assert_eq!(clone.environment["CI_NETRC_MACHINE"], "git.example");
        let printed = format!("{plan:?}");
        assert!(
            !printed.contains("pa55word-xyz"),
            "the password is not in the plan"
        );
        let other = plan.steps.iter().find(|s| s.name == "s").unwrap();
        assert!(
            other.secrets.is_empty(),
            "only the clone step gets the credentials"
        );
    }

    #[test]
    fn local_clones_check_out_with_host_git_and_public_repos_get_no_netrc() {
        let mut plan = cloning_plan();
        adapt_clone_steps(&mut plan, BackendChoice::Local, "unused", &BTreeMap::new());
        let clone = clone_step(&plan);
        assert!(clone.commands.iter().any(|c| c.contains("git fetch")));
        assert!(clone.secrets.is_empty());
        assert!(!clone.environment.contains_key("CI_NETRC_MACHINE"));
    }

    fn pull_request_plan(origin: Option<bool>) -> Plan {
        let ctx = gantry_pipeline::CompileContext {
            repo: "o/r".into(),
            repo_url: "https://git.example/o/r.git".into(),
            event: "pull_request".into(),
            git_ref: "refs/pull/7/head".into(),
            sha: "0123456789abcdef0123456789abcdef01234567".into(),
            pull_request: "7".into(),
            ..Default::default()
        };
        let yaml = "steps:\n  - name: s\n    image: busybox\n    commands: [true]\n";
        let mut plan = gantry_pipeline::compile(".pipeline.yml", yaml, &ctx)
            .expect("compiles")
            .plans
            .remove(0);
        if let Some(from_fork) = origin {
            mark_pull_request_origin(&mut plan, from_fork);
        }
        plan
    }

    #[test]
    fn sec_02_a_forks_pull_request_gets_no_clone_credentials() {
        let fork = pull_request_plan(Some(true));
        assert_eq!(clone_step(&fork).environment[PULL_REQUEST_FORK_ENV], "true");
        assert!(!gets_clone_credentials(true, false, &fork), "private, fork");
        let unknown = pull_request_plan(None);
        assert!(
            !gets_clone_credentials(true, false, &unknown),
            "a pull request of unknown origin counts as a fork"
        );
        // An admin's trust is the repository's opt-in; a public repository needs none.
        assert!(gets_clone_credentials(true, true, &fork));
        assert!(!gets_clone_credentials(false, true, &fork));
        // The repository's own pull requests and pushes keep their credentials.
        let own = pull_request_plan(Some(false));
        assert!(gets_clone_credentials(true, false, &own));
        assert!(gets_clone_credentials(true, false, &cloning_plan()));
        // Without a clone step nothing needs them.
        let mut no_clone = cloning_plan();
        no_clone.steps.retain(|s| s.kind != StepKind::Clone);
        assert!(!gets_clone_credentials(true, true, &no_clone));
    }

    #[test]
    fn clone_hosts_are_found_without_user_or_port() {
        assert_eq!(
            clone_host(Some("https://git.example:8443/a/b.git")),
            "git.example"
        );
        assert_eq!(clone_host(Some("http://u@h/x")), "h");
        assert_eq!(clone_host(Some("file:///srv/x.git")), "");
        assert_eq!(clone_host(None), "");
    }
}
