//! `GET /api/events`: a websocket of build and step status changes, limited to the
//! repositories the caller may read.
//!
//! The caller's credential is checked again while the socket is open: every
//! `credential_recheck()`, and whenever an event comes from a repository whose read
//! permission is not known yet. Once the token is revoked (or the page's session signed
//! out or expired) the socket closes; each re-check also forgets the permissions seen so
//! far, so a narrowed scope applies within one period.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::response::Response;
use tokio::sync::broadcast::error::RecvError;

use crate::auth::{Principal, can_read};
use crate::error::{ApiError, ApiResult};
use crate::live::LiveEvent;
use crate::state::AppState;

/// How often an open socket checks that its credential is still valid, in
/// milliseconds (30 s unless `set_credential_recheck` changed it).
static CREDENTIAL_RECHECK_MS: AtomicU64 = AtomicU64::new(30_000);

/// How often open event and log sockets re-check their credential.
pub fn credential_recheck() -> Duration {
    Duration::from_millis(CREDENTIAL_RECHECK_MS.load(Ordering::Relaxed).max(1))
}

/// Changes the re-check period of sockets opened from now on (tests shorten it).
pub fn set_credential_recheck(every: Duration) {
    let millis = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
    CREDENTIAL_RECHECK_MS.store(millis, Ordering::Relaxed);
}

/// An interval ticking every `credential_recheck()`, first one period from now.
pub fn recheck_interval() -> tokio::time::Interval {
    let every = credential_recheck();
    tokio::time::interval_at(tokio::time::Instant::now() + every, every)
}

/// Finds the caller's principal again: `None` once its token is revoked or its session
/// has ended.
pub type Recheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Option<Principal>> + Send>> + Send + Sync>;

/// Opens the event websocket for a caller with a bearer token.
pub async fn follow_events(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let recheck = token_recheck(&state, &headers);
    open_events(state, principal, recheck, upgrade)
}

/// Finds the bearer token's principal again (the `Principal` extractor accepted the
/// `Authorization` header of `headers`, so the token is there).
pub fn token_recheck(state: &AppState, headers: &HeaderMap) -> Recheck {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .map(|(_, token)| token.trim().to_string())
        .unwrap_or_default();
    let state = state.clone();
    Arc::new(move || {
        let (state, token) = (state.clone(), token.clone());
        Box::pin(async move { crate::web::principal_of_token(&state, &token).await })
    })
}

/// Opens the event websocket for `principal`, whose credential `recheck` finds again.
pub fn open_events(
    state: AppState,
    principal: Principal,
    recheck: Recheck,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let upgrade = upgrade.map_err(|_| {
        ApiError::bad_request("open this route as a websocket (`Upgrade: websocket`)")
    })?;
    let follower = Follower {
        state,
        principal,
        recheck,
        readable: HashMap::new(),
    };
    Ok(upgrade.on_upgrade(move |socket| send_events(follower, socket)))
}

/// One open event socket: who it acts for and what it may read.
struct Follower {
    state: AppState,
    principal: Principal,
    recheck: Recheck,
    /// Whether the caller may read each repository seen since the last re-check.
    readable: HashMap<i64, bool>,
}

/// Whether an event goes out.
enum Verdict {
    Send,
    Hide,
    /// The credential is gone: the socket closes.
    SignedOut,
}

/// Forwards every event the caller may see until it leaves, its credential goes, or the
/// server stops.
async fn send_events(mut follower: Follower, mut socket: WebSocket) {
    let state = follower.state.clone();
    let mut events = state.live.subscribe_events();
    let mut recheck = recheck_interval();
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => match follower.verdict(&event).await {
                    Verdict::Send => {
                        let frame = serde_json::to_string(&event).unwrap_or_default();
                        if socket.send(Message::Text(frame.into())).await.is_err() {
                            return;
                        }
                    }
                    Verdict::Hide => {}
                    Verdict::SignedOut => return close_signed_out(socket).await,
                },
                // A follower this slow missed events: say so rather than pretend.
                Err(RecvError::Lagged(missed)) => {
                    let frame = format!("{{\"lagged\":{missed}}}");
                    if socket.send(Message::Text(frame.into())).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Closed) => return,
            },
            _ = recheck.tick() => {
                if !follower.refresh().await {
                    return close_signed_out(socket).await;
                }
            }
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
            () = state.shutdown.cancelled() => {
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
        }
    }
}

/// Closes the socket saying why (code 1008, policy violation).
pub async fn close_signed_out(mut socket: WebSocket) {
    let frame = CloseFrame {
        code: close_code::POLICY,
        reason: "signed out or token revoked; sign in again".into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

impl Follower {
    /// Finds the principal again and forgets the permissions seen; false when it is gone.
    async fn refresh(&mut self) -> bool {
        self.readable.clear();
        match (self.recheck)().await {
            Some(principal) => {
                self.principal = principal;
                true
            }
            None => false,
        }
    }

    async fn verdict(&mut self, event: &LiveEvent) -> Verdict {
        if let Some(known) = self.readable.get(&event.repo_id) {
            return if *known { Verdict::Send } else { Verdict::Hide };
        }
        // A repository not seen yet: decide with a principal checked just now (the
        // permissions already known stay until the next periodic re-check).
        match (self.recheck)().await {
            Some(principal) => self.principal = principal,
            None => return Verdict::SignedOut,
        }
        let allowed = match self.state.store.repo_by_id(event.repo_id).await {
            Ok(Some(repo)) => can_read(&self.principal, &repo),
            Ok(None) => false,
            Err(error) => {
                tracing::warn!(repo.id = event.repo_id, error = %error, "cannot check event access");
                return Verdict::Hide;
            }
        };
        self.readable.insert(event.repo_id, allowed);
        if allowed {
            Verdict::Send
        } else {
            Verdict::Hide
        }
    }
}
