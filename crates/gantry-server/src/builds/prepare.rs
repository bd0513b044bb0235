//! From a trigger to what a build holds: fetch the commit, read and compile its pipeline
//! file, and turn each plan into a workflow with its steps.

use std::collections::BTreeSet;
use std::time::Instant;

use gantry_forge::{ChangeRange, GitError, Netrc, PullRequestInfo};
use gantry_pipeline::{CompileContext, Plan};
use gantry_store::{
    BuildEvent, BuildPage, DEFAULT_CONFIG_PATH, NewStep, NewWorkflow, Repo, RunStatus,
};
use serde::{Deserialize, Serialize};

use crate::run::plan::{
    NETRC_MACHINE_SECRET, NETRC_PASSWORD_SECRET, NETRC_USERNAME_SECRET, mark_pull_request_origin,
};
use crate::state::AppState;

/// The pipeline file read when the repository keeps the default and has no `.pipeline.yml`.
const DRONE_CONFIG_PATH: &str = ".drone.yml";

/// What starts a build: the commit and why it is built. Stored as JSON with a hook build
/// until it is prepared, so its fields only ever gain defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trigger {
    /// What started it.
    pub event: BuildEvent,
    /// Full git ref.
    pub git_ref: String,
    /// Branch (for a pull request: its target).
    pub branch: String,
    /// Tag name for tag builds.
    pub tag: String,
    /// The commit.
    pub sha: String,
    /// The branch's previous commit (pushes).
    pub before: String,
    /// Commit message or pull request title.
    pub message: String,
    /// Commit author as the forge names it (display only).
    pub author: String,
    /// Who triggered it (forge login or API user).
    pub sender: String,
    /// Pull request facts.
    pub pull_request: Option<PullRequestInfo>,
    /// Link to the change on the forge.
    pub link: String,
    /// The build restarted or promoted.
    pub parent_id: Option<i64>,
    /// Promote target.
    pub deploy_target: Option<String>,
}

/// A build's content, ready for `create_build`.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// `pending`, `error` (with `error` and maybe `diagnostics`) or `skipped` (with `error`
    /// holding the reason).
    pub status: RunStatus,
    /// Why it is in `error` or `skipped`.
    pub error: Option<String>,
    /// Compile diagnostics as JSON text.
    pub diagnostics: Option<String>,
    /// One per plan.
    pub workflows: Vec<NewWorkflow>,
    /// The commit actually built (a tag object peeled to its commit).
    pub sha: String,
}

impl Prepared {
    fn failed(sha: &str, error: String) -> Self {
        Prepared {
            status: RunStatus::Error,
            error: Some(error),
            diagnostics: None,
            workflows: Vec::new(),
            sha: sha.to_string(),
        }
    }
}

/// Fetches, reads and compiles; every failure becomes a build in `error` saying why.
/// `number` is the build's number when it is already recorded.
pub async fn prepare(
    state: &AppState,
    repo: &Repo,
    trigger: &Trigger,
    number: Option<u64>,
) -> Prepared {
    let started = Instant::now();
    let secrets: BTreeSet<String> = match state.store.list_secrets(repo.id).await {
        Ok(list) => list.into_iter().map(|s| s.name).collect(),
        Err(error) => {
            let why = format!("cannot list the repository's secrets: {error}");
            return Prepared::failed(&trigger.sha, why);
        }
    };
    let credentials = credentials(state, repo, &secrets).await;
    let names = config_names(repo);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let facts = match state
        .git
        .read_commit(
            &repo.clone_url,
            &trigger.sha,
            credentials,
            &names,
            change_range(trigger),
        )
        .await
    {
        Ok(facts) => facts,
        Err(error) => {
            return Prepared::failed(
                &trigger.sha,
                format!(
                    "cannot fetch commit {} from {}: {error}",
                    trigger.sha, repo.clone_url
                ),
            );
        }
    };
    let git_done = Instant::now();
    let sha = facts.checkout.sha().to_string();
    let config = match facts.config {
        Ok(config) => config,
        Err(error) => {
            return Prepared::failed(&sha, format!("cannot read the pipeline file: {error}"));
        }
    };
    let changed = changed_files(&sha, facts.changed_files);
    let ctx = compile_context(
        state,
        repo,
        trigger,
        (sha.clone(), changed),
        number,
        secrets,
    )
    .await;
    let prepared = compile(
        &config.path,
        &config.text,
        &ctx,
        sha,
        pull_request_origin(trigger),
    );
    tracing::debug!(
        repo = %repo.full_name(),
        prepare.git_ms = git_done.duration_since(started).as_secs_f64() * 1000.0,
        prepare.compile_ms = git_done.elapsed().as_secs_f64() * 1000.0,
        "pipeline read and compiled"
    );
    prepared
}

