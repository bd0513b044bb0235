//! What every page shares: the header data, HTML rendering, error pages, and the small
//! formatting helpers (times, durations).

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use gantry_store::Millis;

use super::assets;
use super::session::WebUser;
use crate::error::ApiError;

/// The header of every page: who is signed in, the sign-out form's token, asset version.
#[derive(Debug, Clone)]
pub struct Chrome {
    /// Signed-in subject, empty on the sign-in page.
    pub subject: String,
    /// CSRF token for the page's forms.
    pub csrf: String,
    /// Appended to asset URLs so a new build of the server is fetched, not cached.
    pub asset_version: &'static str,
}

impl Chrome {
    /// The header for a signed-in user.
    pub fn of(user: &WebUser) -> Chrome {
        Chrome {
            subject: user.principal.subject().to_string(),
            csrf: user.csrf.clone(),
            asset_version: assets::version(),
        }
    }

    /// The header for a visitor who is not signed in.
    pub fn anonymous() -> Chrome {
        Chrome {
            subject: String::new(),
            csrf: String::new(),
            asset_version: assets::version(),
        }
    }
}

/// Renders a template as an HTML response (a 500 page if rendering fails).
pub fn render<T: Template>(template: &T) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(error = %error, "a page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page failed to render; see the server log",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    chrome: Chrome,
    title: &'a str,
    status: u16,
    message: &'a str,
}

/// An error shown as a page: its status and a message saying what to do.
#[derive(Debug, Clone)]
pub struct WebError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong and what to do.
    pub message: String,
}

impl WebError {
    /// Any status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        WebError {
            status,
            message: message.into(),
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<ApiError> for WebError {
    fn from(error: ApiError) -> Self {
        WebError::new(error.status, error.message)
    }
}

impl From<gantry_store::StoreError> for WebError {
    fn from(error: gantry_store::StoreError) -> Self {
        ApiError::from(error).into()
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            chrome: Chrome::anonymous(),
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            message: &self.message,
        };
        (self.status, render(&page)).into_response()
    }
}

/// Result of a page handler.
pub type WebResult<T> = Result<T, WebError>;

/// `2026-11-22 03:33 UTC` for unix milliseconds.
pub fn format_time(at: Millis) -> String {
    format!("{} UTC", gantry_store::utc_minutes(at))
}

/// `1m 05s` between two times; empty when it has not started, running time when unfinished.
pub fn format_duration(started: Option<Millis>, finished: Option<Millis>) -> String {
    let Some(started) = started else {
        return String::new();
    };
    let end = finished.unwrap_or_else(gantry_store::now_ms);
    let seconds = (end - started).max(0) / 1000;
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// The first line of a commit message, at most 100 characters.
pub fn headline(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default();
    let mut short: String = line.chars().take(100).collect();
    if line.chars().count() > 100 {
        short.push('…');
    }
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations_read_well() {
        assert_eq!(format_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_time(1_795_145_580_000), "2026-11-20 03:33 UTC");
        assert_eq!(format_duration(Some(0), Some(65_000)), "1m 05s");
        assert_eq!(format_duration(Some(0), Some(7_300_000)), "2h 01m");
        assert_eq!(format_duration(None, None), "");
    }
}
