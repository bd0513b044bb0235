//! Web sessions over real HTTP: one identity signing in again and again pushes out only
//! its own sessions, event sockets close once their session or token is gone, the cookie
//! is `__Host-` and `Secure` behind an `https://` public URL, and no page may be cached.

mod api_support;
mod web_support;

use api_support::{ADMIN, TestServer, timed};
use futures_util::StreamExt as _;
use gantry_server::live::{EventKind, LiveEvent};
use gantry_store::RunStatus;
use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, LOCATION, SET_COOKIE};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use web_support::{
    Browser, Socket, admin_browser, page_socket, socket, user_token_with_id, with_a_passing_build,
    with_public_app, with_public_url,
};

#[tokio::test]
async fn signing_in_in_a_loop_signs_out_only_the_same_identity() {
    timed(async {
        let server = with_public_app().await;
        let (_, ada) = user_token_with_id(&server, "ada").await;
        let (_, bob) = user_token_with_id(&server, "bob").await;
        let mut bob_browser = Browser::new(&server);
        bob_browser.sign_in(&bob).await;
        let mut first = Browser::new(&server);
        first.sign_in(&ada).await;
        let mut latest = Browser::new(&server);
        for _ in 0..40 {
            latest.sign_in(&ada).await;
        }
        let (status, _, _) = bob_browser.get("/").await;
        assert_eq!(status, StatusCode::OK, "another identity's session stays");
        let (status, _, _) = latest.get("/").await;
        assert_eq!(status, StatusCode::OK, "the newest session works");
        let (status, headers, _) = first.get("/").await;
        assert_eq!(
            status,
            StatusCode::SEE_OTHER,
            "the oldest of ada's 41 is gone"
        );
        assert_eq!(headers[LOCATION], "/login");
    })
    .await;
}

/// An event of `repo` (`acme/<name>`, id `repo_id`) published on the server's hub.
fn publish(server: &TestServer, repo_id: i64, repo: &str) {
    server.state().live.publish_event(LiveEvent {
        kind: EventKind::Build,
        repo_id,
        repo: repo.into(),
        build: 1,
        step: None,
        status: RunStatus::Running,
        error: None,
    });
}

/// Publishes events of `acme/app` until one reaches the socket (it may subscribe a little
/// after the upgrade answer).
async fn first_event(server: &TestServer, app_id: i64, socket: &mut Socket) {
    loop {
        publish(server, app_id, "acme/app");
        let wait = std::time::Duration::from_millis(200);
        if let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(wait, socket.next()).await {
            assert!(text.contains("acme/app"), "{text}");
            return;
        }
    }
}

/// Publishes an event of a repository the socket has not seen, then expects the socket
/// closed with code 1008 instead of that event (`acme/app` events still in flight from
/// `first_event` may come first).
async fn expect_closed(server: &TestServer, other_id: i64, mut socket: Socket) {
    publish(server, other_id, "acme/other");
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) if text.contains("\"acme/app\"") => {}
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(frame.code, CloseCode::Policy, "{frame:?}");
                assert!(frame.reason.contains("sign in again"), "{frame:?}");
                return;
            }
            other => panic!("expected the socket to close, got {other:?}"),
        }
    }
}

/// Adds the public repository `acme/<name>`; returns its id.
async fn add_repo(server: &TestServer, name: &str) -> i64 {
    let url = format!("https://example.invalid/acme/{name}.git");
    server.add_repo("acme", name, &url, false).await;
    let store = &server.state().store;
    store.repo_by_name("acme", name).await.unwrap().unwrap().id
}

/// The ids of `acme/app` and of a new `acme/other`.
async fn repo_ids(server: &TestServer) -> (i64, i64) {
    let other = add_repo(server, "other").await;
    let store = &server.state().store;
    let app = store.repo_by_name("acme", "app").await.unwrap().unwrap();
    (app.id, other)
}

