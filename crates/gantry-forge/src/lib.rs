//! Gantry's side of the forge: is this webhook authentic, what does it ask for, and what
//! does the commit it names hold.
//!
//! The server's hook handler, in order:
//!
//! 1. [`hook_repo`] reads the repository name from the body (untrusted) to find the
//!    repository and its webhook secret; unknown repository → reject.
//! 2. [`verify`] checks the signature in constant time; failure → 401, nothing written.
//! 3. [`parse_hook`] gives a [`ParsedHook`]: an [`HookEvent`] to record and enqueue, or
//!    [`ParsedHook::Ignored`] (answer 200). [`HookEvent::delivery_id`] is the replay key.
//! 4. Later, off the request path: [`GitCache::fetch_commit`] fetches the commit,
//!    [`CommitCheckout::config`] reads `.pipeline.yml` / `.drone.yml`, and
//!    [`CommitCheckout::changed_files`] / [`CommitCheckout::changed_files_against_base`]
//!    list the changed files for path conditions.
//!
//! Nothing here logs or returns a secret: signatures, MACs, tokens and clone passwords stay
//! out of every error, `Debug` output and log line (security rules 1 and 10).

/// A body limit for hook routes: GitHub caps deliveries at 25 MB, but real pushes stay far
/// below 10 MiB; larger bodies should get 413 before anything is parsed.
pub const HOOK_BODY_LIMIT: usize = 10 * 1024 * 1024;

mod event;
mod forge;
mod git;
mod parse;
mod verify;

pub use event::{HookEvent, HookKind, ParsedHook, PullRequestInfo, is_zero_sha};
pub use forge::{Forge, UnknownForge};
pub use git::{
    ChangeRange, CommitCheckout, CommitFacts, ConfigFile, DEFAULT_CONFIG_NAMES,
    DEFAULT_GIT_TIMEOUT, GitCache, GitError, Netrc, is_commit_sha,
};
pub use parse::{ParseError, delivery_id, hook_repo, parse_hook};
pub use verify::{
    FORGEJO_SIGNATURE, GANTRY_SIGNATURE, GITEA_SIGNATURE, GITHUB_SIGNATURE, GITLAB_TOKEN,
    VerifyError, gantry_signature, hmac_hex, verify,
};
