//! Gitea and Forgejo hooks: `push` (branches and tags), `pull_request`; `create` is
//! ignored because the tag's `push` builds it.

use http::HeaderMap;

use super::hub;
use super::{ParseError, from_json, header_str, ignored};
use crate::event::ParsedHook;
use crate::forge::Forge;

/// Headers naming the event (Forgejo sends both).
const EVENT_HEADERS: [&str; 3] = ["x-gitea-event", "x-forgejo-event", "x-gogs-event"];

/// Pull request actions that bring new code to build (Gitea says `synchronized`).
const BUILD_ACTIONS: [&str; 4] = ["opened", "synchronized", "synchronize", "reopened"];

pub(super) fn parse(
    headers: &HeaderMap,
    body: &[u8],
    delivery_id: String,
) -> Result<ParsedHook, ParseError> {
    let event = EVENT_HEADERS
        .iter()
        .find_map(|h| header_str(headers, h))
        .ok_or(ParseError::MissingEventHeader {
            header: "X-Gitea-Event",
            forge: Forge::Gitea,
        })?;
    match event {
        "push" => hub::push_event(
            from_json(body, "Gitea push payload")?,
            delivery_id,
            "Gitea push payload",
        ),
        "pull_request" => {
            let what = "Gitea pull_request payload";
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
        // Gitea sends a tag as `create` and as a `push` of refs/tags/...: build once, from
        // the push, which also carries `before` and the message.
        "create" => Ok(ignored(
            delivery_id,
            "tags build from their `push` event; `create` starts nothing",
        )),
        other => Ok(ignored(
            delivery_id,
            format!("Gitea event `{}` starts no build", super::shorten(other)),
        )),
    }
}
