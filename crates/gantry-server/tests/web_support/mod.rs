//! What the web UI tests share: a browser-like HTTP client with the session cookie, and
//! finished builds written straight into the store.
#![allow(dead_code)]

use gantry_store::{
    BuildDetail, BuildEvent, LogLine, NewBuild, NewStep, NewWorkflow, RunStatus, StatusChange,
    StepChange, now_ms,
};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, SET_COOKIE};

use crate::api_support::{ADMIN, TestServer};

/// A websocket client connection, as the tests hold it.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a websocket at `path` with these request headers.
pub async fn socket(
    server: &TestServer,
    path: &str,
    headers: &[(&str, String)],
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let url = format!("{}{path}", server.base.replacen("http", "ws", 1));
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes());
        request
            .headers_mut()
            .insert(name.unwrap(), value.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
}

/// Opens a page websocket with the browser's cookie and the given Origin.
pub async fn page_socket(
    server: &TestServer,
    browser: &Browser,
    path: &str,
    origin: &str,
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let cookie = browser.cookie.clone().unwrap();
    let headers = [("origin", origin.to_string()), ("cookie", cookie)];
    socket(server, path, &headers).await
}

/// A user token of `subject` (public repositories only): its id and its secret.
pub async fn user_token_with_id(server: &TestServer, subject: &str) -> (i64, String) {
    let body = serde_json::json!({"name": subject, "subject": subject, "role": "user"});
    let (status, answer) = server.post("/api/tokens", Some(ADMIN), body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let id = answer["token"]["id"].as_i64().expect("the token's id");
    (id, answer["secret"].as_str().unwrap().to_string())
}

/// A form post: its Origin header (if any) and its fields.
pub type Attempt<'a> = (Option<&'a str>, &'a [(&'a str, &'a str)]);

/// A browser-like client: no redirects followed, our origin on every post.
pub struct Browser {
    client: reqwest::Client,
    base: String,
    /// `gantry_session=<id>` once signed in.
    pub cookie: Option<String>,
}

impl Browser {
    pub fn new(server: &TestServer) -> Browser {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Browser {
            client,
            base: server.base.clone(),
            cookie: None,
        }
    }

    pub async fn get(&self, path: &str) -> (StatusCode, HeaderMap, String) {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, response.text().await.unwrap())
    }

    /// Posts a form; `origin` None sends no Origin header.
    pub async fn post(
        &self,
        path: &str,
        origin: Option<&str>,
        extra: &[(&str, &str)],
        form: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, String) {
        let mut request = self.client.post(format!("{}{path}", self.base)).form(form);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, response.text().await.unwrap())
    }

    /// Signs in with `token`; keeps the session cookie.
    pub async fn sign_in(&mut self, token: &str) {
        let origin = self.base.clone();
        let (status, headers, _) = self
            .post("/login", Some(&origin), &[], &[("token", token)])
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let set = headers[SET_COOKIE].to_str().unwrap();
        self.cookie = Some(set.split(';').next().unwrap().to_string());
    }

    /// The CSRF token of the page at `path`.
    pub async fn csrf(&self, path: &str) -> String {
        let (status, _, html) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        let marker = "name=\"csrf\" value=\"";
        let start = html.find(marker).expect("a form with a CSRF token") + marker.len();
        html[start..start + 64].to_string()
    }
}

/// A browser signed in with the admin token, and the origin its posts carry.
pub async fn admin_browser(server: &TestServer) -> (Browser, String) {
    let mut browser = Browser::new(server);
    browser.sign_in(ADMIN).await;
    (browser, server.base.clone())
}

/// A server with the public repository `acme/app`.
pub async fn with_public_app() -> TestServer {
    let server = TestServer::start().await;
    server
        .add_repo("acme", "app", "https://example.invalid/acme/app.git", false)
        .await;
    server
}

