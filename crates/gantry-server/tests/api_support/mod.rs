//! A real server on 127.0.0.1 with a real SQLite file, and a client that speaks JSON to it.
#![allow(dead_code)]

pub mod postgres;

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use gantry_server::{BackendChoice, Server, ServerConfig};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The admin token every test server adopts.
pub const ADMIN: &str = "gantry_test_admin_token_0123456789";

/// Every test gives up after this long.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs a test body under the timeout.
pub async fn timed<F: Future<Output = ()>>(body: F) {
    tokio::time::timeout(TEST_TIMEOUT, body)
        .await
        .expect("the test did not finish in time");
}

/// A server with its own data directory; the runner is off, so builds stay queued.
pub struct TestServer {
    pub server: Option<Server>,
    pub base: String,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(None).await
    }

    /// `database_url`: `None` for SQLite in the data directory.
    pub async fn start_with(database_url: Option<String>) -> TestServer {
        Self::start_configured(|config| config.database_url = database_url).await
    }

    /// A server on a new data directory, its configuration changed by `configure`.
    pub async fn start_configured(configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
        Self::launch_in(tempfile::tempdir().unwrap(), configure).await
    }

    /// A server (admin token [`ADMIN`], local backend, runner off) on the data directory
    /// `dir`, its configuration changed by `configure`.
    pub async fn launch_in(
        dir: tempfile::TempDir,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut config = ServerConfig::new(dir.path());
        config.admin_token = Some(ADMIN.into());
        config.backend = BackendChoice::Local;
        config.no_local_runner = true;
        configure(&mut config);
        let server = gantry_server::launch(listener, config).await.unwrap();
        let base = format!("http://{}", server.addr());
        TestServer {
            server: Some(server),
            base,
            client: reqwest::Client::new(),
            dir,
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn state(&self) -> &gantry_server::AppState {
        self.server.as_ref().unwrap().state()
    }

    /// Sends a request with an optional bearer token and JSON body; returns the status and
    /// the JSON answer (Null when the body is empty or not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// Sends raw bytes with headers.
    pub async fn raw(
        &self,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.post(format!("{}{path}", self.base)).body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Adds a repository as admin; returns the create answer.
    pub async fn add_repo(&self, owner: &str, name: &str, clone_url: &str, private: bool) -> Value {
        let body = serde_json::json!({
            "owner": owner, "name": name, "forge": "generic",
            "clone_url": clone_url, "private": private,
        });
        let (status, answer) = self.post("/api/repos", Some(ADMIN), body).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        answer
    }

    /// Creates a user token with a scope; returns its plaintext.
    pub async fn user_token(&self, subject: &str, scope: Option<&str>) -> String {
        let body = serde_json::json!({"name": subject, "subject": subject, "role": "user", "scope": scope});
        let (status, answer) = self.post("/api/tokens", Some(ADMIN), body).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        answer["secret"].as_str().unwrap().to_string()
    }

    /// Triggers a build of `branch` of `repo` (`owner/name`) as admin and returns it once
    /// prepared.
    pub async fn trigger_build(&self, repo: &str, branch: &str) -> Value {
        let path = format!("/api/repos/{repo}/builds");
        let body = serde_json::json!({"branch": branch});
        let (status, build) = self.post(&path, Some(ADMIN), body).await;
        assert_eq!(status, StatusCode::CREATED, "{build}");
        let number = build["number"].as_i64().expect("a build number");
        self.wait_for_build(repo, number).await
    }

    /// Polls until build `number` of `repo` exists and is no longer being prepared.
    pub async fn wait_for_build(&self, repo: &str, number: i64) -> Value {
        loop {
            let (status, build) = self
                .get(&format!("/api/repos/{repo}/builds/{number}"), Some(ADMIN))
                .await;
            // A hook's build exists at once (`pending`, no workflows) and is prepared after.
            let preparing = build["status"] == "pending"
                && build["workflows"].as_array().is_none_or(Vec::is_empty);
            if status == StatusCode::OK && !preparing {
                return build;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}

/// A bare repository in `dir` holding one commit with `files`; returns its file:// URL and
/// the commit.
pub fn git_repo(dir: &Path, files: &[(&str, &str)]) -> (String, String) {
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    commit(&work, files, "first");
    let bare = dir.join("origin.git");
    git(
        dir,
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    let sha = git(&work, &["rev-parse", "HEAD"]);
    (format!("file://{}", bare.display()), sha)
}

/// Commits `files` in the work tree `work`; returns the new commit.
pub fn commit(work: &Path, files: &[(&str, &str)], message: &str) -> String {
    for (path, text) in files {
        let path = work.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    git(work, &["add", "-A"]);
    git(
        work,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "commit",
            "-q",
            "-m",
            message,
        ],
    );
    git(work, &["rev-parse", "HEAD"])
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A generic hook body for a push of `sha` to main.
pub fn push_body(repo: &str, clone_url: &str, sha: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "event": "push", "repo": repo, "clone_url": clone_url,
        "ref": "refs/heads/main", "before": "0000000000000000000000000000000000000000",
        "after": sha, "message": "a change", "author": "alice",
    }))
    .unwrap()
}

/// Headers of a generic hook signed with `secret`.
pub fn signed(body: &[u8], secret: &str, delivery: &str) -> Vec<(&'static str, String)> {
    vec![
        ("content-type", "application/json".to_string()),
        (
            "x-gantry-signature",
            gantry_forge::gantry_signature(body, secret.as_bytes()),
        ),
        ("x-gantry-delivery", delivery.to_string()),
    ]
}

/// Row counts of every table of the SQLite database in `data_dir`.
pub async fn table_counts(data_dir: &Path) -> Vec<(String, i64)> {
    use sqlx::Connection as _;
    let url = format!("sqlite://{}", data_dir.join("gantry.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let tables: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let mut counts = Vec::new();
    for (table,) in tables {
        let (n,): (i64,) = // Table names come from sqlite_master, not from a client.
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM \"{table}\"")))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        counts.push((table, n));
    }
    counts
}
