//! Form posts from the pages: signed in, from our own origin, carrying the session's CSRF
//! token (compared in constant time). Anything else is 403 before the handler runs.

use axum::extract::{Form, FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use super::session::{SignInFirst, WebUser};
use super::view::WebError;
use crate::state::AppState;

/// Largest form body the pages send (a secret value is the biggest field).
const FORM_LIMIT: usize = 256 * 1024;

/// The CSRF field of every form.
#[derive(Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

/// A form posted by a signed-in browser from our pages: `T` is the form's other fields.
#[derive(Debug)]
pub struct Posted<T> {
    /// Who posted it.
    pub user: WebUser,
    /// The fields.
    pub form: T,
}

/// Why a post was refused.
#[derive(Debug)]
pub enum PostRefused {
    /// No session: sign in.
    SignIn,
    /// Wrong origin or CSRF token, or an unreadable form.
    Error(WebError),
}

impl IntoResponse for PostRefused {
    fn into_response(self) -> Response {
        match self {
            PostRefused::SignIn => SignInFirst {
                next: String::new(),
            }
            .into_response(),
            PostRefused::Error(error) => error.into_response(),
        }
    }
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for Posted<T> {
    type Rejection = PostRefused;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, PostRefused> {
        let (parts, body) = request.into_parts();
        check_origin(&parts.headers, &state.config.public_url).map_err(PostRefused::Error)?;
        let user = WebUser::from_parts(&parts, state)
            .await
            .ok_or(PostRefused::SignIn)?;
        let bytes = axum::body::to_bytes(body, FORM_LIMIT).await.map_err(|_| {
            PostRefused::Error(WebError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the form is larger than {} KiB", FORM_LIMIT / 1024),
            ))
        })?;
        let rebuild = || Request::from_parts(parts.clone(), axum::body::Body::from(bytes.clone()));
        let Form(field) = Form::<CsrfField>::from_request(rebuild(), state)
            .await
            .map_err(|e| PostRefused::Error(WebError::bad_request(e.body_text())))?;
        if !tokens_match(&field.csrf, &user.csrf) {
            return Err(PostRefused::Error(WebError::new(
                StatusCode::FORBIDDEN,
                "the form's CSRF token is missing or stale; reload the page and try again",
            )));
        }
        let Form(form) = Form::<T>::from_request(rebuild(), state)
            .await
            .map_err(|e| PostRefused::Error(WebError::bad_request(e.body_text())))?;
        Ok(Posted { user, form })
    }
}

/// Constant-time comparison of a posted token with the session's.
pub fn tokens_match(posted: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(posted.as_bytes().ct_eq(expected.as_bytes()))
}

/// The post must come from our own pages: its `Origin` (or, without one, its `Referer`)
/// is this server, as the request's `Host` or the configured public URL names it.
pub fn check_origin(headers: &HeaderMap, public_url: &str) -> Result<(), WebError> {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let origin = match (text(header::ORIGIN), text(header::REFERER)) {
        (Some(origin), _) => origin.to_string(),
        (None, Some(referer)) => origin_of(referer).unwrap_or_default(),
        (None, None) => String::new(),
    };
    let host = text(header::HOST).unwrap_or_default();
    let ours = !origin.is_empty()
        && (origin_of(public_url).is_some_and(|public| public == origin)
            || origin.strip_prefix("http://") == Some(host)
            || origin.strip_prefix("https://") == Some(host));
    if ours {
        Ok(())
    } else {
        Err(WebError::new(
            StatusCode::FORBIDDEN,
            "this form was not sent from Gantry's own pages (Origin or Referer missing or foreign)",
        ))
    }
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    Some(format!("{scheme}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(name.clone(), value.parse().unwrap());
        }
        map
    }

    #[test]
    fn same_origin_posts_pass_and_others_fail() {
        let public = "https://ci.example.invalid";
        let host = (header::HOST, "127.0.0.1:8000");
        let own = headers(&[host.clone(), (header::ORIGIN, "http://127.0.0.1:8000")]);
        assert!(check_origin(&own, public).is_ok());
        let proxied = headers(&[host.clone(), (header::ORIGIN, public)]);
        assert!(check_origin(&proxied, public).is_ok());
        let referer = headers(&[host.clone(), (header::REFERER, "http://127.0.0.1:8000/a/b")]);
        assert!(check_origin(&referer, public).is_ok());
        let foreign = headers(&[host.clone(), (header::ORIGIN, "http://evil.invalid")]);
        assert!(check_origin(&foreign, public).is_err());
        assert!(check_origin(&headers(&[host]), public).is_err());
    }

    #[test]
    fn tokens_must_match_exactly() {
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abd", "abc"));
        assert!(!tokens_match("", ""));
    }
}
