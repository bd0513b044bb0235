//! The hook hand-off is durable: the build exists as soon as the hook is answered, before
//! its pipeline is read, and a server that stops before reading it prepares it at its next
//! start; one whose preparer died is taken by another server's sweep without a restart.
//! The git fetch is held by a git server that accepts and never answers.

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

/// The names of the first workflow's steps.
fn step_names(build: &Value) -> Vec<&str> {
    build["workflows"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect()
}

async fn build_one(server: &TestServer) -> Value {
    let (status, build) = server
        .get("/api/repos/acme/app/builds/1", Some(ADMIN))
        .await;
    assert_eq!(status, StatusCode::OK, "{build}");
    build
}

/// A signed hook's headers and body.
type Replay = (Vec<(&'static str, String)>, Vec<u8>);

/// A server with repository `acme/app` whose clone URL hangs, and one push hook (`d-1`)
/// accepted for it: its build is recorded and cannot be prepared.
struct HeldHook {
    server: TestServer,
    /// The reachable repository.
    url: String,
    /// The commit pushed.
    sha: String,
    /// The signed delivery, to replay.
    replay: Replay,
    silent: tokio::task::JoinHandle<()>,
    _git: tempfile::TempDir,
}

impl HeldHook {
    async fn start() -> HeldHook {
        let server = TestServer::start().await;
        let git = tempfile::tempdir().unwrap();
        let (url, sha) = git_repo(git.path(), &[(".pipeline.yml", PIPELINE)]);
        let (silent_url, silent) = silent_git_server().await;
        let secret = server.add_repo("acme", "app", &silent_url, false).await["webhook_secret"]
            .as_str()
            .unwrap()
            .to_string();
        let body = push_body("acme/app", &silent_url, &sha);
        let headers = signed(&body, &secret, "d-1");
        let (status, answer) = server.raw("/hooks/generic", &headers, body.clone()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        assert_eq!(answer["build"], 1, "{answer}");
        HeldHook {
            server,
            url,
            sha,
            replay: (headers, body),
            silent,
            _git: git,
        }
    }

    /// Stops the server while the fetch hangs, points the repository at the reachable
    /// URL, and starts a server on the same data directory. The repository lives as long
    /// as the returned directory.
    async fn restart(self) -> (TestServer, Replay, tempfile::TempDir) {
        let TestServer {
            server: running,
            dir,
            ..
        } = self.server;
        running.unwrap().shutdown().await;
        self.silent.abort();
        set_clone_url(dir.path(), &self.url).await;
        (restart(dir).await, self.replay, self._git)
    }
}

#[tokio::test]
async fn a_hook_accepted_but_not_prepared_is_prepared_at_the_next_start() {
    timed(async {
        let held = HeldHook::start().await;
        // Recorded with the hook, while the fetch hangs: pending, no steps yet.
        let build = build_one(&held.server).await;
        assert_eq!(build["status"], "pending", "{build}");
        assert_eq!(build["sha"], held.sha.as_str());
        assert_eq!(build["message"], "a change");
        let steps = build["workflows"].as_array().map(Vec::len);
        assert_eq!(steps, Some(0), "{build}");

        let (server, (headers, body), _git) = held.restart().await;
        let build = server.wait_for_build("acme/app", 1).await;
        assert_eq!(build["status"], "pending", "{build}");
        assert_eq!(step_names(&build), ["clone", "test"]);
        assert_eq!(server.state().store.list_pending().await.unwrap().len(), 1);

        // A replay of the delivery still creates nothing.
        let (status, answer) = server.raw("/hooks/generic", &headers, body).await;
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
        let held = HeldHook::start().await;
        let (status, answer) = held
            .server
            .post(
                "/api/repos/acme/app/builds/1/cancel",
                Some(ADMIN),
                Value::Null,
            )
            .await;
        assert!(status.is_success(), "{status}: {answer}");
        assert_eq!(build_one(&held.server).await["status"], "killed");

        let (server, _, _git) = held.restart().await;
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

/// The trigger facts a push hook records for `sha` on `main`.
fn push_trigger(sha: &str) -> String {
    let trigger = gantry_server::builds::Trigger {
        event: gantry_store::BuildEvent::Push,
        git_ref: "refs/heads/main".into(),
        branch: "main".into(),
        tag: String::new(),
        sha: sha.into(),
        before: String::new(),
        message: "a change".into(),
        author: "dev".into(),
        sender: "dev".into(),
        pull_request: None,
        link: String::new(),
        parent_id: None,
        deploy_target: None,
    };
    serde_json::to_string(&trigger).unwrap()
}

#[tokio::test]
async fn a_hook_build_whose_preparer_died_is_taken_by_the_sweep_without_a_restart() {
    timed(async {
        let server = TestServer::start().await;
        let git = tempfile::tempdir().unwrap();
        let (url, sha) = git_repo(git.path(), &[(".pipeline.yml", PIPELINE)]);
        server.add_repo("acme", "app", &url, false).await;
        let store = &server.state().store;
        let repo_id = store.repo_by_name("acme", "app").await.unwrap().unwrap().id;
        // Another replica recorded the hook, claimed its preparation and vanished: its
        // claim's lease is over.
        let now = gantry_store::now_ms();
        let build = gantry_store::NewBuild {
            repo_id,
            event: gantry_store::BuildEvent::Push,
            git_ref: "refs/heads/main".into(),
            sha: sha.clone(),
            before: String::new(),
            message: "a change".into(),
            author: "dev".into(),
            sender: "dev".into(),
            status: gantry_store::RunStatus::Pending,
            error: None,
            parent_id: None,
            deploy_target: None,
            diagnostics: None,
            created_at: now,
        };
        let recorded = store
            .record_hook_build("d-gone", &build, &push_trigger(&sha))
            .await
            .unwrap()
            .expect("a new delivery");
        let gone = gantry_store::PreparationClaim {
            claimer: "server:gone-replica:0".into(),
            now,
            until: now - 1,
        };
        let attempts = store.claim_preparation(recorded.id, &gone).await.unwrap();
        assert_eq!(attempts, Some(1));

        // The running server's sweep prepares it; nothing restarts.
        let build = server.wait_for_build("acme/app", 1).await;
        assert_eq!(build["status"], "pending", "{build}");
        assert_eq!(step_names(&build), ["clone", "test"]);
        assert_eq!(store.list_pending().await.unwrap().len(), 1);
        assert!(store.preparing_builds().await.unwrap().is_empty());
        server.stop().await;
    })
    .await;
}
