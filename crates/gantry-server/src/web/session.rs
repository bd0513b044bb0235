//! Browser sessions: signing in with an API token gives a random session id in a cookie;
//! the session then acts with that token's identity and scopes.
//!
//! Sessions live in this process's memory (a restart signs everyone out). The token is
//! kept with the session and verified again on every request, so revoking it ends the
//! session at once. Each subject holds at most `MAX_SESSIONS_PER_SUBJECT` sessions: one
//! that signs in again and again pushes out only its own oldest sessions, never others'.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::auth::Principal;
use crate::state::AppState;

/// Name of the session cookie over plain HTTP.
pub const SESSION_COOKIE: &str = "gantry_session";
/// Name of the session cookie over TLS: the `__Host-` prefix makes the browser accept it
/// only when `Secure`, for this host alone and path `/`, so no other site or plain-HTTP
/// answer can plant a session of its own.
pub const TLS_SESSION_COOKIE: &str = "__Host-gantry_session";
/// A session unused this long ends.
const IDLE_LIMIT: Duration = Duration::from_secs(12 * 3600);
/// A session ends this long after sign-in, used or not.
const ABSOLUTE_LIMIT: Duration = Duration::from_secs(7 * 24 * 3600);
/// Sessions one subject (the identity of the token signed in with) keeps at most; past
/// this its least recently used session ends.
const MAX_SESSIONS_PER_SUBJECT: usize = 20;
/// Sessions kept at most over all subjects; past this the least recently used goes. Only
/// many subjects together reach it, since each holds `MAX_SESSIONS_PER_SUBJECT` at most.
const MAX_SESSIONS: usize = 50_000;

/// One signed-in browser.
struct Session {
    token: String,
    subject: String,
    csrf: String,
    created: Instant,
    last_seen: Instant,
}

/// The sessions of this server process. Cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Mutex<HashMap<String, Session>>>,
    per_subject: usize,
    total: usize,
}

impl Default for Sessions {
    fn default() -> Self {
        Self::with_limits(MAX_SESSIONS_PER_SUBJECT, MAX_SESSIONS)
    }
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("count", &self.map().len())
            .finish()
    }
}

impl Sessions {
    fn map(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        // Only inserts and removals happen under the lock: a panic cannot corrupt the map.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sessions with these limits: per subject, and over all subjects.
    fn with_limits(per_subject: usize, total: usize) -> Self {
        Self {
            inner: Arc::default(),
            per_subject: per_subject.max(1),
            total: total.max(1),
        }
    }

    /// Starts a session for a verified token of `subject`; returns its id.
    pub fn start(&self, token: &str, subject: &str) -> Result<String, getrandom::Error> {
        let id = random_hex()?;
        let csrf = random_hex()?;
        let now = Instant::now();
        let mut map = self.map();
        map.retain(|_, s| alive(s, now));
        let own = map.values().filter(|s| s.subject == subject).count();
        if own >= self.per_subject {
            evict_least_recent(&mut map, |s| s.subject == subject);
        }
        if map.len() >= self.total {
            evict_least_recent(&mut map, |_| true);
        }
        map.insert(
            id.clone(),
            Session {
                token: token.to_string(),
                subject: subject.to_string(),
                csrf,
                created: now,
                last_seen: now,
            },
        );
        Ok(id)
    }

    /// The token and CSRF token of a live session, marking it used.
    fn touch(&self, id: &str) -> Option<(String, String)> {
        let now = Instant::now();
        let mut map = self.map();
        let session = map.get_mut(id)?;
        if !alive(session, now) {
            map.remove(id);
            return None;
        }
        session.last_seen = now;
        Some((session.token.clone(), session.csrf.clone()))
    }

    /// The token of a live session, without marking it used (what an open websocket
    /// checks: a page left open does not keep its session alive).
    pub fn token_of(&self, id: &str) -> Option<String> {
        let now = Instant::now();
        let map = self.map();
        map.get(id)
            .filter(|session| alive(session, now))
            .map(|session| session.token.clone())
    }

    /// Ends a session.
    pub fn end(&self, id: &str) {
        self.map().remove(id);
    }
}

/// Removes the least recently used session among those `pick` selects.
fn evict_least_recent(map: &mut HashMap<String, Session>, pick: impl Fn(&Session) -> bool) {
    let oldest = map
        .iter()
        .filter(|(_, s)| pick(s))
        .min_by_key(|(_, s)| s.last_seen)
        .map(|(id, _)| id.clone());
    if let Some(oldest) = oldest {
        map.remove(&oldest);
    }
}

fn alive(session: &Session, now: Instant) -> bool {
    now.duration_since(session.last_seen) < IDLE_LIMIT
        && now.duration_since(session.created) < ABSOLUTE_LIMIT
}

/// 32 random bytes in hex.
pub fn random_hex() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// The value of cookie `name` in the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// True when the browser reaches us over TLS: the configured public URL is `https://`
/// (a TLS proxy in front), or a proxy says so for this request.
pub fn came_over_tls(headers: &HeaderMap, public_url: &str) -> bool {
    let header_says = |name: &str, needle: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains(needle))
    };
    let public_https = public_url
        .get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"));
    public_https
        || header_says("x-forwarded-proto", "https")
        || header_says("forwarded", "proto=https")
}

