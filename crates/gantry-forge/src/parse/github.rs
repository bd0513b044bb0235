//! GitHub hooks: `push` (branches and tags), `pull_request`, `ping`.

use http::HeaderMap;
use serde::Deserialize;

use super::hub::{self, null_default};
use super::{ParseError, from_json, header_str, ignored};
use crate::event::{HookEvent, HookKind, ParsedHook};
use crate::forge::Forge;

/// The header naming the event.
pub(crate) const EVENT_HEADER: &str = "x-github-event";

/// Pull request actions that bring new code to build.
const BUILD_ACTIONS: [&str; 3] = ["opened", "synchronize", "reopened"];

pub(super) fn parse(
    headers: &HeaderMap,
    body: &[u8],
    delivery_id: String,
) -> Result<ParsedHook, ParseError> {
    let event = header_str(headers, EVENT_HEADER).ok_or(ParseError::MissingEventHeader {
        header: "X-GitHub-Event",
        forge: Forge::GitHub,
    })?;
    match event {
        "push" => hub::push_event(
            from_json(body, "GitHub push payload")?,
            delivery_id,
            "GitHub push payload",
        ),
        "pull_request" => {
            let what = "GitHub pull_request payload";
            let hook: hub::PullEvent = from_json(body, what)?;
            if !BUILD_ACTIONS.contains(&hook.action.as_str()) {
                let reason = format!(
                    "pull request action `{}` starts no build",
                    super::shorten(&hook.action)
                );
                return Ok(ignored(delivery_id, reason));
            }
            hub::pull_event(hook, delivery_id, what)
        }
        "ping" => ping(body, delivery_id),
        // A tag arrives twice, as `create` and as a `push` of refs/tags/...; only the push
        // carries the commit SHA, so that is the one that builds.
        "create" => Ok(ignored(
            delivery_id,
            "tags build from their `push` event; `create` starts nothing",
        )),
        other => Ok(ignored(
            delivery_id,
            format!("GitHub event `{}` starts no build", super::shorten(other)),
        )),
    }
}

#[derive(Deserialize)]
struct Ping {
    #[serde(default)]
    repository: Option<hub::Repo>,
    #[serde(default)]
    sender: Option<hub::User>,
    #[serde(default, deserialize_with = "null_default")]
    zen: String,
}

fn ping(body: &[u8], delivery_id: String) -> Result<ParsedHook, ParseError> {
    let ping: Ping = from_json(body, "GitHub ping payload")?;
    Ok(ParsedHook::Event(HookEvent {
        delivery_id,
        kind: HookKind::Ping,
        repo: ping.repository.map(|r| r.full_name).unwrap_or_default(),
        clone_url: String::new(),
        git_ref: String::new(),
        branch: String::new(),
        tag: String::new(),
        sha: String::new(),
        before: String::new(),
        message: ping.zen,
        author: hub::actor(ping.sender.as_ref(), None),
        pull_request: None,
        link: String::new(),
    }))
}
