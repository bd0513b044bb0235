//! Speaking the runner protocol by hand over a real websocket: a server, runner tokens,
//! queued builds and the messages a runner sends.
#![allow(dead_code, unused_imports)]

pub use std::time::Duration;

pub use futures_util::{SinkExt as _, StreamExt as _};
pub use gantry_proto::*;
pub use gantry_server::{BackendChoice, Server, ServerConfig};
pub use gantry_store::{
    BuildEvent, ForgeKind, NewBuild, NewRepo, NewStep, NewToken, NewWorkflow, RunStatus, TokenRole,
    now_ms,
};
pub use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
pub use tokio_tungstenite::tungstenite::{self, Message};

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub const ADMIN: &str = "runners-protocol-admin-token-0123";
pub const PIPELINE: &str = "clone:\n  disable: true\nsteps:\n  - name: build\n    image: busybox\n    commands: [echo hi]\n";

pub async fn within<T>(what: &str, body: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), body)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

pub async fn start() -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(dir.path());
    config.backend = BackendChoice::Local;
    config.no_local_runner = true;
    config.admin_token = Some(ADMIN.into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    (gantry_server::launch(listener, config).await.unwrap(), dir)
}

pub async fn token(server: &Server, name: &str, role: TokenRole) -> (i64, String) {
    let new = NewToken {
        name: name.into(),
        subject: name.into(),
        role,
        scope: None,
    };
    let (stored, plaintext) = server
        .state()
        .store
        .create_token(&new, now_ms())
        .await
        .unwrap();
    (stored.id, plaintext.expose().to_string())
}

/// Queues one build of `PIPELINE`; returns its id and its step's id.
pub async fn queue_build(server: &Server, yaml: &str) -> (i64, i64) {
    let store = &server.state().store;
    let repo = NewRepo::new(
        "o",
        "r",
        ForgeKind::Generic,
        "file:///x.git",
        "hook-secret-0123456789",
    );
    let repo = store.create_repo(&repo).await.unwrap();
    let ctx = gantry_pipeline::CompileContext {
        repo: "o/r".into(),
        sha: "0123456789abcdef0123456789abcdef01234567".into(),
        clone: false,
        ..Default::default()
    };
    let plan = gantry_pipeline::compile(".pipeline.yml", yaml, &ctx)
        .unwrap()
        .plans
        .remove(0);
    let workflow = NewWorkflow {
        name: plan.name.clone(),
        plan: serde_json::to_string(&plan).unwrap(),
        labels: plan.labels.clone(),
        steps: (plan.steps.iter())
            .map(|s| NewStep {
                name: s.name.clone(),
                kind: match s.kind {
                    gantry_pipeline::plan::StepKind::Approval => "approval".into(),
                    _ => "commands".into(),
                },
                needs: vec![],
            })
            .collect(),
    };
    let build = NewBuild {
        repo_id: repo.id,
        event: BuildEvent::Manual,
        git_ref: "refs/heads/main".into(),
        sha: ctx.sha.clone(),
        before: String::new(),
        message: String::new(),
        author: String::new(),
        sender: "t".into(),
        status: RunStatus::Pending,
        error: None,
        parent_id: None,
        deploy_target: None,
        diagnostics: None,
        created_at: now_ms(),
    };
    let detail = store.create_build(&build, &[workflow]).await.unwrap();
    server.state().live.announce_work();
    (detail.build.id, detail.workflows[0].steps[0].id)
}

pub async fn open(server: &Server, bearer: Option<&str>) -> Result<Socket, u16> {
    let url = format!("ws://{}{CONNECT_PATH}", server.addr());
    let mut request = url.into_client_request().unwrap();
    if let Some(token) = bearer {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(other) => panic!("connect: {other}"),
    }
}

pub fn hello(version: u32, resume: Vec<AssignmentId>) -> RunnerMessage {
    hello_with(version, resume, &[])
}

pub fn hello_with(
    version: u32,
    resume: Vec<AssignmentId>,
    labels: &[(&str, &str)],
) -> RunnerMessage {
    RunnerMessage::Hello(Hello {
        version,
        runner_name: "hand".into(),
        labels: (labels.iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        capacity: 1,
        backends: vec!["local".into()],
        resume,
    })
}

pub async fn send(socket: &mut Socket, message: &RunnerMessage) {
    socket.send(Message::text(encode(message))).await.unwrap();
}

pub async fn next(socket: &mut Socket) -> ServerMessage {
    loop {
        match socket.next().await.expect("open").expect("frame") {
            Message::Text(text) => return decode_server(&text).unwrap(),
            _ => continue,
        }
    }
}

/// Connects and says hello; returns the socket and the welcome.
pub async fn connect(server: &Server, token: &str, resume: Vec<AssignmentId>) -> (Socket, Welcome) {
    let mut socket = open(server, Some(token)).await.expect("connects");
    send(&mut socket, &hello(PROTOCOL_VERSION, resume)).await;
    match next(&mut socket).await {
        ServerMessage::Welcome(welcome) => (socket, welcome),
        other => panic!("expected a welcome, got {other:?}"),
    }
}

pub fn update(assignment: AssignmentId, seq: u64, state: StepState) -> RunnerMessage {
    RunnerMessage::StepUpdate(StepUpdate {
        assignment,
        seq,
        step: "build".into(),
        state,
        exit_code: None,
        error: None,
    })
}

pub fn logs(assignment: AssignmentId, seq: u64, step: &str, texts: &[&str]) -> RunnerMessage {
    let lines = (texts.iter().enumerate())
        .map(|(i, t)| LogLine {
            number: i as u64 + 1,
            stream: Stream::Stdout,
            text: (*t).into(),
            elapsed_ms: 0,
        })
        .collect();
    RunnerMessage::Logs(Logs {
        assignment,
        seq,
        step: step.into(),
        lines,
    })
}
