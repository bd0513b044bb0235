//! A step's log stream re-checks its credential while open: over real HTTP and a real
//! websocket, an API follower of a private repository is closed with code 1008 once its
//! token is revoked mid-step, and a page follower once its session signs out.

mod api_support;
mod web_support;

use std::time::Duration;

use api_support::{ADMIN, TestServer, timed};
use futures_util::StreamExt as _;
use gantry_store::{LogLine, RunStatus, StepChange, now_ms};
use reqwest::StatusCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use web_support::{Socket, admin_browser, page_socket, queued_build, socket, user_token_with_id};

/// The re-check period for these tests: short, so no test waits the default 30 s.
const RECHECK: Duration = Duration::from_millis(200);

/// A server with the private repository `acme/secret` whose build 1 has its step `test`
/// running, with one line stored; returns the server and the step's id.
async fn with_a_running_private_step() -> (TestServer, i64) {
    gantry_server::live::set_credential_recheck(RECHECK);
    let server = TestServer::start().await;
    let url = "https://example.invalid/acme/secret.git";
    server.add_repo("acme", "secret", url, true).await;
    let detail = queued_build(
        &server,
        "acme/secret",
        "refs/heads/main",
        ("test", "commands"),
    )
    .await;
    let step_id = detail.workflows[0].steps[0].id;
    let store = &server.state().store;
    store.append_logs(step_id, &[line(1)]).await.unwrap();
    let running = StepChange {
        status: RunStatus::Running,
        at: now_ms(),
        exit_code: None,
        error: None,
        runner_id: None,
    };
    store.update_step(step_id, &running).await.unwrap();
    (server, step_id)
}

/// Log line `number` of the step.
fn line(number: i64) -> LogLine {
    LogLine {
        number,
        stream: "stdout".into(),
        text: format!("private line {number}"),
        elapsed_ms: 0,
    }
}

/// Reads frames until the one holding line `number`.
async fn expect_line(socket: &mut Socket, number: i64) {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) if text.contains(&format!("line {number}\"")) => return,
            Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected line {number}, got {other:?}"),
        }
    }
}

/// Expects the socket closed with code 1008 and no end frame: the step still runs.
async fn expect_closed(mut socket: Socket) {
    loop {
        match socket.next().await {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(frame.code, CloseCode::Policy, "{frame:?}");
                assert!(frame.reason.contains("sign in again"), "{frame:?}");
                return;
            }
            Some(Ok(Message::Text(text))) => {
                assert!(!text.contains("\"end\""), "the step has not ended: {text}");
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected the stream to close with 1008, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_api_follower_is_closed_once_its_token_is_revoked_mid_step() {
    timed(async {
        let (server, step_id) = with_a_running_private_step().await;
        let body = serde_json::json!({
            "name": "ada", "subject": "ada", "role": "user", "scope": "read:acme/secret",
        });
        let (status, answer) = server.post("/api/tokens", Some(ADMIN), body).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        let id = answer["token"]["id"].as_i64().unwrap();
        let bearer = [(
            "authorization",
            format!("Bearer {}", answer["secret"].as_str().unwrap()),
        )];
        let path = "/api/repos/acme/secret/builds/1/steps/test/logs/stream";
        let mut stream = socket(&server, path, &bearer).await.expect("stream opens");
        expect_line(&mut stream, 1).await;
        // A live line still reaches the follower while its token is valid.
        server.state().live.publish_lines(step_id, vec![line(2)]);
        expect_line(&mut stream, 2).await;

        let revoke = format!("/api/tokens/{id}");
        let (status, _) = server
            .call(reqwest::Method::DELETE, &revoke, Some(ADMIN), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        expect_closed(stream).await;
    })
    .await;
}

#[tokio::test]
async fn a_page_follower_is_closed_once_its_session_signs_out() {
    timed(async {
        let (server, _) = with_a_running_private_step().await;
        let origin = server.base.clone();
        let (browser, _) = admin_browser(&server).await;
        let path = "/acme/secret/builds/1/steps/test/stream";
        let mut stream = page_socket(&server, &browser, path, &origin)
            .await
            .expect("stream opens");
        expect_line(&mut stream, 1).await;
        let csrf = browser.csrf("/").await;
        let (status, _, _) = browser
            .post("/logout", Some(&origin), &[], &[("csrf", &csrf)])
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        expect_closed(stream).await;
    })
    .await;
}

#[tokio::test]
async fn a_follower_whose_token_still_reads_the_repository_keeps_the_stream() {
    timed(async {
        let (server, step_id) = with_a_running_private_step().await;
        let (_, token) = user_token_with_id(&server, "bob").await;
        let bearer = [("authorization", format!("Bearer {token}"))];
        // A token without the repository in its scope cannot open the stream at all.
        let path = "/api/repos/acme/secret/builds/1/steps/test/logs/stream";
        assert!(socket(&server, path, &bearer).await.is_err());
        let admin = [("authorization", format!("Bearer {ADMIN}"))];
        let mut stream = socket(&server, path, &admin).await.expect("stream opens");
        expect_line(&mut stream, 1).await;
        // Several re-check periods pass; the stream still delivers.
        tokio::time::sleep(RECHECK * 3).await;
        server.state().live.publish_lines(step_id, vec![line(2)]);
        expect_line(&mut stream, 2).await;
    })
    .await;
}
