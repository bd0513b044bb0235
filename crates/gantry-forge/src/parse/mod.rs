//! Turning an authentic hook body into a [`ParsedHook`]: one module per forge.

mod generic;
mod gitea;
mod github;
mod gitlab;
mod hub;

use http::HeaderMap;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::event::{HookEvent, ParsedHook};
use crate::forge::Forge;

/// Why an (authentic) hook body could not be understood: answer 400 with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The header naming the event is absent.
    #[error(
        "missing {header} header: is this hook really from {forge}? each forge has its own /hooks/{forge} URL"
    )]
    MissingEventHeader {
        /// The header that was expected.
        header: &'static str,
        /// The forge of the route.
        forge: Forge,
    },
    /// The body is not the JSON the event promises.
    #[error("invalid {what} at line {line}, column {column}: {message}")]
    Json {
        /// What was being read (`GitHub push payload`).
        what: String,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// serde's description of the problem.
        message: String,
    },
    /// The JSON is well formed but a field holds something unusable.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was being read.
        what: String,
        /// What is wrong and what it should be.
        reason: String,
    },
}

/// Parses an authentic hook from `forge` into an event to build, or a reason to ignore it.
///
/// Call [`crate::verify`] first. Unknown event types come back as
/// [`ParsedHook::Ignored`], never as errors, so the forge sees 200 and stops retrying.
pub fn parse_hook(
    forge: Forge,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<ParsedHook, ParseError> {
    let delivery_id = delivery_id(forge, headers, body);
    match forge {
        Forge::GitHub => github::parse(headers, body, delivery_id),
        Forge::Gitea => gitea::parse(headers, body, delivery_id),
        Forge::GitLab => gitlab::parse(headers, body, delivery_id),
        Forge::Generic => generic::parse(headers, body, delivery_id),
    }
}

/// The repository a hook names (`owner/name`), read before verification so the server can
/// look up that repository's secret. Untrusted until [`crate::verify`] passes.
pub fn hook_repo(forge: Forge, body: &[u8]) -> Result<String, ParseError> {
    let repo = match forge {
        Forge::GitHub | Forge::Gitea => {
            let hook: RepositoryOnly = from_json(body, "hook payload")?;
            hook.repository.map(|r| r.full_name).unwrap_or_default()
        }
        Forge::GitLab => {
            let hook: gitlab::ProjectOnly = from_json(body, "GitLab hook payload")?;
            hook.project
                .map(|p| p.path_with_namespace)
                .unwrap_or_default()
        }
        Forge::Generic => {
            let hook: generic::RepoOnly = from_json(body, "generic hook payload")?;
            hook.repo
        }
    };
    if repo.is_empty() {
        return Err(invalid("hook payload", "it names no repository"));
    }
    Ok(repo)
}

/// Header names carrying each forge's delivery id.
fn delivery_headers(forge: Forge) -> &'static [&'static str] {
    match forge {
        Forge::GitHub => &["x-github-delivery"],
        Forge::Gitea => &["x-gitea-delivery", "x-forgejo-delivery"],
        Forge::GitLab => &["x-gitlab-event-uuid", "x-gitlab-webhook-uuid"],
        Forge::Generic => &["x-gantry-delivery"],
    }
}

/// The forge's delivery id, else `sha256:<hex of the body>` so an identical replay still
/// maps to one id.
pub fn delivery_id(forge: Forge, headers: &HeaderMap, body: &[u8]) -> String {
    delivery_headers(forge)
        .iter()
        .filter_map(|name| header_str(headers, name))
        .map(str::trim)
        .find(|id| !id.is_empty() && id.len() <= 200)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("sha256:{}", hex::encode(Sha256::digest(body))))
}

/// A header's value as text, if present and visible ASCII.
pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Deserialises `body`, turning serde's error into one with line and column.
pub(crate) fn from_json<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ParseError> {
    serde_json::from_slice(body).map_err(|err| {
        let text = err.to_string();
        // serde_json appends " at line L column C"; we report those as fields.
        let message = match text.rfind(" at line ") {
            Some(at) => text[..at].to_owned(),
            None => text,
        };
        ParseError::Json {
            what: what.to_owned(),
            line: err.line(),
            column: err.column(),
            message,
        }
    })
}

pub(crate) fn invalid(what: &str, reason: impl Into<String>) -> ParseError {
    ParseError::Invalid {
        what: what.to_owned(),
        reason: reason.into(),
    }
}

pub(crate) fn ignored(delivery_id: String, reason: impl Into<String>) -> ParsedHook {
    ParsedHook::Ignored {
        delivery_id,
        reason: reason.into(),
    }
}

/// Checks the facts every build event needs, so nothing unusable reaches the queue.
pub(crate) fn checked(event: HookEvent, what: &str) -> Result<ParsedHook, ParseError> {
    if event.kind.build_event().is_some() {
        if event.repo.is_empty() {
            return Err(invalid(what, "it names no repository"));
        }
        if !crate::git::is_commit_sha(&event.sha) {
            return Err(invalid(
                what,
                format!("`{}` is not a commit SHA", shorten(&event.sha)),
            ));
        }
        if event.clone_url.is_empty() {
            return Err(invalid(what, "it gives no clone URL"));
        }
    }
    Ok(ParsedHook::Event(event))
}

/// At most 80 characters of untrusted text, for messages.
pub(crate) fn shorten(text: &str) -> String {
    text.chars().take(80).collect()
}

/// GitHub and Gitea both carry `repository.full_name`.
#[derive(serde::Deserialize)]
struct RepositoryOnly {
    repository: Option<FullName>,
}

#[derive(serde::Deserialize)]
struct FullName {
    #[serde(default)]
    full_name: String,
}
