//! `/api/repos`: add, list, read, change and remove repositories.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use gantry_store::{ForgeKind, NewRepo, Repo, RepoSettings};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Principal, can_read, can_write, require_admin};
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::live::lookup::readable_repo;
use crate::state::AppState;

/// `owner/name` in a route.
#[derive(Debug, Deserialize)]
pub struct RepoPath {
    /// Owner.
    pub owner: String,
    /// Name.
    pub name: String,
}

/// Body of `POST /api/repos`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRepo {
    owner: String,
    name: String,
    forge: ForgeKind,
    clone_url: String,
    /// Generated when absent.
    webhook_secret: Option<String>,
    config_path: Option<String>,
    timeout_minutes: Option<i64>,
    #[serde(default)]
    private: bool,
    #[serde(default)]
    trusted: bool,
}

/// Body of `PATCH /api/repos/{owner}/{name}`: only the fields given change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRepo {
    clone_url: Option<String>,
    config_path: Option<String>,
    timeout_minutes: Option<i64>,
    private: Option<bool>,
    trusted: Option<bool>,
}

/// `POST /api/repos` (admin): returns the repository, its hook URLs and its secret.
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<CreateRepo>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    require_admin(&principal)?;
    check_clone_url(&principal, &body.clone_url)?;
    let secret = match body.webhook_secret {
        Some(secret) if secret.len() < 16 => {
            return Err(ApiError::invalid(
                "webhook_secret must be at least 16 characters; leave it out to have one generated",
            ));
        }
        Some(secret) => secret,
        None => random_secret()?,
    };
    let mut new = NewRepo::new(
        &body.owner,
        &body.name,
        body.forge,
        &body.clone_url,
        &secret,
    );
    new.settings = RepoSettings {
        config_path: body.config_path.unwrap_or(new.settings.config_path),
        trusted: body.trusted,
        timeout_minutes: body.timeout_minutes.unwrap_or(new.settings.timeout_minutes),
        private: body.private,
    };
    let repo = state.store.create_repo(&new).await?;
    let hook_url = hook_url(&state, &repo);
    Ok((
        StatusCode::CREATED,
        Json(json!({"repo": repo, "hook_url": hook_url, "webhook_secret": secret})),
    ))
}

/// `GET /api/repos`: the repositories the caller may read.
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Json<Vec<Repo>>> {
    let repos = state.store.list_repos().await?;
    Ok(Json(
        repos
            .into_iter()
            .filter(|r| can_read(&principal, r))
            .collect(),
    ))
}

/// `GET /api/repos/{owner}/{name}`.
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<RepoPath>,
) -> ApiResult<Json<Repo>> {
    Ok(Json(
        readable_repo(&state, &principal, &path.owner, &path.name).await?,
    ))
}

/// `PATCH /api/repos/{owner}/{name}`: writers change settings and the clone URL; only an
/// admin sets `trusted` or a local clone URL.
pub async fn update(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<RepoPath>,
    ApiJson(body): ApiJson<UpdateRepo>,
) -> ApiResult<Json<Repo>> {
    let repo = writable_repo(&state, &principal, &path).await?;
    if body.trusted.is_some_and(|t| t != repo.trusted) {
        require_admin(&principal)?;
    }
    // Every check before the first write: a refused request changes nothing.
    if let Some(url) = &body.clone_url {
        if url.trim().is_empty() {
            return Err(ApiError::invalid(
                "clone_url is empty; give the URL the server can clone from",
            ));
        }
        check_clone_url(&principal, url)?;
    }
    let settings = RepoSettings {
        config_path: body.config_path.unwrap_or(repo.config_path),
        timeout_minutes: body.timeout_minutes.unwrap_or(repo.timeout_minutes),
        private: body.private.unwrap_or(repo.private),
        trusted: body.trusted.unwrap_or(repo.trusted),
    };
    let mut updated = state.store.update_repo(repo.id, &settings).await?;
    if let Some(url) = body.clone_url.filter(|url| *url != repo.clone_url) {
        updated = state.store.set_clone_url(repo.id, &url).await?;
    }
    Ok(Json(updated))
}

/// `POST /api/repos/{owner}/{name}/webhook-secret` (writers): replaces the webhook secret
/// with a new random one, returned only here; hooks signed with the old one get 401.
pub async fn rotate_webhook_secret(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<RepoPath>,
) -> ApiResult<Json<Value>> {
    let repo = writable_repo(&state, &principal, &path).await?;
    let secret = random_secret()?;
    let repo = state.store.set_webhook_secret(repo.id, &secret).await?;
    tracing::info!(repo = %repo.full_name(), by = %principal.subject(), "webhook secret rotated");
    let hook_url = hook_url(&state, &repo);
    Ok(Json(
        json!({"repo": repo, "hook_url": hook_url, "webhook_secret": secret}),
    ))
}

/// `DELETE /api/repos/{owner}/{name}` (admin): the repository and all its builds.
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<RepoPath>,
) -> ApiResult<StatusCode> {
    let repo = readable_repo(&state, &principal, &path.owner, &path.name).await?;
    require_admin(&principal)?;
    state.store.delete_repo(repo.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The repository if the caller may write to it: 404 if it may not even read it, else 403.
pub async fn writable_repo(
    state: &AppState,
    principal: &Principal,
    path: &RepoPath,
) -> ApiResult<Repo> {
    let repo = readable_repo(state, principal, &path.owner, &path.name).await?;
    if can_write(principal, &repo) {
        Ok(repo)
    } else {
        Err(ApiError::forbidden(format!(
            "the token may read `{}` but not change it; use a token with scope `repo:{}`",
            repo.full_name(),
            repo.full_name()
        )))
    }
}

/// Where the repository's forge sends its hooks.
fn hook_url(state: &AppState, repo: &Repo) -> String {
    format!(
        "{}/hooks/{}",
        state.config.public_url.trim_end_matches('/'),
        repo.forge.as_str()
    )
}

/// A clone URL that makes the server read its own disk (`file://` or a bare path) could
/// expose other repositories or files on the host: only an admin may set one.
fn check_clone_url(principal: &Principal, url: &str) -> ApiResult<()> {
    if principal.is_admin() || !is_local_clone_url(url) {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "clone URL `{}` reads the server's own disk: only an admin token may set a file:// \
         URL or a local path; use the forge's https:// or git:// clone URL",
        url.trim()
    )))
}

/// True for `file:` URLs and local paths: git reads those from the server's filesystem.
/// Anything without `://` is a path to git unless it is `host:path` (scp-like SSH).
pub fn is_local_clone_url(url: &str) -> bool {
    let url = url.trim();
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("file:") {
        return true;
    }
    if url.contains("://") {
        return false;
    }
    match url.split_once(':') {
        Some((host, _)) => host.is_empty() || host.contains('/'),
        None => true,
    }
}

/// 32 random bytes in hex.
fn random_secret() -> ApiResult<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| ApiError::internal(format!("the system has no randomness: {e}")))?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::is_local_clone_url;

    #[test]
    fn local_clone_urls_are_recognised() {
        for url in [
            "file:///srv/git/app.git",
            "FILE:///srv/git/app.git",
            "file:/srv/app",
            "/srv/git/app.git",
            "./app",
            "../other/.git",
            "app.git",
            " /srv/app ",
            "/srv/odd:name",
        ] {
            assert!(is_local_clone_url(url), "{url}");
        }
        for url in [
            "https://github.com/acme/app.git",
            "git://git.example.com/app.git",
            "ssh://git@example.com/app.git",
            "git@github.com:acme/app.git",
        ] {
            assert!(!is_local_clone_url(url), "{url}");
        }
    }
}