/// The repository's clone credentials (its `netrc_*` secrets), if it has them: the server
/// reads a private repository's pipeline file with the same credentials its clone step uses.
async fn credentials(state: &AppState, repo: &Repo, secrets: &BTreeSet<String>) -> Option<Netrc> {
    if !(secrets.contains(NETRC_USERNAME_SECRET) && secrets.contains(NETRC_PASSWORD_SECRET)) {
        return None; // no second query (and no decryption) for the usual repository
    }
    let names = [
        NETRC_USERNAME_SECRET.to_string(),
        NETRC_PASSWORD_SECRET.to_string(),
        NETRC_MACHINE_SECRET.to_string(),
    ];
    let values = match state.store.secret_values(repo.id, &names).await {
        Ok(values) => values,
        Err(error) => {
            tracing::warn!(repo = %repo.full_name(), error = %error, "clone credentials unreadable; fetching without");
            return None;
        }
    };
    let value = |name: &str| {
        values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.expose().to_string())
    };
    Some(Netrc {
        login: value(NETRC_USERNAME_SECRET)?,
        password: value(NETRC_PASSWORD_SECRET)?,
        machine: value(NETRC_MACHINE_SECRET).unwrap_or_default(),
    })
}

/// The names the pipeline file is looked for under.
fn config_names(repo: &Repo) -> Vec<String> {
    if repo.config_path == DEFAULT_CONFIG_PATH {
        vec![
            DEFAULT_CONFIG_PATH.to_string(),
            DRONE_CONFIG_PATH.to_string(),
        ]
    } else {
        vec![repo.config_path.clone()]
    }
}

/// For a pull request: whether its head comes from a fork (unknown counts as a fork).
fn pull_request_origin(trigger: &Trigger) -> Option<bool> {
    (trigger.event == BuildEvent::PullRequest)
        .then(|| trigger.pull_request.as_ref().is_none_or(|pr| pr.from_fork))
}

/// Compiles the file and shapes the outcome; `fork` (pull requests only) is recorded on the
/// plans, which decides at run time whether the clone step gets credentials.
pub fn compile(
    file: &str,
    text: &str,
    ctx: &CompileContext,
    sha: String,
    fork: Option<bool>,
) -> Prepared {
    match gantry_pipeline::compile(file, text, ctx) {
        Err(diagnostics) => Prepared {
            status: RunStatus::Error,
            error: Some(format!(
                "{file} does not compile: {} problem(s); see the diagnostics",
                diagnostics.iter().filter(|d| d.is_error()).count()
            )),
            diagnostics: serde_json::to_string(&diagnostics).ok(),
            workflows: Vec::new(),
            sha,
        },
        Ok(compiled) if compiled.plans.is_empty() => {
            let reasons: Vec<String> = compiled
                .skipped
                .iter()
                .map(|s| format!("{}: {}", s.name, s.reason))
                .collect();
            let reason = if reasons.is_empty() {
                format!("{file} defines no pipeline")
            } else {
                format!("no pipeline runs for this build ({})", reasons.join("; "))
            };
            Prepared {
                status: RunStatus::Skipped,
                error: Some(reason),
                diagnostics: None,
                workflows: Vec::new(),
                sha,
            }
        }
        Ok(mut compiled) => {
            if let Some(from_fork) = fork {
                for plan in &mut compiled.plans {
                    mark_pull_request_origin(plan, from_fork);
                }
            }
            Prepared {
                status: RunStatus::Pending,
                error: None,
                diagnostics: None,
                workflows: compiled.plans.iter().map(workflow_of).collect(),
                sha,
            }
        }
    }
}

