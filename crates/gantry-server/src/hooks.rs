//! `POST /hooks/{forge}`: verified webhooks become builds.
//!
//! Order matters (rule 1): the body is capped, the repository looked up, and the
//! signature checked in constant time before anything is written. Only then are the
//! delivery and its build (`pending`, not prepared yet) recorded in one transaction (a
//! replay stops there), and the build handed to a background task that reads its pipeline.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use gantry_forge::{Forge, HOOK_BODY_LIMIT, HookKind, ParsedHook};
use gantry_store::Repo;
use serde_json::{Value, json};

use crate::builds::{accept_hook, spawn_preparation, trigger_of_hook};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Handles one webhook delivery.
pub async fn receive(
    State(state): State<AppState>,
    Path(forge): Path<String>,
    request: Request,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let outcome = receive_checked(&state, &forge, request).await;
    let label = match &outcome {
        Ok((_, body)) => body["status"].as_str().unwrap_or("accepted").to_string(),
        Err(_) => "rejected".to_string(),
    };
    state.metrics.hook(&label);
    outcome
}

async fn receive_checked(
    state: &AppState,
    forge: &str,
    request: Request,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let forge: Forge = forge
        .parse()
        .map_err(|e: gantry_forge::UnknownForge| ApiError::not_found(e.to_string()))?;
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, HOOK_BODY_LIMIT)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the hook body is larger than {} MiB", HOOK_BODY_LIMIT >> 20),
            )
        })?;
    let full_name =
        gantry_forge::hook_repo(forge, &body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let repo = hook_target(state, &full_name).await?;
    if repo.forge.as_str() != forge.as_str() {
        return Err(ApiError::not_found(format!(
            "repository `{full_name}` takes its hooks at /hooks/{}",
            repo.forge.as_str()
        )));
    }
    if let Err(error) =
        gantry_forge::verify(forge, &parts.headers, &body, repo.webhook_secret.as_bytes())
    {
        tracing::warn!(repo = %full_name, forge = forge.as_str(), error = %error, "webhook rejected");
        return Err(ApiError::unauthorized(error.to_string()));
    }
    let event = match gantry_forge::parse_hook(forge, &parts.headers, &body) {
        Ok(ParsedHook::Event(event)) => event,
        Ok(ParsedHook::Ignored {
            delivery_id,
            reason,
        }) => {
            tracing::info!(repo = %full_name, delivery = %delivery_id, reason = %reason, "webhook ignored");
            return Ok((
                StatusCode::OK,
                Json(json!({"status": "ignored", "reason": reason})),
            ));
        }
        Err(error) => return Err(ApiError::invalid(error.to_string())),
    };
    if event.kind == HookKind::Ping {
        return Ok((StatusCode::OK, Json(json!({"status": "pong"}))));
    }
    let Some(trigger) = trigger_of_hook(&event) else {
        return Ok((
            StatusCode::OK,
            Json(json!({"status": "ignored", "reason": "nothing to build"})),
        ));
    };
    let Some(build) = accept_hook(state, &repo, &event.delivery_id, &trigger).await? else {
        tracing::info!(repo = %full_name, delivery = %event.delivery_id, "webhook replayed; no new build");
        return Ok((
            StatusCode::OK,
            Json(json!({"status": "replayed", "delivery": event.delivery_id})),
        ));
    };
    let number = build.number;
    spawn_preparation(state.clone(), repo, build, trigger);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"status": "accepted", "delivery": event.delivery_id, "build": number})),
    ))
}

/// The repository a hook names, or 404 (the same answer whether it is unknown or private).
async fn hook_target(state: &AppState, full_name: &str) -> ApiResult<Repo> {
    let missing = || {
        ApiError::not_found(format!(
            "no repository `{}` is set up on this server; add it with POST /api/repos",
            full_name.chars().take(200).collect::<String>()
        ))
    };
    let (owner, name) = full_name.split_once('/').ok_or_else(missing)?;
    state
        .store
        .repo_by_name(owner, name)
        .await?
        .ok_or_else(missing)
}