/// The session cookie's name: `__Host-` prefixed over TLS.
pub fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        TLS_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

/// The `Set-Cookie` value that stores (or, with `None`, clears) the session id.
pub fn session_cookie(id: Option<&str>, secure: bool) -> HeaderValue {
    let name = session_cookie_name(secure);
    let secure = if secure { "; Secure" } else { "" };
    let text = match id {
        Some(id) => format!("{name}={id}; Path=/; HttpOnly; SameSite=Lax{secure}"),
        None => format!("{name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"),
    };
    // Only hex digits and fixed text: always a valid header value.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A signed-in browser: who it acts as and its CSRF token.
#[derive(Debug, Clone)]
pub struct WebUser {
    /// The identity and scopes of the token it signed in with.
    pub principal: Principal,
    /// The token every form of this session carries.
    pub csrf: String,
    /// The session id (to end it at sign-out).
    pub session_id: String,
}

impl WebUser {
    /// The session of the request, if any, still valid.
    pub async fn from_parts(parts: &Parts, state: &AppState) -> Option<WebUser> {
        let sessions = parts.extensions.get::<Sessions>()?;
        // Over TLS only the `__Host-` cookie counts: a plain one may have been planted.
        let secure = came_over_tls(&parts.headers, &state.config.public_url);
        let id = cookie(&parts.headers, session_cookie_name(secure))?;
        let (token, csrf) = sessions.touch(id)?;
        match principal_of_token(state, &token).await {
            Some(principal) => Some(WebUser {
                principal,
                csrf,
                session_id: id.to_string(),
            }),
            None => {
                // Revoked since sign-in: the session ends with it.
                sessions.end(id);
                None
            }
        }
    }
}

/// The principal a token stands for, checked exactly as the API checks bearer tokens.
pub async fn principal_of_token(state: &AppState, token: &str) -> Option<Principal> {
    let request = axum::http::Request::builder()
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(())
        .ok()?;
    let (mut parts, ()) = request.into_parts();
    Principal::from_request_parts(&mut parts, state).await.ok()
}

/// No valid session: pages send the browser to the sign-in form, which brings it back to
/// the page it asked for (`next`).
#[derive(Debug)]
pub struct SignInFirst {
    /// The page asked for (path and query), or empty for the home page.
    pub next: String,
}

impl IntoResponse for SignInFirst {
    fn into_response(self) -> Response {
        if self.next.is_empty() || self.next == "/" {
            return Redirect::to("/login").into_response();
        }
        let next: String = self
            .next
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        Redirect::to(&format!("/login?next={next}")).into_response()
    }
}

/// `next` if it is a path on this server (`/x`, never `//host` or an absolute URL), else `/`.
pub fn local_path(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control());
    if local { next } else { "/" }
}

impl FromRequestParts<AppState> for WebUser {
    type Rejection = SignInFirst;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, SignInFirst> {
        let next = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default();
        WebUser::from_parts(parts, state)
            .await
            .ok_or(SignInFirst { next })
    }
}

impl OptionalFromRequestParts<AppState> for WebUser {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(WebUser::from_parts(parts, state).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; gantry_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[test]
    fn sessions_start_touch_and_end() {
        let sessions = Sessions::default();
        let id = sessions.start("token", "ada").unwrap();
        assert_eq!(sessions.touch(&id).unwrap().0, "token");
        assert_eq!(sessions.token_of(&id).unwrap(), "token");
        sessions.end(&id);
        assert!(sessions.touch(&id).is_none());
    }

    #[test]
    fn a_full_server_evicts_the_least_recently_used_session_of_anyone() {
        let sessions = Sessions::with_limits(2, 3);
        let ada = sessions.start("a", "ada").unwrap();
        let bob = sessions.start("b", "bob").unwrap();
        let cy = sessions.start("c", "cy").unwrap();
        sessions.touch(&ada);
        let dee = sessions.start("d", "dee").unwrap();
        assert!(
            sessions.token_of(&bob).is_none(),
            "bob's was the least recent"
        );
        for id in [&ada, &cy, &dee] {
            assert!(sessions.token_of(id).is_some());
        }
    }

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(
            local_path("/acme/app/builds/3?step=test"),
            "/acme/app/builds/3?step=test"
        );
        for foreign in [
            "//evil.invalid/x",
            "https://evil.invalid",
            "/\\evil.invalid",
            "",
            "x",
        ] {
            assert_eq!(local_path(foreign), "/", "{foreign}");
        }
    }

    #[test]
    fn the_cookie_is_secure_only_over_tls() {
        let plain = session_cookie(Some("ab"), false);
        assert_eq!(plain, "gantry_session=ab; Path=/; HttpOnly; SameSite=Lax");
        let tls = session_cookie(Some("ab"), true);
        assert_eq!(
            tls,
            "__Host-gantry_session=ab; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
        let mut headers = HeaderMap::new();
        assert!(!came_over_tls(&headers, "http://ci.example.com"));
        assert!(came_over_tls(&headers, "HTTPS://ci.example.com"));
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        assert!(came_over_tls(&headers, "http://ci.example.com"));
    }
}
