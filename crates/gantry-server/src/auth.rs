//! Who is calling: bearer tokens, the principal they stand for, and what it may do.
//!
//! Roles: an admin token may do everything; a user token reads public repositories and,
//! through its scope, reads (`read:owner/name`) or reads and writes (`repo:owner/name`)
//! named repositories (`owner/*` covers an owner's repositories); a runner token opens no
//! API route. Unauthorised readers of a private repository get 404, never 403 (rule 12).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use gantry_store::{NewToken, Repo, TokenRole, now_ms};

use crate::config::ADMIN_TOKEN_ENV;
use crate::error::ApiError;
use crate::state::AppState;

/// A scope entry of a user token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// `owner/name`, or `owner/*`.
    pub pattern: String,
    /// Write (trigger, cancel, approve, secrets, settings) as well as read.
    pub write: bool,
}

impl Grant {
    fn covers(&self, repo: &Repo) -> bool {
        match self.pattern.split_once('/') {
            Some((owner, "*")) => owner == repo.owner,
            Some((owner, name)) => owner == repo.owner && name == repo.name,
            None => false,
        }
    }
}

/// The caller a verified token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Everything, everywhere.
    Admin {
        /// Who (the token's subject).
        subject: String,
    },
    /// Public repositories, plus what the grants name.
    User {
        /// Who (the token's subject).
        subject: String,
        /// What the token's scope grants.
        grants: Vec<Grant>,
    },
}

impl Principal {
    /// The name recorded as a build's sender or an approval's author.
    pub fn subject(&self) -> &str {
        match self {
            Principal::Admin { subject } | Principal::User { subject, .. } => subject,
        }
    }

    /// True for an admin.
    pub fn is_admin(&self) -> bool {
        matches!(self, Principal::Admin { .. })
    }
}

/// May this caller see the repository, its builds and logs?
pub fn can_read(principal: &Principal, repo: &Repo) -> bool {
    match principal {
        Principal::Admin { .. } => true,
        Principal::User { grants, .. } => !repo.private || grants.iter().any(|g| g.covers(repo)),
    }
}

/// May this caller trigger, cancel, approve, and manage the repository's secrets?
pub fn can_write(principal: &Principal, repo: &Repo) -> bool {
    match principal {
        Principal::Admin { .. } => true,
        Principal::User { grants, .. } => grants.iter().any(|g| g.write && g.covers(repo)),
    }
}

/// Parses a user token's scope: entries separated by spaces or commas.
pub fn parse_scope(scope: &str) -> Result<Vec<Grant>, String> {
    scope
        .split([' ', ','])
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (kind, pattern) = entry.split_once(':').ok_or_else(|| {
                format!(
                    "scope entry `{entry}` needs a kind: `repo:owner/name` or `read:owner/name`"
                )
            })?;
            let write = match kind {
                "repo" => true,
                "read" => false,
                other => {
                    return Err(format!(
                        "scope entry `{entry}`: unknown kind `{other}`; use `repo:` or `read:`"
                    ));
                }
            };
            match pattern.split_once('/') {
                Some((owner, name)) if !owner.is_empty() && !name.is_empty() => Ok(Grant {
                    pattern: pattern.to_string(),
                    write,
                }),
                _ => Err(format!(
                    "scope entry `{entry}`: name a repository as `owner/name` or `owner/*`"
                )),
            }
        })
        .collect()
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts)?;
        let stored = state
            .store
            .verify_token(token, now_ms())
            .await?
            .ok_or_else(|| {
                ApiError::unauthorized("the bearer token is unknown or revoked; create a new one")
            })?;
        match stored.role {
            TokenRole::Admin => Ok(Principal::Admin {
                subject: stored.subject,
            }),
            TokenRole::User => {
                let grants =
                    parse_scope(stored.scope.as_deref().unwrap_or("")).map_err(|reason| {
                        ApiError::forbidden(format!("the token's scope is unusable: {reason}"))
                    })?;
                Ok(Principal::User {
                    subject: stored.subject,
                    grants,
                })
            }
            TokenRole::Runner => Err(ApiError::forbidden(
                "runner tokens only open the runner protocol; use a user or admin token",
            )),
        }
    }
}

/// The token of `Authorization: Bearer <token>`.
pub(crate) fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("send `Authorization: Bearer <token>`"))?;
    let text = header.to_str().map_err(|_| {
        ApiError::unauthorized("the Authorization header is not ASCII; send `Bearer <token>`")
    })?;
    let (scheme, token) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::unauthorized(
            "the Authorization header must be `Bearer <token>`",
        ));
    }
    Ok(token.trim())
}

/// An admin, or 403.
pub fn require_admin(principal: &Principal) -> Result<(), ApiError> {
    if principal.is_admin() {
        Ok(())
    } else {
        Err(ApiError::forbidden("this needs an admin token"))
    }
}

/// Makes sure an admin token exists: the configured one (or `GANTRY_ADMIN_TOKEN`) is
/// adopted; with neither, one is generated on the first start. Returns the plaintext when
/// it was given or generated now (the caller prints a generated one once).
pub async fn bootstrap_admin(state: &AppState) -> anyhow::Result<Option<(String, bool)>> {
    let given = state
        .config
        .admin_token
        .clone()
        .or_else(|| std::env::var(ADMIN_TOKEN_ENV).ok())
        .filter(|t| !t.trim().is_empty());
    let admin = NewToken {
        name: "admin".into(),
        subject: "admin".into(),
        role: TokenRole::Admin,
        scope: None,
    };
    if let Some(token) = given {
        if token.trim().len() < 16 {
            anyhow::bail!(
                "the admin token must be at least 16 characters; make one with `head -c 32 /dev/urandom | base64`"
            );
        }
        match state
            .store
            .import_token(&admin, token.trim(), now_ms())
            .await
        {
            Ok(_) | Err(gantry_store::StoreError::Conflict { .. }) => {}
            Err(error) => return Err(error.into()),
        }
        return Ok(Some((token.trim().to_string(), false)));
    }
    let tokens = state.store.list_tokens().await?;
    if tokens
        .iter()
        .any(|t| t.role == TokenRole::Admin && t.revoked_at.is_none())
    {
        return Ok(None);
    }
    let (_, plaintext) = state.store.create_token(&admin, now_ms()).await?;
    Ok(Some((plaintext.expose().to_string(), true)))
}
