//! `/{owner}/{name}/settings`: the webhook URL and secret to copy into the forge, the
//! repository's secrets (names only: values are write-only), its timeout, and (for an
//! admin) its trusted flag. Only users who may change the repository see this page.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::csrf::Posted;
use super::session::WebUser;
use super::sign_in::NoFields;
use super::view::{Chrome, WebError, WebResult, format_time, render};
use super::{RepoPath, call_api, from_json};
use crate::api::{repos as repos_api, secrets as secrets_api};
use crate::error::ApiJson;
use crate::state::AppState;

/// A secret's row: never its value.
struct SecretRow {
    name: String,
    updated: String,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    chrome: Chrome,
    repo: String,
    hook_url: String,
    hook_secret: String,
    timeout: i64,
    trusted: bool,
    admin: bool,
    secrets: Vec<SecretRow>,
}

/// `GET /{owner}/{name}/settings`.
pub async fn show(
    State(state): State<AppState>,
    user: WebUser,
    Path(path): Path<RepoPath>,
) -> WebResult<Response> {
    let repo = call_api(repos_api::writable_repo(&state, &user.principal, &path.api()).await)?;
    let secrets = state.store.list_secrets(repo.id).await?;
    let page = SettingsPage {
        chrome: Chrome::of(&user),
        repo: repo.full_name(),
        hook_url: format!(
            "{}/hooks/{}",
            state.config.public_url.trim_end_matches('/'),
            repo.forge.as_str()
        ),
        hook_secret: repo.webhook_secret.clone(),
        timeout: repo.timeout_minutes,
        trusted: repo.trusted,
        admin: user.principal.is_admin(),
        secrets: secrets
            .into_iter()
            .map(|s| SecretRow {
                name: s.name,
                updated: format_time(s.updated_at),
            })
            .collect(),
    };
    Ok(render(&page))
}

/// Fields of the settings form.
#[derive(Debug, Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    timeout: String,
    /// A checkbox: present when ticked.
    trusted: Option<String>,
    /// Present when the form showed the trusted checkbox (admins only).
    trusted_shown: Option<String>,
}

/// `POST /{owner}/{name}/settings`.
pub async fn update(
    State(state): State<AppState>,
    Path(path): Path<RepoPath>,
    posted: Posted<SettingsForm>,
) -> WebResult<Response> {
    let form = posted.form;
    let timeout: i64 = form.timeout.trim().parse().map_err(|_| {
        WebError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "timeout `{}` is not a whole number of minutes",
                form.timeout.chars().take(40).collect::<String>()
            ),
        )
    })?;
    let mut changes = Map::new();
    changes.insert("timeout_minutes".into(), json!(timeout));
    if form.trusted_shown.is_some() {
        changes.insert("trusted".into(), json!(form.trusted.is_some()));
    }
    let body = from_json(Value::Object(changes))?;
    let _repo = call_api(
        repos_api::update(
            State(state),
            posted.user.principal,
            Path(path.api()),
            ApiJson(body),
        )
        .await,
    )?;
    Ok(to_settings(&path))
}

fn to_settings(path: &RepoPath) -> Response {
    Redirect::to(&format!("/{}/{}/settings", path.owner, path.name)).into_response()
}

/// Fields of the add-secret form.
#[derive(Deserialize)]
pub struct SecretForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    value: String,
}

impl std::fmt::Debug for SecretForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretForm")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// `POST /{owner}/{name}/secrets`: adds or replaces a secret.
pub async fn add_secret(
    State(state): State<AppState>,
    Path(path): Path<RepoPath>,
    posted: Posted<SecretForm>,
) -> WebResult<Response> {
    let name = posted.form.name.trim();
    let secret_path = from_json(json!({"owner": path.owner, "name": path.name, "secret": name}))?;
    let body = from_json(json!({ "value": posted.form.value }))?;
    call_api(
        secrets_api::set(
            State(state),
            posted.user.principal,
            Path(secret_path),
            ApiJson(body),
        )
        .await,
    )?;
    Ok(to_settings(&path))
}

/// `.../secrets/{secret}/delete` in a route.
#[derive(Debug, Deserialize)]
pub struct SecretPath {
    owner: String,
    name: String,
    secret: String,
}

/// `POST /{owner}/{name}/secrets/{secret}/delete`.
pub async fn delete_secret(
    State(state): State<AppState>,
    Path(path): Path<SecretPath>,
    posted: Posted<NoFields>,
) -> WebResult<Response> {
    let repo = RepoPath {
        owner: path.owner.clone(),
        name: path.name.clone(),
    };
    let secret_path = from_json(json!({
        "owner": path.owner, "name": path.name, "secret": path.secret,
    }))?;
    call_api(secrets_api::delete(State(state), posted.user.principal, Path(secret_path)).await)?;
    Ok(to_settings(&repo))
}
