//! From a trigger to what a build holds: fetch the commit, read and compile its pipeline
//! file, and turn each plan into a workflow with its steps.

use std::collections::BTreeSet;

use gantry_forge::{CommitCheckout, Netrc, PullRequestInfo};
use gantry_pipeline::{CompileContext, Plan};
use gantry_store::{
    BuildEvent, BuildPage, DEFAULT_CONFIG_PATH, NewStep, NewWorkflow, Repo, RunStatus,
};
use serde::{Deserialize, Serialize};

use crate::run::plan::{NETRC_MACHINE_SECRET, NETRC_PASSWORD_SECRET, NETRC_USERNAME_SECRET};
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
    let credentials = credentials(state, repo).await;
    let checkout = match state
        .git
        .fetch_commit(&repo.clone_url, &trigger.sha, credentials)
        .await
    {
        Ok(checkout) => checkout,
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
    let sha = checkout.sha().to_string();
    let names = config_names(repo);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let config = match checkout.config(&names).await {
        Ok(config) => config,
        Err(error) => {
            return Prepared::failed(&sha, format!("cannot read the pipeline file: {error}"));
        }
    };
    let ctx = match compile_context(state, repo, trigger, &checkout, number).await {
        Ok(ctx) => ctx,
        Err(error) => return Prepared::failed(&sha, error),
    };
    compile(&config.path, &config.text, &ctx, sha)
}

/// The repository's clone credentials (its `netrc_*` secrets), if it has them: the server
/// reads a private repository's pipeline file with the same credentials its clone step uses.
async fn credentials(state: &AppState, repo: &Repo) -> Option<Netrc> {
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

/// Compiles the file and shapes the outcome.
pub fn compile(file: &str, text: &str, ctx: &CompileContext, sha: String) -> Prepared {
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
        Ok(compiled) => Prepared {
            status: RunStatus::Pending,
            error: None,
            diagnostics: None,
            workflows: compiled.plans.iter().map(workflow_of).collect(),
            sha,
        },
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

/// What the compiler knows about this build.
async fn compile_context(
    state: &AppState,
    repo: &Repo,
    trigger: &Trigger,
    checkout: &CommitCheckout,
    number: Option<u64>,
) -> Result<CompileContext, String> {
    let from_fork = trigger.pull_request.as_ref().is_some_and(|pr| pr.from_fork);
    // A fork's pull request sees no secret (rule 2): referencing one is a compile error.
    let secrets: BTreeSet<String> = if from_fork {
        BTreeSet::new()
    } else {
        state
            .store
            .list_secrets(repo.id)
            .await
            .map_err(|e| format!("cannot list the repository's secrets: {e}"))?
            .into_iter()
            .map(|s| s.name)
            .collect()
    };
    Ok(CompileContext {
        repo: repo.full_name(),
        repo_url: repo.clone_url.clone(),
        event: trigger.event.as_str().to_string(),
        git_ref: trigger.git_ref.clone(),
        branch: trigger.branch.clone(),
        tag: trigger.tag.clone(),
        sha: checkout.sha().to_string(),
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
        changed_files: changed_files(trigger, checkout).await,
        build_number: match number {
            Some(number) => number,
            None => next_number(state, repo).await,
        },
        trusted: repo.trusted,
        secrets: Some(secrets),
        clone_image: state.config.clone_image.clone(),
        default_timeout_secs: None,
        ..CompileContext::default()
    })
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

/// Files the change touched, for path conditions; `None` (conditions match) when unknown.
async fn changed_files(trigger: &Trigger, checkout: &CommitCheckout) -> Option<Vec<String>> {
    let result = match (&trigger.event, &trigger.pull_request) {
        (BuildEvent::PullRequest, Some(pr)) => {
            let base = if pr.base_sha.is_empty() {
                &pr.base_branch
            } else {
                &pr.base_sha
            };
            checkout
                .changed_files_against_base(base, checkout.sha())
                .await
        }
        (BuildEvent::Push, _) => {
            checkout
                .changed_files(&trigger.before, checkout.sha())
                .await
        }
        _ => return None,
    };
    match result {
        Ok(files) => Some(files),
        Err(error) => {
            tracing::warn!(git.sha = checkout.sha(), error = %error, "changed files unknown; path conditions will match");
            None
        }
    }
}
