//! GitHub-shaped payloads: GitHub's, and Gitea/Forgejo's, which copy them closely.

use serde::{Deserialize, Deserializer};

use super::{ParseError, checked, ignored, invalid};
use crate::event::{
    HookEvent, HookKind, ParsedHook, PullRequestInfo, branch_of, is_zero_sha, tag_of,
};

/// Reads `null` as the type's default (forges send `null` for absent strings).
pub(crate) fn null_default<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

#[derive(Deserialize)]
pub(crate) struct Push {
    #[serde(rename = "ref")]
    git_ref: String,
    #[serde(default, deserialize_with = "null_default")]
    before: String,
    #[serde(default, deserialize_with = "null_default")]
    after: String,
    #[serde(default, deserialize_with = "null_default")]
    deleted: bool,
    /// GitHub's compare link.
    #[serde(default, deserialize_with = "null_default")]
    compare: String,
    /// Gitea's compare link.
    #[serde(default, deserialize_with = "null_default")]
    compare_url: String,
    #[serde(default)]
    head_commit: Option<Commit>,
    repository: Repo,
    #[serde(default)]
    sender: Option<User>,
    #[serde(default)]
    pusher: Option<User>,
}

#[derive(Deserialize)]
struct Commit {
    #[serde(default, deserialize_with = "null_default")]
    message: String,
    #[serde(default, deserialize_with = "null_default")]
    url: String,
}

#[derive(Deserialize)]
pub(crate) struct Repo {
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) full_name: String,
    #[serde(default, deserialize_with = "null_default")]
    clone_url: String,
}

/// GitHub users have `login`; Gitea users have `login` and `username`; GitHub's pusher
/// has only `name` (which is the login).
#[derive(Deserialize)]
pub(crate) struct User {
    #[serde(default, deserialize_with = "null_default")]
    login: String,
    #[serde(default, deserialize_with = "null_default")]
    username: String,
    #[serde(default, deserialize_with = "null_default")]
    name: String,
}

impl User {
    fn handle(&self) -> Option<&str> {
        [&self.login, &self.username, &self.name]
            .into_iter()
            .map(String::as_str)
            .find(|s| !s.is_empty())
    }
}

/// The forge login of whoever acted: the sender, else the pusher. Never a commit author.
pub(crate) fn actor(sender: Option<&User>, pusher: Option<&User>) -> String {
    sender
        .and_then(User::handle)
        .or_else(|| pusher.and_then(User::handle))
        .unwrap_or_default()
        .to_owned()
}

#[derive(Deserialize)]
pub(crate) struct PullEvent {
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) action: String,
    #[serde(default)]
    number: u64,
    pull_request: Pull,
    repository: Repo,
    #[serde(default)]
    sender: Option<User>,
}

#[derive(Deserialize)]
struct Pull {
    #[serde(default)]
    number: u64,
    #[serde(default, deserialize_with = "null_default")]
    title: String,
    #[serde(default, deserialize_with = "null_default")]
    html_url: String,
    base: PullBranch,
    head: PullBranch,
    #[serde(default)]
    user: Option<User>,
}

#[derive(Deserialize)]
struct PullBranch {
    #[serde(rename = "ref", default, deserialize_with = "null_default")]
    git_ref: String,
    #[serde(default, deserialize_with = "null_default")]
    sha: String,
    /// `null` when the fork was deleted.
    #[serde(default)]
    repo: Option<Repo>,
}

/// A push to a branch or a tag; deletions and other refs are ignored.
pub(crate) fn push_event(
    push: Push,
    delivery_id: String,
    what: &str,
) -> Result<ParsedHook, ParseError> {
    if push.deleted || is_zero_sha(&push.after) {
        return Ok(ignored(
            delivery_id,
            format!("`{}` was deleted: nothing to build", push.git_ref),
        ));
    }
    let (kind, branch, tag) = match (branch_of(&push.git_ref), tag_of(&push.git_ref)) {
        (Some(branch), _) => (HookKind::Push, branch.to_owned(), String::new()),
        (None, Some(tag)) => (HookKind::Tag, String::new(), tag.to_owned()),
        (None, None) => {
            let reason = format!(
                "`{}` is neither a branch nor a tag",
                super::shorten(&push.git_ref)
            );
            return Ok(ignored(delivery_id, reason));
        }
    };
    let head = push.head_commit.as_ref();
    let link = [
        push.compare.as_str(),
        push.compare_url.as_str(),
        head.map_or("", |c| c.url.as_str()),
    ]
    .into_iter()
    .find(|l| !l.is_empty())
    .unwrap_or_default()
    .to_owned();
    let event = HookEvent {
        delivery_id,
        kind,
        repo: push.repository.full_name,
        clone_url: push.repository.clone_url,
        git_ref: push.git_ref,
        branch,
        tag,
        sha: push.after,
        before: push.before,
        message: head.map(|c| c.message.clone()).unwrap_or_default(),
        author: actor(push.sender.as_ref(), push.pusher.as_ref()),
        pull_request: None,
        link,
    };
    checked(event, what)
}

/// A pull request whose `action` is one that brings new code (the caller decides which).
pub(crate) fn pull_event(
    hook: PullEvent,
    delivery_id: String,
    what: &str,
) -> Result<ParsedHook, ParseError> {
    let pull = hook.pull_request;
    let number = if hook.number != 0 {
        hook.number
    } else {
        pull.number
    };
    if number == 0 {
        return Err(invalid(what, "the pull request has no number"));
    }
    let base_repo = &hook.repository.full_name;
    let from_fork = pull
        .head
        .repo
        .as_ref()
        .is_none_or(|head| !head.full_name.eq_ignore_ascii_case(base_repo));
    let info = PullRequestInfo {
        number,
        base_branch: pull.base.git_ref.clone(),
        base_sha: pull.base.sha,
        head_sha: pull.head.sha.clone(),
        from_fork,
        action: hook.action,
    };
    let event = HookEvent {
        delivery_id,
        kind: HookKind::PullRequest,
        repo: hook.repository.full_name,
        clone_url: hook.repository.clone_url,
        git_ref: format!("refs/pull/{number}/head"),
        branch: pull.base.git_ref,
        tag: String::new(),
        sha: pull.head.sha,
        before: String::new(),
        message: pull.title,
        author: actor(hook.sender.as_ref(), pull.user.as_ref()),
        pull_request: Some(info),
        link: pull.html_url,
    };
    checked(event, what)
}
