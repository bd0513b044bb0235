//! Gantry's own hook payload, for forges and scripts without a dedicated route.
//!
//! ```json
//! {"event": "push", "repo": "owner/name", "clone_url": "https://git.example.com/owner/name.git",
//!  "ref": "refs/heads/main", "before": "<sha>", "after": "<sha>",
//!  "message": "Fix the build", "author": "alice", "link": "https://..."}
//! ```
//!
//! `event` is `push` (a branch or, with a `refs/tags/` ref, a tag), `pull_request` (then a
//! `pull_request` object is required) or `ping`; the `X-Gantry-Event` header may give it
//! instead. Unknown fields are refused so a typo never goes unnoticed.

use http::HeaderMap;
use serde::Deserialize;

use super::{ParseError, checked, from_json, header_str, ignored, invalid, shorten};
use crate::event::{
    HookEvent, HookKind, ParsedHook, PullRequestInfo, branch_of, is_zero_sha, tag_of,
};

const WHAT: &str = "generic hook payload";

/// Just the repository, to find its secret before verification.
#[derive(Deserialize)]
pub(super) struct RepoOnly {
    #[serde(default)]
    pub(super) repo: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    #[serde(default)]
    event: Option<String>,
    repo: String,
    #[serde(default)]
    clone_url: String,
    #[serde(rename = "ref", default)]
    git_ref: String,
    #[serde(default)]
    before: String,
    #[serde(default)]
    after: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    author: String,
    #[serde(default)]
    link: String,
    #[serde(default)]
    pull_request: Option<PullRequest>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PullRequest {
    number: u64,
    base_branch: String,
    #[serde(default)]
    base_sha: String,
    #[serde(default)]
    from_fork: bool,
    #[serde(default)]
    action: String,
}

pub(super) fn parse(
    headers: &HeaderMap,
    body: &[u8],
    delivery_id: String,
) -> Result<ParsedHook, ParseError> {
    let payload: Payload = from_json(body, WHAT)?;
    let header_event = header_str(headers, "x-gantry-event");
    let event = match (header_event, payload.event.as_deref()) {
        (Some(h), Some(b)) if h != b => {
            return Err(invalid(
                WHAT,
                format!(
                    "X-Gantry-Event says `{}` but the body says `{}`",
                    shorten(h),
                    shorten(b)
                ),
            ));
        }
        (Some(e), _) | (None, Some(e)) => e.to_owned(),
        (None, None) => "push".to_owned(),
    };
    match event.as_str() {
        "push" => push(payload, delivery_id),
        "pull_request" => pull_request(payload, delivery_id),
        "ping" => Ok(ParsedHook::Event(HookEvent {
            kind: HookKind::Ping,
            ..blank(payload, delivery_id)
        })),
        other => Err(invalid(
            WHAT,
            format!(
                "unknown event `{}`: use push, pull_request or ping",
                shorten(other)
            ),
        )),
    }
}

fn blank(payload: Payload, delivery_id: String) -> HookEvent {
    HookEvent {
        delivery_id,
        kind: HookKind::Push,
        repo: payload.repo,
        clone_url: payload.clone_url,
        git_ref: payload.git_ref,
        branch: String::new(),
        tag: String::new(),
        sha: payload.after,
        before: payload.before,
        message: payload.message,
        author: payload.author,
        pull_request: None,
        link: payload.link,
    }
}

fn push(payload: Payload, delivery_id: String) -> Result<ParsedHook, ParseError> {
    if is_zero_sha(&payload.after) {
        return Ok(ignored(
            delivery_id,
            format!(
                "`{}` was deleted: nothing to build",
                shorten(&payload.git_ref)
            ),
        ));
    }
    let event = blank(payload, delivery_id);
    let event = match (branch_of(&event.git_ref), tag_of(&event.git_ref)) {
        (Some(branch), _) => HookEvent {
            branch: branch.to_owned(),
            ..event
        },
        (None, Some(tag)) => HookEvent {
            kind: HookKind::Tag,
            tag: tag.to_owned(),
            ..event
        },
        (None, None) => {
            let reason = format!(
                "`ref` must start with refs/heads/ or refs/tags/, not `{}`",
                shorten(&event.git_ref)
            );
            return Err(invalid(WHAT, reason));
        }
    };
    checked(event, WHAT)
}

fn pull_request(mut payload: Payload, delivery_id: String) -> Result<ParsedHook, ParseError> {
    let pr = payload.pull_request.take().ok_or_else(|| {
        invalid(
            WHAT,
            "event `pull_request` needs a `pull_request` object with `number` and `base_branch`",
        )
    })?;
    let mut event = blank(payload, delivery_id);
    if event.git_ref.is_empty() {
        event.git_ref = format!("refs/pull/{}/head", pr.number);
    }
    event.kind = HookKind::PullRequest;
    event.branch = pr.base_branch.clone();
    event.pull_request = Some(PullRequestInfo {
        number: pr.number,
        base_branch: pr.base_branch,
        base_sha: pr.base_sha,
        head_sha: event.sha.clone(),
        from_fork: pr.from_fork,
        action: if pr.action.is_empty() {
            "opened".into()
        } else {
            pr.action
        },
    });
    checked(event, WHAT)
}