#[tokio::test]
async fn an_api_event_socket_closes_once_its_token_is_revoked() {
    timed(async {
        let server = with_public_app().await;
        let (app, other) = repo_ids(&server).await;
        let (id, token) = user_token_with_id(&server, "ada").await;
        let bearer = [("authorization", format!("Bearer {token}"))];
        let mut events = socket(&server, "/api/events", &bearer).await.unwrap();
        first_event(&server, app, &mut events).await;
        let revoke = format!("/api/tokens/{id}");
        let (status, _) = server
            .call(reqwest::Method::DELETE, &revoke, Some(ADMIN), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        expect_closed(&server, other, events).await;
    })
    .await;
}

#[tokio::test]
async fn a_page_event_socket_closes_at_sign_out_and_at_revocation() {
    timed(async {
        let server = with_public_app().await;
        let (app, other) = repo_ids(&server).await;
        let origin = server.base.clone();
        let (browser, _) = admin_browser(&server).await;
        let mut events = page_socket(&server, &browser, "/ui/events", &origin)
            .await
            .unwrap();
        first_event(&server, app, &mut events).await;
        let csrf = browser.csrf("/").await;
        let (status, _, _) = browser
            .post("/logout", Some(&origin), &[], &[("csrf", &csrf)])
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        expect_closed(&server, other, events).await;

        let (id, token) = user_token_with_id(&server, "ada").await;
        let mut ada = Browser::new(&server);
        ada.sign_in(&token).await;
        let mut events = page_socket(&server, &ada, "/ui/events", &origin)
            .await
            .unwrap();
        first_event(&server, app, &mut events).await;
        let revoke = format!("/api/tokens/{id}");
        server
            .call(reqwest::Method::DELETE, &revoke, Some(ADMIN), None)
            .await;
        let third = add_repo(&server, "third").await;
        expect_closed(&server, third, events).await;
    })
    .await;
}

#[tokio::test]
async fn an_https_public_url_makes_the_cookie_secure_and_host_only() {
    timed(async {
        let server = with_public_url("https://ci.example.com").await;
        let mut browser = Browser::new(&server);
        let origin = server.base.clone();
        let (status, headers, _) = browser
            .post("/login", Some(&origin), &[], &[("token", ADMIN)])
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let cookie = headers[SET_COOKIE].to_str().unwrap().to_string();
        assert!(cookie.starts_with("__Host-gantry_session="), "{cookie}");
        assert!(
            cookie.contains("; Path=/") && cookie.ends_with("; Secure"),
            "{cookie}"
        );
        assert!(!cookie.contains("Domain"), "{cookie}");
        let session = cookie.split(';').next().unwrap().to_string();
        browser.cookie = Some(session.clone());
        let (status, _, _) = browser.get("/").await;
        assert_eq!(status, StatusCode::OK, "the __Host- cookie signs in");
        // A plain-named cookie (planted over HTTP, say) does not count over TLS.
        let id = session.split_once('=').unwrap().1;
        browser.cookie = Some(format!("gantry_session={id}"));
        let (status, _, _) = browser.get("/").await;
        assert_eq!(status, StatusCode::SEE_OTHER);

        let plain = TestServer::start().await;
        let mut browser = Browser::new(&plain);
        let tls = [("x-forwarded-proto", "https")];
        let (_, headers, _) = browser
            .post("/login", Some(&plain.base), &tls, &[("token", ADMIN)])
            .await;
        let cookie = headers[SET_COOKIE].to_str().unwrap();
        assert!(cookie.starts_with("__Host-gantry_session=") && cookie.ends_with("; Secure"));
        browser.sign_in(ADMIN).await;
        assert!(
            browser
                .cookie
                .as_deref()
                .unwrap()
                .starts_with("gantry_session=")
        );
    })
    .await;
}

#[tokio::test]
async fn every_page_but_the_assets_says_no_store() {
    timed(async {
        let server = with_a_passing_build().await;
        let anonymous = Browser::new(&server);
        let (_, headers, _) = anonymous.get("/login").await;
        assert_eq!(headers[CACHE_CONTROL], "no-store");
        let (browser, _) = admin_browser(&server).await;
        for page in [
            "/",
            "/acme/app",
            "/acme/app/settings",
            "/acme/app/builds/1",
            "/acme/app/builds/1/row",
            "/acme/app/builds/1/steps/test/log",
            "/acme/app/builds/1/steps/test/lines",
            "/acme/nothing",
        ] {
            let (_, headers, _) = browser.get(page).await;
            assert_eq!(headers[CACHE_CONTROL], "no-store", "{page}");
        }
        let (_, headers, _) = browser.get("/api/badges/acme/app.svg").await;
        let badge = headers[CACHE_CONTROL].to_str().unwrap();
        assert!(badge.contains("no-store"), "{badge}");
        let (_, headers, _) = browser.get("/assets/app.css").await;
        assert_ne!(headers[CACHE_CONTROL], "no-store");
    })
    .await;
}
