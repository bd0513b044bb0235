//! sec_10: the server never logs a secret — webhook secrets, tokens, secret values and
//! database passwords stay out of every log line, at every level down to trace.

mod api_support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use api_support::{ADMIN, TestServer, git_repo, push_body, signed, timed};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// Everything the process logs, at every level.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn sec_10_the_server_never_logs_a_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let webhook_secret = "whsec-0f1e2d3c4b5a69788796a5b4c3d2e1f0";
    let secret_value = "sv-correct-horse-battery-staple-42";
    let mut user_token = String::new();
    timed(async {
        let server = TestServer::start().await;
        let git = tempfile::tempdir().unwrap();
        let pipeline = "steps:\n  - name: test\n    image: busybox\n    environment:\n      TOKEN: { from_secret: api_token }\n    commands: [echo hi]\n";
        let (url, sha) = git_repo(git.path(), &[(".pipeline.yml", pipeline)]);
        let body = json!({"owner": "acme", "name": "app", "forge": "generic", "clone_url": url, "webhook_secret": webhook_secret});
        let (status, _) = server.post("/api/repos", Some(ADMIN), body).await;
        assert_eq!(status, StatusCode::CREATED);
        let path = "/api/repos/acme/app/secrets/api_token";
        let (status, _) = server.call(Method::PUT, path, Some(ADMIN), Some(json!({"value": secret_value}))).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        user_token = server.user_token("ada", Some("repo:acme/app")).await;
        server.get("/api/repos/acme/app", Some(&user_token)).await;
        server.get("/api/repos", Some("gantry_wrong_token_1234567890")).await;

        let hook = push_body("acme/app", &url, &sha);
        let (status, _) = server.raw("/hooks/generic", &signed(&hook, "not-the-secret-xyz", "a"), hook.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = server.raw("/hooks/generic", &signed(&hook, webhook_secret, "b"), hook).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let build = server.wait_for_build("acme/app", 1).await;
        assert_eq!(build["status"], "pending", "{build}");
        server.stop().await;
    })
    .await;

    let mut config = gantry_server::ServerConfig::new("/tmp/unused");
    config.database_url = Some("postgres://gantry:db-password-4711@db.invalid/gantry".into());
    config.admin_token = Some(ADMIN.into());
    let config_debug = format!("{config:?}");

    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).to_string();
    assert!(
        logs.contains("webhook rejected"),
        "the capture works: {logs}"
    );
    assert!(logs.contains("build created"), "the capture works");
    for (what, secret) in [
        ("webhook secret", webhook_secret),
        ("secret value", secret_value),
        ("user token", user_token.as_str()),
        ("admin token", ADMIN),
    ] {
        assert!(!logs.contains(secret), "the {what} appears in the log");
    }
    for secret in ["db-password-4711", ADMIN] {
        assert!(
            !config_debug.contains(secret),
            "the config's Debug shows a secret: {config_debug}"
        );
    }
}
