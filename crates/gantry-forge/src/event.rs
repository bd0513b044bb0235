//! The one event type every forge's hook is parsed into.

use serde::{Deserialize, Serialize};

/// What a hook asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookKind {
    /// Commits pushed to a branch.
    Push,
    /// A tag pushed (builds with event `tag`).
    Tag,
    /// A pull (merge) request opened, updated with new commits, or reopened.
    PullRequest,
    /// The forge checking that the hook works: answer 200, build nothing.
    Ping,
}

impl HookKind {
    /// The build event this kind starts (`push`, `tag`, `pull_request`); `None` for ping.
    pub fn build_event(self) -> Option<&'static str> {
        match self {
            HookKind::Push => Some("push"),
            HookKind::Tag => Some("tag"),
            HookKind::PullRequest => Some("pull_request"),
            HookKind::Ping => None,
        }
    }
}

/// The pull-request half of a [`HookEvent`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestInfo {
    /// Number of the pull (merge) request.
    pub number: u64,
    /// Branch it targets.
    pub base_branch: String,
    /// Tip of the target branch when the hook was sent (changed files are taken against it).
    pub base_sha: String,
    /// Head commit of the pull request (the commit built; equals [`HookEvent::sha`]).
    pub head_sha: String,
    /// The head lives in another repository: no secrets, no credentials (security rule 2).
    pub from_fork: bool,
    /// What happened, as the forge says it (`opened`, `synchronize`, `reopened`, `update`...).
    pub action: String,
}

/// A hook that asks for a build (or a ping), whatever forge sent it.
///
/// Strings are empty where the forge gives nothing (a ping has no SHA).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookEvent {
    /// The forge's delivery id (or the SHA-256 of the body): a replayed delivery carries the
    /// same id, so the server starts at most one build per id.
    pub delivery_id: String,
    /// What the hook asks for.
    pub kind: HookKind,
    /// Repository full name, `owner/name` (GitLab: the full namespace path).
    pub repo: String,
    /// URL to fetch the commit from (HTTP(S) clone URL of the repository).
    pub clone_url: String,
    /// Full ref: `refs/heads/main`, `refs/tags/v1.2`, `refs/pull/7/head`.
    pub git_ref: String,
    /// Branch pushed to; for a pull request, the branch it targets.
    pub branch: String,
    /// Tag name for tag events.
    pub tag: String,
    /// The commit to build.
    pub sha: String,
    /// The branch's previous commit (pushes; may be all zeros for a new branch).
    pub before: String,
    /// Head commit message, or the pull request title.
    pub message: String,
    /// Forge login of whoever pushed or opened the pull request — never taken from the
    /// commit's author name or e-mail (security rule 3).
    pub author: String,
    /// Pull request facts for [`HookKind::PullRequest`].
    pub pull_request: Option<PullRequestInfo>,
    /// Web link to the change (compare view, commit, pull request).
    pub link: String,
}

/// The outcome of parsing an authentic hook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
// One value per request, matched once: boxing the event would only cost callers clarity.
#[allow(clippy::large_enum_variant)]
pub enum ParsedHook {
    /// A build (or ping) to record and enqueue.
    Event(HookEvent),
    /// An event Gantry does not act on: answer 200 and do nothing.
    Ignored {
        /// The delivery id, for the log line.
        delivery_id: String,
        /// Why it is ignored, for the log line and the response body.
        reason: String,
    },
}

impl ParsedHook {
    /// The delivery id of either outcome.
    pub fn delivery_id(&self) -> &str {
        match self {
            ParsedHook::Event(event) => &event.delivery_id,
            ParsedHook::Ignored { delivery_id, .. } => delivery_id,
        }
    }
}

/// A SHA of all zeros: the `before` of a new branch, or the `after` of a deleted one.
pub fn is_zero_sha(sha: &str) -> bool {
    !sha.is_empty() && sha.bytes().all(|b| b == b'0')
}

/// `refs/heads/x` → `x`.
pub(crate) fn branch_of(git_ref: &str) -> Option<&str> {
    git_ref.strip_prefix("refs/heads/")
}

/// `refs/tags/x` → `x`.
pub(crate) fn tag_of(git_ref: &str) -> Option<&str> {
    git_ref.strip_prefix("refs/tags/")
}
