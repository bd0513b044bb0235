//! API tokens: only their SHA-256 hashes are stored.

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
}
