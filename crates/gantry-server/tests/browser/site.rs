//! The server under test: `gantry_server::launch` on port 0 with the local backend and its
//! in-process runner, and repositories cloned from local bare git repositories.

use gantry_server::{BackendChoice, ServerConfig};
use std::time::Duration;

use serde_json::{Value, json};

use super::chrome::Browser;
use crate::api_support::git_repo;
use crate::run_common::{self, ADMIN, TestServer};

/// A running server and the git repositories its repositories point at.
pub struct Site {
    /// The server.
    pub server: TestServer,
    // Each repository's bare git repository and work tree live here.
    git: tempfile::TempDir,
}

impl Site {
    /// A server on 127.0.0.1:0 running steps as host processes.
    pub async fn start() -> Site {
        Self::start_with(|_| {}).await
    }

    /// The same, after `adjust` changed the server's config.
    pub async fn start_with(adjust: impl FnOnce(&mut ServerConfig)) -> Site {
        Site {
            server: run_common::start_with(BackendChoice::Local, adjust).await,
            git: tempfile::tempdir().expect("a directory for git repositories"),
        }
    }

    /// `http://127.0.0.1:port` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base)
    }

    /// Adds the repository `test/<name>`, cloned from a bare git repository whose `main`
    /// holds `pipeline` as `.pipeline.yml`.
    pub async fn repo(&self, name: &str, pipeline: &str) {
        let dir = self.git.path().join(name);
        std::fs::create_dir_all(&dir).expect("a git directory");
        let (clone_url, _) = git_repo(&dir, &[(".pipeline.yml", pipeline)]);
        self.server.repo_at(name, false, &clone_url).await;
    }

    /// Builds `main` of `test/<name>` through the API; the build's number.
    pub async fn trigger(&self, name: &str) -> i64 {
        let answer = self
            .server
            .http
            .post(self.url(&format!("/api/repos/test/{name}/builds")))
            .bearer_auth(ADMIN)
            .json(&json!({"branch": "main"}))
            .send()
            .await
            .expect("trigger request");
        let status = answer.status();
        let body: serde_json::Value = answer.json().await.unwrap_or_default();
        assert_eq!(status, 201, "triggering test/{name}: {body}");
        body["number"]
            .as_i64()
            .unwrap_or_else(|| panic!("no build number in {body}"))
    }

    /// Build `number` of `test/<name>` as the API reports it.
    pub async fn build(&self, name: &str, number: i64) -> Value {
        let path = format!("/api/repos/test/{name}/builds/{number}");
        let (status, body) = self.server.get(&path, ADMIN).await;
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).expect("a build as JSON")
    }

    /// The status of build `number` of `test/<name>`.
    pub async fn build_status(&self, name: &str, number: i64) -> String {
        let build = self.build(name, number).await;
        build["status"].as_str().unwrap_or_default().to_string()
    }

    /// Polls until build `number` of `test/<name>` has a final status; that status.
    pub async fn finished(&self, name: &str, number: i64) -> String {
        loop {
            let status = self.build_status(name, number).await;
            if !matches!(status.as_str(), "pending" | "running" | "blocked") {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The status of step `step` of build `number` of `test/<name>`.
    pub async fn step_status(&self, name: &str, number: i64, step: &str) -> String {
        let build = self.build(name, number).await;
        let steps = build["workflows"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|w| w["steps"].as_array().into_iter().flatten());
        steps
            .filter(|s| s["name"] == step)
            .find_map(|s| s["status"].as_str().map(String::from))
            .unwrap_or_else(|| panic!("no step `{step}` in {build}"))
    }

    /// A path in the server's temporary directory (for gate files the steps wait for).
    pub fn scratch(&self, name: &str) -> String {
        let path = self.server.dir.path().join(name);
        path.to_str().expect("a UTF-8 temporary path").to_string()
    }

    /// Signs `browser` in with the admin token through the sign-in form.
    pub async fn sign_in(&self, browser: &Browser) {
        browser.open_url(&self.url("/login")).await;
        browser.fill("form#login-form input#token", ADMIN).await;
        browser.click("button#login-submit").await;
        browser.wait_css("form#logout-form").await;
    }

    /// Stops the server.
    pub async fn stop(self) {
        self.server.server.shutdown().await;
    }
}