/// A pending push build of repository `repo_id` at `sha`.
fn push_build(repo_id: i64, git_ref: &str, sha: &str) -> NewBuild {
    NewBuild {
        repo_id,
        event: BuildEvent::Push,
        git_ref: git_ref.into(),
        sha: sha.into(),
        before: String::new(),
        message: "a <b>bold</b> message".into(),
        author: "ada".into(),
        sender: "ada".into(),
        status: RunStatus::Pending,
        error: None,
        parent_id: None,
        deploy_target: None,
        diagnostics: None,
        created_at: now_ms(),
    }
}

/// The id of repository `owner/name`.
async fn repo_id(server: &TestServer, repo: &str) -> i64 {
    let (owner, name) = repo.split_once('/').unwrap();
    let store = &server.state().store;
    store.repo_by_name(owner, name).await.unwrap().unwrap().id
}

/// A pending build of `repo` with one step, `name` of `kind`.
pub async fn queued_build(
    server: &TestServer,
    repo: &str,
    git_ref: &str,
    (name, kind): (&str, &str),
) -> BuildDetail {
    let build = push_build(repo_id(server, repo).await, git_ref, &"a".repeat(40));
    let workflow = NewWorkflow {
        name: "default".into(),
        plan: "{}".into(),
        labels: Default::default(),
        steps: vec![NewStep {
            name: name.into(),
            kind: kind.into(),
            needs: vec![],
        }],
    };
    let store = &server.state().store;
    store.create_build(&build, &[workflow]).await.unwrap()
}

/// A build of `repo` at `sha` whose pipeline did not compile: `diagnostics` (JSON).
pub async fn build_with_diagnostics(
    server: &TestServer,
    repo: &str,
    sha: &str,
    diagnostics: &str,
) -> BuildDetail {
    let mut build = push_build(repo_id(server, repo).await, "refs/heads/main", sha);
    build.status = RunStatus::Error;
    build.error = Some("the pipeline does not compile".into());
    build.diagnostics = Some(diagnostics.into());
    let store = &server.state().store;
    store.create_build(&build, &[]).await.unwrap()
}

/// A finished build of `repo` with one step, `test`, whose log holds `lines`.
pub async fn finished_build(
    server: &TestServer,
    repo: &str,
    git_ref: &str,
    status: RunStatus,
    lines: &[&str],
) -> BuildDetail {
    let store = &server.state().store;
    let detail = queued_build(server, repo, git_ref, ("test", "commands")).await;
    let step = &detail.workflows[0].steps[0];
    let log: Vec<LogLine> = lines
        .iter()
        .enumerate()
        .map(|(i, text)| LogLine {
            number: i as i64 + 1,
            stream: "stdout".into(),
            text: (*text).into(),
            elapsed_ms: 0,
        })
        .collect();
    store.append_logs(step.id, &log).await.unwrap();
    let at = now_ms();
    let running = StepChange {
        status: RunStatus::Running,
        at,
        exit_code: None,
        error: None,
        runner_id: None,
    };
    store.update_step(step.id, &running).await.unwrap();
    let ended = StepChange { status, ..running };
    store.update_step(step.id, &ended).await.unwrap();
    let change = StatusChange {
        status,
        at,
        error: None,
    };
    store
        .update_workflow_status(detail.workflows[0].workflow.id, &change)
        .await
        .unwrap();
    store
        .update_build_status(detail.build.id, &change)
        .await
        .unwrap();
    detail
}

/// A server like `TestServer::start`'s whose public URL is `public_url`.
pub async fn with_public_url(public_url: &str) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = gantry_server::ServerConfig::new(dir.path());
    config.admin_token = Some(ADMIN.into());
    config.backend = gantry_server::BackendChoice::Local;
    config.no_local_runner = true;
    config.public_url = public_url.into();
    let server = gantry_server::launch(listener, config).await.unwrap();
    let base = format!("http://{}", server.addr());
    TestServer {
        server: Some(server),
        base,
        client: reqwest::Client::new(),
        dir,
    }
}

/// A server with `acme/app` and its build 1, passed, whose step `test` printed `ok`.
pub async fn with_a_passing_build() -> TestServer {
    let server = with_public_app().await;
    let status = RunStatus::Success;
    finished_build(&server, "acme/app", "refs/heads/main", status, &["ok"]).await;
    server
}
