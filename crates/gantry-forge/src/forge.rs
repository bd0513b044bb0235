//! Which kind of forge sent a hook: decides the signature header and the payload shape.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A kind of forge, as named in the hook route (`/hooks/{forge}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Forge {
    /// GitHub (and GitHub Enterprise): `X-Hub-Signature-256`, `X-GitHub-Event`.
    GitHub,
    /// Gitea and Forgejo: `X-Gitea-Signature` / `X-Forgejo-Signature`, `X-Gitea-Event`.
    Gitea,
    /// GitLab: `X-Gitlab-Token`, `X-Gitlab-Event`.
    GitLab,
    /// Anything else that signs Gantry's own payload: `X-Gantry-Signature`.
    Generic,
}

impl Forge {
    /// Every forge, in the order the docs list them.
    pub const ALL: [Forge; 4] = [Forge::GitHub, Forge::Gitea, Forge::GitLab, Forge::Generic];

    /// The lowercase name used in routes and the store (`github`, `gitea`, `gitlab`, `generic`).
    pub fn as_str(self) -> &'static str {
        match self {
            Forge::GitHub => "github",
            Forge::Gitea => "gitea",
            Forge::GitLab => "gitlab",
            Forge::Generic => "generic",
        }
    }
}

impl fmt::Display for Forge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A forge name that is none of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown forge `{0}`: expected one of github, gitea, forgejo, gitlab, generic")]
pub struct UnknownForge(pub String);

impl FromStr for Forge {
    type Err = UnknownForge;

    /// Parses a route segment; `forgejo` is Gitea (same payloads and signature).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.to_ascii_lowercase().as_str() {
            "github" => Ok(Forge::GitHub),
            "gitea" | "forgejo" => Ok(Forge::Gitea),
            "gitlab" => Ok(Forge::GitLab),
            "generic" => Ok(Forge::Generic),
            _ => Err(UnknownForge(name.chars().take(40).collect())),
        }
    }
}
