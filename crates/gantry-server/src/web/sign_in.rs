//! `GET/POST /login` and `POST /logout`.

use askama::Template;
use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::csrf::{Posted, check_origin};
use super::session::{
    Sessions, WebUser, came_over_tls, local_path, principal_of_token, session_cookie,
};
use super::view::{Chrome, WebError, render};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    chrome: Chrome,
    error: &'a str,
    next: &'a str,
}

/// Fields of the sign-in form.
#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
    /// The page to go to after signing in.
    #[serde(default)]
    next: String,
}

/// `?next=` of the sign-in page.
#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// `GET /login`: the form (or the page asked for, when already signed in).
pub async fn form(
    user: Option<WebUser>,
    query: Result<Query<NextQuery>, QueryRejection>,
) -> Response {
    let next = query.ok().and_then(|Query(q)| q.next).unwrap_or_default();
    let next = local_path(&next);
    if user.is_some() {
        return Redirect::to(next).into_response();
    }
    login_page(StatusCode::OK, "", next)
}

fn login_page(status: StatusCode, error: &str, next: &str) -> Response {
    let page = LoginPage {
        chrome: Chrome::anonymous(),
        error,
        next,
    };
    (status, render(&page)).into_response()
}

/// `POST /login`: a valid user or admin token starts a session.
pub async fn sign_in(
    State(state): State<AppState>,
    Extension(sessions): Extension<Sessions>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    // No session yet, so no CSRF token: the origin check keeps other sites from signing
    // a browser in with their own token.
    if let Err(error) = check_origin(&headers, &state.config.public_url) {
        return error.into_response();
    }
    let token = form.token.trim();
    let next = local_path(&form.next);
    let principal = match principal_of_token(&state, token).await {
        Some(principal) if !token.is_empty() => principal,
        _ => {
            return login_page(
                StatusCode::UNAUTHORIZED,
                "That token is unknown, revoked, or a runner token. Paste a user or admin API token.",
                next,
            );
        }
    };
    let id = match sessions.start(token, principal.subject()) {
        Ok(id) => id,
        Err(error) => {
            return WebError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the system has no randomness for a session id: {error}"),
            )
            .into_response();
        }
    };
    let cookie = session_cookie(Some(&id), came_over_tls(&headers, &state.config.public_url));
    ([(header::SET_COOKIE, cookie)], Redirect::to(next)).into_response()
}

/// Fields of the sign-out form (only the CSRF token).
#[derive(Debug, Deserialize)]
pub struct NoFields {}

/// `POST /logout`: ends the session and clears the cookie.
pub async fn sign_out(
    State(state): State<AppState>,
    Extension(sessions): Extension<Sessions>,
    headers: HeaderMap,
    posted: Posted<NoFields>,
) -> Response {
    sessions.end(&posted.user.session_id);
    let cookie = session_cookie(None, came_over_tls(&headers, &state.config.public_url));
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}
