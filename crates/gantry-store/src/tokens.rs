//! API tokens: only their SHA-256 hashes are stored.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::error::{StoreError, StoreResult};
use crate::status::text_enum;
use crate::time::Millis;

text_enum! {
    /// What a token may do.
    TokenRole, "token.role" {
        /// Everything, on every repository.
        Admin = "admin",
        /// What its user may do.
        User = "user",
        /// Only the runner protocol.
        Runner = "runner",
    }
}

/// A stored token (without any secret part).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    /// Store id.
    pub id: i64,
    /// A label to recognise it by.
    pub name: String,
    /// The user (or runner) it acts as.
    pub subject: String,
    /// Its role.
    pub role: TokenRole,
    /// Optional narrower scope, e.g. `repo:acme/app` (the server interprets it).
    pub scope: Option<String>,
    /// A runner token's imposed labels (empty: none).
    pub labels: BTreeMap<String, String>,
    /// The repositories a runner token's runner may take work of (None: every one).
    pub repos: Option<Vec<String>>,
    /// Created then.
    pub created_at: Millis,
    /// Last verified then.
    pub last_used_at: Option<Millis>,
    /// Revoked then; a revoked token never verifies.
    pub revoked_at: Option<Millis>,
}

/// What `create_token` needs.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Label.
    pub name: String,
    /// User or runner it acts as.
    pub subject: String,
    /// Role.
    pub role: TokenRole,
    /// Optional scope.
    pub scope: Option<String>,
}

/// What a runner token restricts its runner to. The default restricts nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunnerScope {
    /// Labels imposed on the runner: it may not declare another value for these keys,
    /// and it is routed as having them.
    pub labels: BTreeMap<String, String>,
    /// `owner/name` or `owner/*` patterns of the repositories whose workflows the runner
    /// may claim; None: every repository.
    pub repos: Option<Vec<String>>,
}

/// Most labels or repository patterns on one runner token.
pub const MAX_SCOPE_ENTRIES: usize = 64;
/// Longest label key or value, or repository pattern, on a runner token.
pub const MAX_SCOPE_CHARS: usize = 200;

impl RunnerScope {
    /// True when it restricts nothing.
    pub fn is_unscoped(&self) -> bool {
        self.labels.is_empty() && self.repos.is_none()
    }

    /// True when the runner may take work of the repository `owner/name`.
    pub fn allows_repo(&self, full_name: &str) -> bool {
        self.repos
            .as_ref()
            .is_none_or(|patterns| patterns.iter().any(|p| repo_pattern_matches(p, full_name)))
    }

    /// Why the scope cannot be stored, if it cannot (what is wrong and what to write).
    pub fn check(&self) -> Result<(), String> {
        if self.labels.len() > MAX_SCOPE_ENTRIES {
            return Err(format!(
                "{} labels are too many; give at most {MAX_SCOPE_ENTRIES}",
                self.labels.len()
            ));
        }
        for (key, value) in &self.labels {
            let bad_key = key.is_empty()
                || key.chars().count() > MAX_SCOPE_CHARS
                || key
                    .chars()
                    .any(|c| c == '=' || c == ',' || c.is_whitespace());
            let bad_value = value.is_empty()
                || value.chars().count() > MAX_SCOPE_CHARS
                || value.chars().any(|c| c == ',' || c.is_whitespace());
            if bad_key || bad_value {
                return Err(format!(
                    "label `{}={}`: keys and values are 1 to {MAX_SCOPE_CHARS} characters \
                     without spaces or commas (keys without `=`)",
                    clip(key),
                    clip(value)
                ));
            }
        }
        if let Some(repos) = &self.repos {
            if repos.is_empty() {
                return Err(
                    "an empty repository list would allow nothing; name at least one \
                            `owner/name` or `owner/*`, or leave the list out"
                        .to_string(),
                );
            }
            if repos.len() > MAX_SCOPE_ENTRIES {
                return Err(format!(
                    "{} repositories are too many; give at most {MAX_SCOPE_ENTRIES} \
                     (`owner/*` names every repository of an owner)",
                    repos.len()
                ));
            }
            for pattern in repos {
                if !valid_repo_pattern(pattern) {
                    return Err(format!(
                        "repository `{}`: name it `owner/name` or `owner/*`",
                        clip(pattern)
                    ));
                }
            }
        }
        Ok(())
    }
}

fn clip(text: &str) -> String {
    text.chars().take(MAX_SCOPE_CHARS).collect()
}

