//! The hook hand-off is durable: the build exists as soon as the hook is answered, before
//! its pipeline is read, and a server that stops before reading it prepares it at its next
//! start. The git fetch is held by a git server that accepts and never answers.

mod api_support;

use api_support::{ADMIN, TestServer, git_repo, push_body, signed, timed};
use gantry_server::{BackendChoice, ServerConfig};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::net::TcpListener;

const PIPELINE: &str = "steps:\n  - name: test\n    image: busybox\n    commands: [echo hi]\n";

/// A `git://` URL whose server accepts connections and never answers (until dropped).
async fn silent_git_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("git://{}/acme/app.git", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (url, task)
}

/// Starts a server (runner off) on an existing data directory.
async fn restart(dir: tempfile::TempDir) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = ServerConfig::new(dir.path());
    config.admin_token = Some(ADMIN.into());
    config.backend = BackendChoice::Local;
    config.no_local_runner = true;
    let server = gantry_server::launch(listener, config).await.unwrap();
    TestServer {
        base: format!("http://{}", server.addr()),
        server: Some(server),
        client: reqwest::Client::new(),
        dir,
    }
}

/// Points the repository at another clone URL, past the API (the server is stopped).
async fn set_clone_url(data_dir: &std::path::Path, url: &str) {
    use sqlx::Connection as _;
    let db = format!("sqlite://{}", data_dir.join("gantry.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&db).await.unwrap();
    sqlx::query("UPDATE repos SET clone_url = $1")
        .bind(url)
        .execute(&mut conn)
        .await
        .unwrap();
}

async fn build_one(server: &TestServer) -> Value {
    let (status, build) = server
        .get("/api/repos/acme/app/builds/1", Some(ADMIN))
        .await;
    assert_eq!(status, StatusCode::OK, "{build}");
    build
}

#[tokio::test]
async fn a_hook_accepted_but_not_prepared_is_prepared_at_the_next_start() {
    timed(async {
        let server = TestServer::start().await;
        let git = tempfile::tempdir().unwrap();
        let (url, sha) = git_repo(git.path(), &[(".pipeline.yml", PIPELINE)]);
        let (silent_url, silent) = silent_git_server().await;
        let secret = server.add_repo("acme", "app", &silent_url, false).await["webhook_secret"]
            .as_str()
            .unwrap()
            .to_string();
        let body = push_body("acme/app", &silent_url, &sha);
        let (status, answer) = server
            .raw(
                "/hooks/generic",
                &signed(&body, &secret, "d-1"),
                body.clone(),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        assert_eq!(answer["build"], 1, "{answer}");

        // Recorded with the hook, while the fetch hangs: pending, no steps yet.
        let build = build_one(&server).await;
        assert_eq!(build["status"], "pending", "{build}");
        assert_eq!(build["sha"], sha.as_str());
        assert_eq!(build["message"], "a change");
        assert_eq!(
            build["workflows"].as_array().map(Vec::len),
            Some(0),
            "{build}"
        );

        // The server stops before the commit arrives; the repository moves meanwhile.
        let TestServer {
            server: running,
            dir,
            ..
        } = server;
        running.unwrap().shutdown().await;
        silent.abort();
        set_clone_url(dir.path(), &url).await;

        let server = restart(dir).await;
        let build = server.wait_for_build("acme/app", 1).await;
        assert_eq!(build["status"], "pending", "{build}");
        let steps: Vec<&str> = build["workflows"][0]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(steps, ["clone", "test"]);
        assert_eq!(server.state().store.list_pending().await.unwrap().len(), 1);

        // A replay of the delivery still creates nothing.
        let (status, answer) = server
            .raw("/hooks/generic", &signed(&body, &secret, "d-1"), body)
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["status"], "replayed");
        let (_, list) = server.get("/api/repos/acme/app/builds", Some(ADMIN)).await;
        assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_build_cancelled_while_it_is_prepared_gets_no_steps() {
    timed(async {
        let server = TestServer::start().await;
        let git = tempfile::tempdir().unwrap();
        let (url, sha) = git_repo(git.path(), &[(".pipeline.yml", PIPELINE)]);
        let (silent_url, silent) = silent_git_server().await;
        let secret = server.add_repo("acme", "app", &silent_url, false).await["webhook_secret"]
            .as_str()
            .unwrap()
            .to_string();
        let body = push_body("acme/app", &silent_url, &sha);
        let (status, _) = server
            .raw("/hooks/generic", &signed(&body, &secret, "d-1"), body)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let (status, answer) = server
            .post(
                "/api/repos/acme/app/builds/1/cancel",
                Some(ADMIN),
                Value::Null,
            )
            .await;
        assert!(status.is_success(), "{status}: {answer}");
        assert_eq!(build_one(&server).await["status"], "killed");

        let TestServer {
            server: running,
            dir,
            ..
        } = server;
        running.unwrap().shutdown().await;
        silent.abort();
        set_clone_url(dir.path(), &url).await;
        let server = restart(dir).await;
        let preparing = server.state().store.preparing_builds().await.unwrap();
        assert!(preparing.is_empty(), "the start drops what a cancel left");
        let build = build_one(&server).await;
        assert_eq!(build["status"], "killed", "{build}");
        assert_eq!(build["workflows"].as_array().map(Vec::len), Some(0));
        assert!(
            server
                .state()
                .store
                .list_pending()
                .await
                .unwrap()
                .is_empty()
        );
        server.stop().await;
    })
    .await;
}
