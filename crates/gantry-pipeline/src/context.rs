//! What the compiler knows about the build it compiles for.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The image of the implicit clone step unless the caller picks another.
pub const DEFAULT_CLONE_IMAGE: &str = "gantry/clone:latest";

/// The events a build can be started by (the values `event` may take).
pub const EVENTS: [&str; 6] = ["push", "pull_request", "tag", "manual", "cron", "promote"];

/// Facts about the commit and build a pipeline is compiled for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CompileContext {
    /// Repository as `owner/name`.
    pub repo: String,
    /// Clone URL of the repository.
    pub repo_url: String,
    /// The event: one of [`EVENTS`].
    pub event: String,
    /// Full git ref (`refs/heads/main`, `refs/tags/v1`, `refs/pull/7/head`).
    pub git_ref: String,
    /// Branch (for a pull request: its target branch).
    pub branch: String,
    /// Tag name for tag events.
    pub tag: String,
    /// Commit SHA being built.
    pub sha: String,
    /// Previous SHA of the branch (`before` of a push).
    pub before: String,
    /// Commit message.
    pub message: String,
    /// Commit author (display only).
    pub author: String,
    /// Source branch of a pull request (empty: same as `branch`).
    pub source_branch: String,
    /// Link to the commit on the forge.
    pub commit_link: String,
    /// Link to the repository on the forge.
    pub repo_link: String,
    /// Build number within the repository.
    pub build_number: u64,
    /// Link to the build in the web UI.
    pub build_link: String,
    /// Status of the previous build of the same branch (`success`, `failure`, or empty).
    pub prev_build_status: String,
    /// Pull request number for pull request events (empty otherwise).
    pub pull_request: String,
    /// Promote target (`production`, ...) for promote events.
    pub deploy_target: String,
    /// Cron job name for cron events.
    pub cron: String,
    /// Files changed by the push or pull request; `None` or an empty list when unknown
    /// (path conditions then match: a forge that sends no file list must not skip work).
    pub changed_files: Option<Vec<String>>,
    /// The repository is trusted by an admin: `privileged` and host volumes allowed.
    pub trusted: bool,
    /// Names of the secrets the repository has; when `Some`, referencing another is an
    /// error.
    pub secrets: Option<BTreeSet<String>>,
    /// Image of the implicit clone step.
    pub clone_image: String,
    /// Add the implicit clone step (false for `gantry exec`, which uses the current
    /// directory as the workspace).
    pub clone: bool,
    /// Timeout for steps that set none (`None`: the runner's default); also the approval
    /// timeout of approval steps that set none.
    pub default_timeout_secs: Option<u64>,
    /// Extra variables (the CLI's `--env`): substituted in `${VAR}` and added to every
    /// step's environment (not the clone step's); reserved names are refused.
    pub extra_env: BTreeMap<String, String>,
    /// Images may come from registries on loopback, link-local, metadata or unspecified
    /// addresses (`localhost:5000/app`). Off on a server, where such a pull could reach
    /// the runner's own services (SSRF); on for `gantry exec` on the user's own machine.
    pub allow_private_registries: bool,
}

impl Default for CompileContext {
    fn default() -> Self {
        Self {
            repo: String::new(),
            repo_url: String::new(),
            event: "push".into(),
            git_ref: String::new(),
            branch: String::new(),
            tag: String::new(),
            sha: String::new(),
            before: String::new(),
            message: String::new(),
            author: String::new(),
            source_branch: String::new(),
            commit_link: String::new(),
            repo_link: String::new(),
            build_number: 0,
            build_link: String::new(),
            prev_build_status: String::new(),
            pull_request: String::new(),
            deploy_target: String::new(),
            cron: String::new(),
            changed_files: None,
            trusted: false,
            secrets: None,
            clone_image: DEFAULT_CLONE_IMAGE.into(),
            clone: true,
            default_timeout_secs: None,
            extra_env: BTreeMap::new(),
            allow_private_registries: false,
        }
    }
}
