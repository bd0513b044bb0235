//! What the runner, live and end-to-end tests share: a server on a free port with a
//! temporary data directory, repositories and queued builds made through the store.
#![allow(dead_code)] // each test file uses a different part

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt as _;
use gantry_pipeline::CompileContext;
use gantry_pipeline::plan::Plan;
use gantry_server::{AppState, BackendChoice, Server, ServerConfig};
use gantry_store::{
    BuildDetail, BuildEvent, ForgeKind, NewBuild, NewRepo, NewStep, NewToken, NewWorkflow, Repo,
    RunStatus, Step, TokenRole, now_ms,
};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{self, Message};

/// The admin token every test server adopts.
pub const ADMIN: &str = "gantry-test-admin-token-0123456789";
/// A commit id for builds whose pipeline does not clone.
pub const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// Fails the test instead of hanging it.
pub async fn within<T>(secs: u64, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {secs}s: {what}"),
    }
}

/// A server on 127.0.0.1:0 with its own data directory.
pub struct TestServer {
    /// The server.
    pub server: Server,
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// An HTTP client.
    pub http: reqwest::Client,
    /// Kept until the end of the test.
    pub dir: tempfile::TempDir,
}

/// Starts a server whose in-process runner uses `backend`.
pub async fn start(backend: BackendChoice) -> TestServer {
    start_with(backend, |_| {}).await
}

/// Starts a server after `adjust` changed its config.
pub async fn start_with(
    backend: BackendChoice,
    adjust: impl FnOnce(&mut ServerConfig),
) -> TestServer {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut config = ServerConfig::new(dir.path().join("data"));
    config.backend = backend;
    config.admin_token = Some(ADMIN.into());
    config.clone_image = "gantry-test/git:latest".into();
    adjust(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let server = gantry_server::launch(listener, config)
        .await
        .expect("launch");
    let base = format!("http://{}", server.addr());
    TestServer {
        server,
        base,
        http: reqwest::Client::new(),
        dir,
    }
}

/// The steps of a plan as the store records them.
pub fn workflow_of(plan: &Plan) -> NewWorkflow {
    let steps = plan
        .services
        .iter()
        .chain(&plan.steps)
        .map(|step| NewStep {
            name: step.name.clone(),
            kind: serde_json::to_value(step.kind)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            needs: step.needs.clone(),
        })
        .collect();
    NewWorkflow {
        name: plan.name.clone(),
        plan: serde_json::to_string(plan).expect("plan as JSON"),
        labels: plan.labels.clone(),
        steps,
    }
}

impl TestServer {
    /// The server's shared state.
    pub fn state(&self) -> &AppState {
        self.server.state()
    }

    /// A repository `test/<name>`.
    pub async fn repo(&self, name: &str, private: bool) -> Repo {
        self.repo_at(name, private, &format!("file:///nonexistent/{name}.git"))
            .await
    }

    /// A repository `test/<name>` cloned from `clone_url`.
    pub async fn repo_at(&self, name: &str, private: bool, clone_url: &str) -> Repo {
        let mut new = NewRepo::new(
            "test",
            name,
            ForgeKind::Generic,
            clone_url,
            "hook-secret-1234",
        );
        new.settings.private = private;
        self.state()
            .store
            .create_repo(&new)
            .await
            .expect("create repo")
    }

    /// Compiles `yaml` (without the clone step unless `clone`) and queues it as a build.
    pub async fn queue(&self, repo: &Repo, yaml: &str, clone: bool, sha: &str) -> BuildDetail {
        let ctx = CompileContext {
            repo: repo.full_name(),
            repo_url: repo.clone_url.clone(),
            event: "push".into(),
            git_ref: "refs/heads/main".into(),
            branch: "main".into(),
            sha: sha.into(),
            clone,
            clone_image: "gantry-test/git:latest".into(),
            ..CompileContext::default()
        };
        let compiled =
            gantry_pipeline::compile(".pipeline.yml", yaml, &ctx).expect("pipeline compiles");
        let workflows: Vec<NewWorkflow> = compiled.plans.iter().map(workflow_of).collect();
        let build = NewBuild {
            repo_id: repo.id,
            event: BuildEvent::Push,
            git_ref: "refs/heads/main".into(),
            sha: sha.into(),
            before: String::new(),
            message: "test".into(),
            author: "tester".into(),
            sender: "tester".into(),
            status: RunStatus::Pending,
            error: None,
            parent_id: None,
            deploy_target: None,
            diagnostics: None,
            created_at: now_ms(),
        };
        let detail = self
            .state()
            .store
            .create_build(&build, &workflows)
            .await
            .expect("create build");
        self.state().live.announce_work();
        detail
    }

    /// The build once `done` holds for it (polled).
    pub async fn wait_build(
        &self,
        build_id: i64,
        done: impl Fn(&BuildDetail) -> bool,
    ) -> BuildDetail {
        loop {
            let detail = self
                .state()
                .store
                .build_by_id(build_id)
                .await
                .expect("read build")
                .expect("build exists");
            if done(&detail) {
                return detail;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The build once it reached a final status.
    pub async fn finished(&self, build_id: i64) -> BuildDetail {
        self.wait_build(build_id, |d| d.build.status.is_terminal())
            .await
    }

    /// A user token with `scope` (`read:test/x`...), or none.
    pub async fn user_token(&self, scope: Option<&str>) -> String {
        let token = NewToken {
            name: "user".into(),
            subject: "someone".into(),
            role: TokenRole::User,
            scope: scope.map(String::from),
        };
        let (_, plaintext) = self
            .state()
            .store
            .create_token(&token, now_ms())
            .await
            .expect("token");
        plaintext.expose().to_string()
    }

    /// GET with a bearer token: status and body text.
    pub async fn get(&self, path: &str, token: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    /// Opens a websocket on `path` with a bearer token; the HTTP status when refused.
    pub async fn websocket(&self, path: &str, token: &str) -> Result<WsClient, u16> {
        let url = format!("{}{path}", self.base.replacen("http://", "ws://", 1));
        let mut request = url.into_client_request().expect("websocket request");
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        match tokio_tungstenite::connect_async(request).await {
            Ok((stream, _)) => Ok(WsClient { stream }),
            Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
            Err(other) => panic!("websocket failed: {other}"),
        }
    }
}

/// A websocket client reading JSON text frames.
pub struct WsClient {
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl WsClient {
    /// The next JSON frame; None once the server closed.
    pub async fn next_json(&mut self) -> Option<serde_json::Value> {
        while let Some(message) = self.stream.next().await {
            match message.ok()? {
                Message::Text(text) => return serde_json::from_str(text.as_str()).ok(),
                Message::Close(_) => return None,
                _ => {}
            }
        }
        None
    }
}

/// The step named `name` of a build.
pub fn step<'a>(detail: &'a BuildDetail, name: &str) -> &'a Step {
    detail
        .workflows
        .iter()
        .flat_map(|w| &w.steps)
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no step `{name}`"))
}