/// A workflow row and its step rows for a plan (services first, then steps, in plan order).
pub fn workflow_of(plan: &Plan) -> NewWorkflow {
    let steps = plan
        .services
        .iter()
        .chain(plan.steps.iter())
        .map(|step| NewStep {
            name: step.name.clone(),
            kind: serde_json::to_value(step.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            needs: step.needs.clone(),
        })
        .collect();
    NewWorkflow {
        name: plan.name.clone(),
        // Serialising a plan of plain data cannot fail; an empty plan would be refused by
        // the runner's validation rather than run.
        plan: serde_json::to_string(plan).unwrap_or_default(),
        labels: plan.labels.clone(),
        steps,
    }
}

/// What the compiler knows about this build; `commit` is the SHA built and the files it
/// changed.
async fn compile_context(
    state: &AppState,
    repo: &Repo,
    trigger: &Trigger,
    commit: (String, Option<Vec<String>>),
    number: Option<u64>,
    secrets: BTreeSet<String>,
) -> CompileContext {
    let from_fork = trigger.pull_request.as_ref().is_some_and(|pr| pr.from_fork);
    let (sha, changed_files) = commit;
    CompileContext {
        repo: repo.full_name(),
        repo_url: repo.clone_url.clone(),
        event: trigger.event.as_str().to_string(),
        git_ref: trigger.git_ref.clone(),
        branch: trigger.branch.clone(),
        tag: trigger.tag.clone(),
        sha,
        before: trigger.before.clone(),
        message: trigger.message.clone(),
        author: trigger.author.clone(),
        commit_link: trigger.link.clone(),
        pull_request: trigger
            .pull_request
            .as_ref()
            .map(|pr| pr.number.to_string())
            .unwrap_or_default(),
        deploy_target: trigger.deploy_target.clone().unwrap_or_default(),
        changed_files,
        build_number: match number {
            Some(number) => number,
            None => next_number(state, repo).await,
        },
        trusted: repo.trusted,
        // A fork's pull request sees no secret (rule 2): referencing one is a compile error.
        secrets: Some(if from_fork { BTreeSet::new() } else { secrets }),
        clone_image: state.config.clone_image.clone(),
        default_timeout_secs: None,
        allow_private_registries: state.config.allow_private_registries,
        ..CompileContext::default()
    }
}

/// The number the build will most likely get: the store numbers builds only when it
/// records them, after compiling, so two builds prepared at once may both guess the same
/// one: the stored build's number is the authoritative one.
async fn next_number(state: &AppState, repo: &Repo) -> u64 {
    let page = BuildPage {
        before_number: None,
        limit: 1,
    };
    match state.store.list_builds(repo.id, page).await {
        Ok(builds) => builds.first().map_or(1, |b| b.number.max(0) as u64 + 1),
        Err(_) => 0,
    }
}

/// The change whose files feed the path conditions.
fn change_range(trigger: &Trigger) -> ChangeRange<'_> {
    match (&trigger.event, &trigger.pull_request) {
        (BuildEvent::PullRequest, Some(pr)) => ChangeRange::PullRequest {
            base: if pr.base_sha.is_empty() {
                &pr.base_branch
            } else {
                &pr.base_sha
            },
        },
        (BuildEvent::Push, _) => ChangeRange::Push {
            before: &trigger.before,
        },
        _ => ChangeRange::None,
    }
}

/// Files the change touched, for path conditions; `None` (conditions match) when unknown.
fn changed_files(sha: &str, found: Option<Result<Vec<String>, GitError>>) -> Option<Vec<String>> {
    match found? {
        Ok(files) => Some(files),
        Err(error) => {
            tracing::warn!(git.sha = sha, error = %error, "changed files unknown; path conditions will match");
            None
        }
    }
}