fn valid_repo_pattern(pattern: &str) -> bool {
    let part = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    match pattern.split_once('/') {
        Some((owner, name)) => {
            pattern.chars().count() <= MAX_SCOPE_CHARS && part(owner) && (name == "*" || part(name))
        }
        None => false,
    }
}

/// True when `pattern` (`owner/name` or `owner/*`) names the repository `full_name`.
pub fn repo_pattern_matches(pattern: &str, full_name: &str) -> bool {
    match (pattern.split_once('/'), full_name.split_once('/')) {
        (Some((owner, "*")), Some((repo_owner, _))) => owner == repo_owner,
        _ => pattern == full_name,
    }
}

/// The plaintext of a new token, shown once. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct PlaintextToken(String);

impl PlaintextToken {
    /// The token as the client sends it in `Authorization: Bearer`.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PlaintextToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlaintextToken(********)")
    }
}

/// Prefix of every token, so leaked ones are easy to recognise.
pub const TOKEN_PREFIX: &str = "gantry_";

/// A new random token: the prefix and 32 random bytes in hex.
pub(crate) fn new_plaintext() -> StoreResult<PlaintextToken> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| StoreError::SecretKey(format!("the system has no randomness: {e}")))?;
    Ok(PlaintextToken(format!(
        "{TOKEN_PREFIX}{}",
        hex::encode(bytes)
    )))
}

/// The stored form of a token: hex SHA-256 of its text.
pub fn token_hash(plaintext: &str) -> String {
    hex::encode(Sha256::digest(plaintext.as_bytes()))
}

/// API tokens.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Creates a token and returns its plaintext, the only time it is available.
    async fn create_token(
        &self,
        token: &NewToken,
        now: Millis,
    ) -> StoreResult<(ApiToken, PlaintextToken)>;
    /// Creates a runner token restricted to `scope` (checked; a bad one is InvalidInput)
    /// and returns its plaintext, the only time it is available.
    async fn create_runner_token(
        &self,
        token: &NewToken,
        scope: &RunnerScope,
        now: Millis,
    ) -> StoreResult<(ApiToken, PlaintextToken)>;
    /// Adopts a given plaintext (e.g. `GANTRY_ADMIN_TOKEN`) as a token; a token with the
    /// same text already stored is a Conflict.
    async fn import_token(
        &self,
        token: &NewToken,
        plaintext: &str,
        now: Millis,
    ) -> StoreResult<ApiToken>;
    /// The unrevoked token with this plaintext, recording its use (to the minute); None
    /// otherwise.
    async fn verify_token(&self, plaintext: &str, now: Millis) -> StoreResult<Option<ApiToken>>;
    /// Revokes a token; false if unknown or already revoked.
    async fn revoke_token(&self, id: i64, now: Millis) -> StoreResult<bool>;
    /// Every token, newest first.
    async fn list_tokens(&self) -> StoreResult<Vec<ApiToken>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_hash_to_hex() {
        let a = new_plaintext().unwrap();
        let b = new_plaintext().unwrap();
        assert_ne!(a, b);
        assert!(a.expose().starts_with(TOKEN_PREFIX));
        assert_eq!(token_hash(a.expose()).len(), 64);
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn runner_scopes_are_checked_and_match_repositories() {
        let scope = RunnerScope {
            labels: BTreeMap::from([("os".into(), "linux".into())]),
            repos: Some(vec!["acme/app".into(), "tools/*".into()]),
        };
        assert!(scope.check().is_ok());
        assert!(scope.allows_repo("acme/app"));
        assert!(scope.allows_repo("tools/lint"));
        assert!(!scope.allows_repo("acme/other"));
        assert!(!scope.allows_repo("acme/app2"));
        assert!(RunnerScope::default().allows_repo("any/thing"));
        assert!(RunnerScope::default().is_unscoped());
        for bad in ["acme", "acme/", "/x", "a/b/c", "*/x", "acme/a b"] {
            let scope = RunnerScope {
                repos: Some(vec![bad.into()]),
                ..RunnerScope::default()
            };
            let error = scope.check().unwrap_err();
            assert!(error.contains("owner/name"), "{bad}: {error}");
        }
        let empty = RunnerScope {
            repos: Some(vec![]),
            ..RunnerScope::default()
        };
        assert!(empty.check().unwrap_err().contains("allow nothing"));
        let label = RunnerScope {
            labels: BTreeMap::from([("os".into(), String::new())]),
            ..RunnerScope::default()
        };
        assert!(label.check().unwrap_err().contains("label `os=`"));
    }
}
