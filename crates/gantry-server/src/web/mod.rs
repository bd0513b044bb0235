//! The web UI: server-rendered pages (askama templates compiled in), our own CSS and
//! JavaScript embedded in the binary, browser sessions and the status badge.
//!
//! Pages act through the same functions as the API, with the session's principal, so a
//! page allows exactly what the API allows the signed-in token (private repositories
//! answer 404 to outsiders, rule 12). Every form post is CSRF-checked (`csrf.rs`).

mod ansi;
mod assets;
mod badge;
mod build_actions;
mod build_page;
mod csrf;
mod first_error;
mod graph;
mod live;
mod log_view;
mod pages;
mod session;
mod settings;
mod sign_in;
mod view;

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;

pub(crate) use session::principal_of_token;
pub use session::{SESSION_COOKIE, Sessions, TLS_SESSION_COOKIE};

use crate::error::ApiResult;
use crate::state::AppState;
use view::{WebError, WebResult};

/// The policy of every page: scripts and styles only from our own `/assets`.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     base-uri 'none'; frame-ancestors 'none'";

/// The UI routes, merged into the server's router.
pub fn routes() -> Router<AppState> {
    let repo = "/{owner}/{name}";
    let build = "/{owner}/{name}/builds/{number}";
    let step = "/{owner}/{name}/builds/{number}/steps/{step}";
    Router::new()
        .route("/login", get(sign_in::form).post(sign_in::sign_in))
        .route("/logout", post(sign_in::sign_out))
        .route("/assets/{file}", get(assets::serve))
        .route("/api/badges/{owner}/{file}", get(badge::badge))
        .route("/ui/events", get(live::events))
        .route("/", get(pages::repos))
        .route(repo, get(pages::repo))
        .route(&format!("{repo}/run"), post(pages::run))
        .route(
            &format!("{repo}/settings"),
            get(settings::show).post(settings::update),
        )
        .route(&format!("{repo}/secrets"), post(settings::add_secret))
        .route(
            &format!("{repo}/secrets/{{secret}}/delete"),
            post(settings::delete_secret),
        )
        .route(build, get(build_page::show))
        .route(&format!("{build}/row"), get(pages::build_row))
        .route(&format!("{build}/cancel"), post(build_actions::cancel))
        .route(&format!("{build}/restart"), post(build_actions::restart))
        .route(&format!("{build}/promote"), post(build_actions::promote))
        .route(&format!("{step}/approve"), post(build_actions::approve))
        .route(&format!("{step}/reject"), post(build_actions::reject))
        .route(&format!("{step}/log"), get(log_view::raw))
        .route(&format!("{step}/lines"), get(log_view::lines))
        .route(&format!("{step}/stream"), get(live::step_stream))
        .layer(axum::middleware::from_fn(security_headers))
        .layer(Extension(Sessions::default()))
        .layer(Extension(first_error::FirstErrors::default()))
}

/// Headers every UI answer carries: the CSP, no sniffing, no framing, no referrer leaks;
/// and, but for the assets, `no-store` unless the handler chose its own caching (the
/// badge): pages show webhook secrets and CSRF tokens that no cache may keep.
async fn security_headers(request: Request, next: Next) -> Response {
    let is_asset = request.uri().path().starts_with("/assets/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if !is_asset && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// `/{owner}/{name}` in a page route.
#[derive(Debug, Clone, Deserialize)]
pub struct RepoPath {
    /// Owner.
    pub owner: String,
    /// Name.
    pub name: String,
}

impl RepoPath {
    /// The same path as the API handlers take it.
    fn api(&self) -> crate::api::repos::RepoPath {
        crate::api::repos::RepoPath {
            owner: self.owner.clone(),
            name: self.name.clone(),
        }
    }
}

/// `/{owner}/{name}/builds/{number}` in a page route.
#[derive(Debug, Clone, Deserialize)]
pub struct BuildPath {
    /// Owner.
    pub owner: String,
    /// Name.
    pub name: String,
    /// Build number, as written in the URL.
    pub number: String,
}

impl BuildPath {
    /// The build page's URL.
    fn url(&self) -> String {
        format!("/{}/{}/builds/{}", self.owner, self.name, self.number)
    }
}

/// A value the API handlers take (their path and body types), built from JSON.
fn from_json<T: DeserializeOwned>(value: serde_json::Value) -> WebResult<T> {
    serde_json::from_value(value).map_err(|e| WebError::bad_request(e.to_string()))
}

/// An API handler's answer as a page result.
fn call_api<T>(result: ApiResult<T>) -> WebResult<T> {
    result.map_err(WebError::from)
}
