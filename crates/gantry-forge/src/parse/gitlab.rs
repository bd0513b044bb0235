//! GitLab hooks: `Push Hook`, `Tag Push Hook`, `Merge Request Hook`.

use http::HeaderMap;
use serde::Deserialize;

use super::hub::null_default;
use super::{ParseError, checked, from_json, header_str, ignored, invalid, shorten};
use crate::event::{
    HookEvent, HookKind, ParsedHook, PullRequestInfo, branch_of, is_zero_sha, tag_of,
};
use crate::forge::Forge;

/// Merge request actions that bring new code (`update` only when it moved the head).
const BUILD_ACTIONS: [&str; 3] = ["open", "reopen", "update"];

/// Just the project, to find the repository before verification.
#[derive(Deserialize)]
pub(super) struct ProjectOnly {
    #[serde(default)]
    pub(super) project: Option<Project>,
}

#[derive(Deserialize)]
pub(super) struct Project {
    #[serde(default, deserialize_with = "null_default")]
    pub(super) path_with_namespace: String,
    #[serde(default, deserialize_with = "null_default")]
    git_http_url: String,
    #[serde(default, deserialize_with = "null_default")]
    web_url: String,
}

#[derive(Deserialize)]
struct Push {
    #[serde(rename = "ref")]
    git_ref: String,
    #[serde(default, deserialize_with = "null_default")]
    before: String,
    #[serde(default, deserialize_with = "null_default")]
    after: String,
    /// The commit to check out; for an annotated tag `after` is the tag object.
    #[serde(default, deserialize_with = "null_default")]
    checkout_sha: String,
    #[serde(default, deserialize_with = "null_default")]
    user_username: String,
    project: Project,
    #[serde(default, deserialize_with = "null_default")]
    commits: Vec<Commit>,
}

#[derive(Deserialize)]
struct Commit {
    #[serde(default, deserialize_with = "null_default")]
    id: String,
    #[serde(default, deserialize_with = "null_default")]
    message: String,
    #[serde(default, deserialize_with = "null_default")]
    url: String,
}

pub(super) fn parse(
    headers: &HeaderMap,
    body: &[u8],
    delivery_id: String,
) -> Result<ParsedHook, ParseError> {
    let event = header_str(headers, "x-gitlab-event").ok_or(ParseError::MissingEventHeader {
        header: "X-Gitlab-Event",
        forge: Forge::GitLab,
    })?;
    match event {
        "Push Hook" => push(
            from_json(body, "GitLab Push Hook payload")?,
            delivery_id,
            "GitLab Push Hook payload",
        ),
        "Tag Push Hook" => push(
            from_json(body, "GitLab Tag Push Hook payload")?,
            delivery_id,
            "GitLab Tag Push Hook payload",
        ),
        "Merge Request Hook" => merge_request(body, delivery_id),
        other => Ok(ignored(
            delivery_id,
            format!("GitLab event `{}` starts no build", shorten(other)),
        )),
    }
}

fn push(push: Push, delivery_id: String, what: &str) -> Result<ParsedHook, ParseError> {
    if is_zero_sha(&push.after) {
        return Ok(ignored(
            delivery_id,
            format!("`{}` was deleted: nothing to build", shorten(&push.git_ref)),
        ));
    }
    let (kind, branch, tag) = match (branch_of(&push.git_ref), tag_of(&push.git_ref)) {
        (Some(branch), _) => (HookKind::Push, branch.to_owned(), String::new()),
        (None, Some(tag)) => (HookKind::Tag, String::new(), tag.to_owned()),
        (None, None) => {
            return Ok(ignored(
                delivery_id,
                format!("`{}` is neither a branch nor a tag", shorten(&push.git_ref)),
            ));
        }
    };
    let sha = if push.checkout_sha.is_empty() {
        push.after
    } else {
        push.checkout_sha
    };
    // GitLab lists commits oldest first; the head is the one matching the SHA.
    let head = push
        .commits
        .iter()
        .find(|c| c.id == sha)
        .or(push.commits.last());
    let event = HookEvent {
        delivery_id,
        kind,
        repo: push.project.path_with_namespace,
        clone_url: push.project.git_http_url,
        git_ref: push.git_ref,
        branch,
        tag,
        link: head
            .map(|c| c.url.clone())
            .unwrap_or_else(|| push.project.web_url.clone()),
        message: head.map(|c| c.message.clone()).unwrap_or_default(),
        sha,
        before: push.before,
        author: push.user_username,
        pull_request: None,
    };
    checked(event, what)
}

#[derive(Deserialize)]
struct MergeRequestHook {
    #[serde(default)]
    user: Option<User>,
    project: Project,
    object_attributes: MergeRequest,
}

#[derive(Deserialize)]
struct User {
    #[serde(default, deserialize_with = "null_default")]
    username: String,
}

#[derive(Deserialize)]
struct MergeRequest {
    #[serde(default)]
    iid: u64,
    #[serde(default, deserialize_with = "null_default")]
    title: String,
    #[serde(default, deserialize_with = "null_default")]
    url: String,
    #[serde(default, deserialize_with = "null_default")]
    action: String,
    /// Present on `update` only when new commits were pushed.
    #[serde(default, deserialize_with = "null_default")]
    oldrev: String,
    #[serde(default, deserialize_with = "null_default")]
    target_branch: String,
    #[serde(default)]
    source_project_id: u64,
    #[serde(default)]
    target_project_id: u64,
    last_commit: LastCommit,
}

#[derive(Deserialize)]
struct LastCommit {
    #[serde(default, deserialize_with = "null_default")]
    id: String,
}

fn merge_request(body: &[u8], delivery_id: String) -> Result<ParsedHook, ParseError> {
    let what = "GitLab Merge Request Hook payload";
    let hook: MergeRequestHook = from_json(body, what)?;
    let mr = hook.object_attributes;
    if !BUILD_ACTIONS.contains(&mr.action.as_str())
        || (mr.action == "update" && mr.oldrev.is_empty())
    {
        let action = if mr.action == "update" {
            "update without new commits"
        } else {
            mr.action.as_str()
        };
        return Ok(ignored(
            delivery_id,
            format!("merge request action `{}` starts no build", shorten(action)),
        ));
    }
    if mr.iid == 0 {
        return Err(invalid(what, "the merge request has no `iid`"));
    }
    let info = PullRequestInfo {
        number: mr.iid,
        base_branch: mr.target_branch.clone(),
        // GitLab's hook carries no target SHA: changed files are taken against the branch.
        base_sha: String::new(),
        head_sha: mr.last_commit.id.clone(),
        from_fork: mr.source_project_id != mr.target_project_id,
        action: mr.action,
    };
    let event = HookEvent {
        delivery_id,
        kind: HookKind::PullRequest,
        repo: hook.project.path_with_namespace,
        clone_url: hook.project.git_http_url,
        git_ref: format!("refs/merge-requests/{}/head", mr.iid),
        branch: mr.target_branch,
        tag: String::new(),
        sha: mr.last_commit.id,
        before: String::new(),
        message: mr.title,
        author: hook.user.map(|u| u.username).unwrap_or_default(),
        pull_request: Some(info),
        link: mr.url,
    };
    checked(event, what)
}
