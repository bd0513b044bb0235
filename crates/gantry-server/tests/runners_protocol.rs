//! The runner protocol spoken by hand over a real websocket: who may connect, what a
//! runner may say about which assignment (security rules 4 and 5), and how duplicates
//! after a reconnect are stored once.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use gantry_proto::*;
use gantry_server::{BackendChoice, Server, ServerConfig};
use gantry_store::{
    BuildEvent, ForgeKind, NewBuild, NewRepo, NewStep, NewToken, NewWorkflow, RunStatus, TokenRole,
    now_ms,
};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{self, Message};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const ADMIN: &str = "runners-protocol-admin-token-0123";
const PIPELINE: &str = "clone:\n  disable: true\nsteps:\n  - name: build\n    image: busybox\n    commands: [echo hi]\n";

async fn within<T>(what: &str, body: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), body)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

async fn start() -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(dir.path());
    config.backend = BackendChoice::Local;
    config.no_local_runner = true;
    config.admin_token = Some(ADMIN.into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    (gantry_server::launch(listener, config).await.unwrap(), dir)
}

async fn token(server: &Server, name: &str, role: TokenRole) -> (i64, String) {
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
async fn queue_build(server: &Server, yaml: &str) -> (i64, i64) {
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

async fn open(server: &Server, bearer: Option<&str>) -> Result<Socket, u16> {
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

fn hello(version: u32, resume: Vec<AssignmentId>) -> RunnerMessage {
    hello_with(version, resume, &[])
}

fn hello_with(version: u32, resume: Vec<AssignmentId>, labels: &[(&str, &str)]) -> RunnerMessage {
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

async fn send(socket: &mut Socket, message: &RunnerMessage) {
    socket.send(Message::text(encode(message))).await.unwrap();
}

async fn next(socket: &mut Socket) -> ServerMessage {
    loop {
        match socket.next().await.expect("open").expect("frame") {
            Message::Text(text) => return decode_server(&text).unwrap(),
            _ => continue,
        }
    }
}

/// Connects and says hello; returns the socket and the welcome.
async fn connect(server: &Server, token: &str, resume: Vec<AssignmentId>) -> (Socket, Welcome) {
    let mut socket = open(server, Some(token)).await.expect("connects");
    send(&mut socket, &hello(PROTOCOL_VERSION, resume)).await;
    match next(&mut socket).await {
        ServerMessage::Welcome(welcome) => (socket, welcome),
        other => panic!("expected a welcome, got {other:?}"),
    }
}

fn update(assignment: AssignmentId, seq: u64, state: StepState) -> RunnerMessage {
    RunnerMessage::StepUpdate(StepUpdate {
        assignment,
        seq,
        step: "build".into(),
        state,
        exit_code: None,
        error: None,
    })
}

fn logs(assignment: AssignmentId, seq: u64, step: &str, texts: &[&str]) -> RunnerMessage {
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

#[tokio::test]
async fn only_runner_tokens_connect_and_other_versions_are_refused() {
    within("auth and version", async {
        let (server, _dir) = start().await;
        assert_eq!(open(&server, None).await.err(), Some(401));
        assert_eq!(
            open(&server, Some("gantry_not_a_token_at_all_0000"))
                .await
                .err(),
            Some(401)
        );
        assert_eq!(
            open(&server, Some(ADMIN)).await.err(),
            Some(403),
            "an admin token is not a runner's"
        );
        let (id, runner) = token(&server, "r", TokenRole::Runner).await;

        let mut socket = open(&server, Some(&runner))
            .await
            .expect("a runner token connects");
        send(&mut socket, &hello(PROTOCOL_VERSION + 1, vec![])).await;
        match next(&mut socket).await {
            ServerMessage::Refused(refused) => {
                assert!(
                    refused
                        .reason
                        .contains(&format!("version {}", PROTOCOL_VERSION + 1)),
                    "{}",
                    refused.reason
                );
                assert_eq!(refused.server_version, PROTOCOL_VERSION);
            }
            other => panic!("expected a refusal, got {other:?}"),
        }

        let (_socket, welcome) = connect(&server, &runner, vec![]).await;
        assert_eq!(
            welcome.runner_id,
            format!("runner:{id}"),
            "the id comes from the token"
        );
        // The runner is listed once its session started (just after the welcome).
        let mut listed = list_runners(&server, ADMIN).await;
        while listed.1.as_array().is_some_and(Vec::is_empty) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            listed = list_runners(&server, ADMIN).await;
        }
        assert_eq!(listed.0, 200);
        assert_eq!(listed.1[0]["runner_id"], format!("runner:{id}"));
        assert_eq!(listed.1[0]["name"], "hand");
        let (_, user) = token(&server, "u", TokenRole::User).await;
        assert_eq!(
            list_runners(&server, &user).await.0,
            403,
            "only admins list runners"
        );
        server
            .state()
            .store
            .revoke_token(id, now_ms())
            .await
            .unwrap();
        assert_eq!(
            open(&server, Some(&runner)).await.err(),
            Some(401),
            "a revoked token is refused"
        );
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn sec_04_a_runner_cannot_update_log_to_finish_or_resume_another_runners_work() {
    within("forged runner", async {
        let (server, _dir) = start().await;
        let (build_id, step_id) = queue_build(&server, PIPELINE).await;
        let (id_a, token_a) = token(&server, "a", TokenRole::Runner).await;
        let (_, token_b) = token(&server, "b", TokenRole::Runner).await;
        let (mut a, _) = connect(&server, &token_a, vec![]).await;
        let assign = match next(&mut a).await {
            ServerMessage::Assign(assign) => assign,
            other => panic!("expected an assignment, got {other:?}"),
        };
        let id = assign.assignment;
        assert!(
            assign.secrets.0.is_empty(),
            "the plan uses no secret: none is sent"
        );

        // Runner B names A's assignment: every message is refused and nothing is written.
        let (mut b, _) = connect(&server, &token_b, vec![]).await;
        let done = RunnerMessage::Done(Done {
            assignment: id,
            seq: 3,
            outcome: Outcome::Success,
            error: None,
        });
        for message in [
            update(id, 1, StepState::Success),
            logs(id, 2, "build", &["forged"]),
            done,
        ] {
            send(&mut b, &message).await;
            match next(&mut b).await {
                ServerMessage::Error(error) => {
                    assert_eq!(error.assignment, Some(id));
                    assert!(
                        error.message.contains("not held by this runner"),
                        "{}",
                        error.message
                    );
                }
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
        let store = &server.state().store;
        let detail = store.build_by_id(build_id).await.unwrap().unwrap();
        assert_eq!(detail.workflows[0].steps[0].status, RunStatus::Pending);
        assert!(store.read_logs(step_id, None, 0).await.unwrap().is_empty());
        drop(b);
        let (_, welcome) = connect(&server, &token_b, vec![id]).await;
        assert!(welcome.resumed.is_empty(), "B cannot resume A's work");
        assert_eq!(welcome.dropped.len(), 1);
        let held = store
            .claimed_item(id, &format!("runner:{id_a}"))
            .await
            .unwrap();
        assert!(held.is_some(), "the assignment is still A's");
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn sec_05_statuses_move_forward_and_resent_messages_are_stored_once() {
    within("forward only", async {
        let (server, _dir) = start().await;
        let (build_id, step_id) = queue_build(&server, PIPELINE).await;
        let (_, token_a) = token(&server, "a", TokenRole::Runner).await;
        let (mut a, _) = connect(&server, &token_a, vec![]).await;
        let ServerMessage::Assign(assign) = next(&mut a).await else {
            panic!("an assignment")
        };
        let id = assign.assignment;
        let messages = [
            update(id, 1, StepState::Running),
            logs(id, 2, "build", &["one", "two"]),
            update(id, 3, StepState::Success),
            update(id, 4, StepState::Running), // late or forged: cannot move it back
        ];
        for (seq, message) in messages.iter().enumerate() {
            send(&mut a, message).await;
            assert_eq!(
                next(&mut a).await,
                ServerMessage::Ack(Ack {
                    assignment: id,
                    seq: seq as u64 + 1
                })
            );
        }
        // A step outside the assignment's workflow is refused.
        send(&mut a, &logs(id, 5, "deploy", &["elsewhere"])).await;
        assert!(matches!(next(&mut a).await, ServerMessage::Error(_)));

        // After a reconnect the runner resumes and sends the logs again: stored once.
        drop(a);
        let (mut a, welcome) = connect(&server, &token_a, vec![id]).await;
        assert_eq!(welcome.resumed, vec![id]);
        send(&mut a, &logs(id, 2, "build", &["one", "two"])).await;
        assert!(matches!(next(&mut a).await, ServerMessage::Ack(_)));
        send(
            &mut a,
            &RunnerMessage::Done(Done {
                assignment: id,
                seq: 6,
                outcome: Outcome::Success,
                error: None,
            }),
        )
        .await;
        assert_eq!(
            next(&mut a).await,
            ServerMessage::Ack(Ack {
                assignment: id,
                seq: 6
            })
        );

        let store = &server.state().store;
        let detail = store.build_by_id(build_id).await.unwrap().unwrap();
        assert_eq!(detail.workflows[0].steps[0].status, RunStatus::Success);
        assert_eq!(detail.build.status, RunStatus::Success);
        let lines = store.read_logs(step_id, None, 0).await.unwrap();
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["one", "two"]);
        server.shutdown().await;
    })
    .await;
}

/// Runner A's lease ends and its work goes to runner B; A then sends `stale` (its first
/// message since): it is refused and changes nothing. Returns the server, the build, the
/// step, the assignment and B's socket for the caller's checks.
async fn stale_holder_sends(
    stale: impl Fn(AssignmentId) -> RunnerMessage,
) -> (Server, tempfile::TempDir, i64, i64, AssignmentId, Socket) {
    let (server, dir) = start().await;
    let (build_id, step_id) = queue_build(&server, PIPELINE).await;
    let (_, token_a) = token(&server, "a", TokenRole::Runner).await;
    let (id_b, token_b) = token(&server, "b", TokenRole::Runner).await;
    let (mut a, _) = connect(&server, &token_a, vec![]).await;
    let ServerMessage::Assign(assign) = next(&mut a).await else {
        panic!("an assignment for A")
    };
    let id = assign.assignment;
    send(&mut a, &update(id, 1, StepState::Running)).await;
    assert!(matches!(next(&mut a).await, ServerMessage::Ack(_)));

    // A's lease ends (as if it went quiet) and B claims the work.
    let store = &server.state().store;
    let later = now_ms() + 3_600_000;
    let outcome = store.requeue_expired(later, 5).await.unwrap();
    assert_eq!(outcome.requeued.len(), 1, "A's item is requeued");
    server.state().live.announce_work();
    let (mut b, _) = connect(&server, &token_b, vec![]).await;
    let ServerMessage::Assign(again) = next(&mut b).await else {
        panic!("the requeued work for B")
    };
    assert_eq!(again.assignment, id);

    send(&mut a, &stale(id)).await;
    match next(&mut a).await {
        ServerMessage::Error(error) => assert!(
            error.message.contains("no longer held by this runner"),
            "{}",
            error.message
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let held = store.claimed_item(id, &format!("runner:{id_b}")).await;
    assert!(held.unwrap().is_some(), "the work is still B's");
    (server, dir, build_id, step_id, id, b)
}

#[tokio::test]
async fn sec_05_a_runner_whose_lease_ended_cannot_log_into_the_new_holders_work() {
    within("stale logs", async {
        let stale = |id| logs(id, 2, "build", &["stale"]);
        let (server, _dir, _, step_id, id, mut b) = stale_holder_sends(stale).await;
        let store = &server.state().store;
        assert!(store.read_logs(step_id, None, 0).await.unwrap().is_empty());
        // B's first line gets number 1, as if A had never written.
        send(&mut b, &logs(id, 1, "build", &["from b"])).await;
        assert!(matches!(next(&mut b).await, ServerMessage::Ack(_)));
        let lines = store.read_logs(step_id, None, 0).await.unwrap();
        let stored: Vec<(i64, &str)> = lines.iter().map(|l| (l.number, l.text.as_str())).collect();
        assert_eq!(stored, [(1, "from b")]);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn sec_05_a_runner_whose_lease_ended_cannot_finish_the_new_holders_work() {
    within("stale done", async {
        let stale = |id| {
            RunnerMessage::Done(Done {
                assignment: id,
                seq: 2,
                outcome: Outcome::Success,
                error: None,
            })
        };
        let (server, _dir, build_id, _, _, _b) = stale_holder_sends(stale).await;
        let detail = (server.state().store.build_by_id(build_id).await)
            .unwrap()
            .unwrap();
        assert!(!detail.workflows[0].workflow.status.is_terminal());
        assert!(!detail.build.status.is_terminal());
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn an_assignment_over_the_frame_limit_ends_its_workflow_instead_of_being_sent() {
    within("oversized assignment", async {
        let (server, _dir) = start().await;
        let yaml = "clone:\n  disable: true\nsteps:\n  - name: build\n    image: busybox\n    environment:\n      BIG:\n        from_secret: big\n    commands: [echo hi]\n";
        let (build_id, _) = queue_build(&server, yaml).await;
        let store = &server.state().store;
        let repo_id = store.build_by_id(build_id).await.unwrap().unwrap().build.repo_id;
        let value = gantry_store::SecretValue::new("x".repeat(5 * 1024 * 1024));
        store.set_secret(repo_id, "big", &value, now_ms()).await.unwrap();
        let (_, token_a) = token(&server, "a", TokenRole::Runner).await;
        let (mut a, _) = connect(&server, &token_a, vec![]).await;
        let workflow = loop {
            let detail = store.build_by_id(build_id).await.unwrap().unwrap();
            if detail.workflows[0].workflow.status.is_terminal() {
                break detail.workflows[0].workflow.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(workflow.status, RunStatus::Error);
        let error = workflow.error.unwrap_or_default();
        assert!(
            error.contains("the plan with its secrets is 5.0 MiB; the limit is 4 MiB"),
            "{error}"
        );
        // Nothing was sent: the first frame the runner gets is the answer to its next
        // message (an assignment would have come before it).
        send(&mut a, &logs(999_999, 1, "build", &["probe"])).await;
        let answer = next(&mut a).await;
        assert!(matches!(answer, ServerMessage::Error(_)), "{answer:?}");
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn sec_05_a_reported_success_cannot_hide_a_failed_or_unfinished_step() {
    within("derived outcome", async {
        for (step, expected) in [
            (StepState::Failure, RunStatus::Failure),
            (StepState::Running, RunStatus::Error),
        ] {
            let (server, _dir) = start().await;
            let (build_id, _) = queue_build(&server, PIPELINE).await;
            let (_, token_a) = token(&server, "a", TokenRole::Runner).await;
            let (mut a, _) = connect(&server, &token_a, vec![]).await;
            let ServerMessage::Assign(assign) = next(&mut a).await else {
                panic!("an assignment")
            };
            let id = assign.assignment;
            let done = RunnerMessage::Done(Done {
                assignment: id,
                seq: 2,
                outcome: Outcome::Success,
                error: None,
            });
            for message in [update(id, 1, step), done] {
                send(&mut a, &message).await;
                assert!(matches!(next(&mut a).await, ServerMessage::Ack(_)));
            }
            let store = &server.state().store;
            let detail = store.build_by_id(build_id).await.unwrap().unwrap();
            assert_eq!(detail.workflows[0].workflow.status, expected, "{step:?}");
            assert_eq!(detail.build.status, expected, "{step:?}");
            server.shutdown().await;
        }
    })
    .await;
}

#[tokio::test]
async fn sec_05_a_runner_cannot_approve_an_approval_step_itself() {
    within("self-approval", async {
        let (server, _dir) = start().await;
        let yaml = "clone:\n  disable: true\nsteps:\n  - name: gate\n    approval:\n      timeout: 1h\n  - name: build\n    image: busybox\n    commands: [echo hi]\n    depends_on: [gate]\n";
        let (build_id, gate_id) = queue_build(&server, yaml).await;
        let (_, token_a) = token(&server, "a", TokenRole::Runner).await;
        let (mut a, _) = connect(&server, &token_a, vec![]).await;
        let ServerMessage::Assign(assign) = next(&mut a).await else {
            panic!("an assignment")
        };
        let id = assign.assignment;
        let gate = |seq, state| match update(id, seq, state) {
            RunnerMessage::StepUpdate(u) => RunnerMessage::StepUpdate(StepUpdate {
                step: "gate".into(),
                ..u
            }),
            other => other,
        };
        send(&mut a, &gate(1, StepState::Blocked)).await;
        assert!(matches!(next(&mut a).await, ServerMessage::Ack(_)));
        send(&mut a, &gate(2, StepState::Success)).await;
        match next(&mut a).await {
            ServerMessage::Error(e) => assert!(e.message.contains("no recorded approval"), "{}", e.message),
            other => panic!("expected a refusal, got {other:?}"),
        }
        let store = &server.state().store;
        let status = |detail: gantry_store::BuildDetail| detail.workflows[0].steps[0].status;
        let detail = store.build_by_id(build_id).await.unwrap().unwrap();
        assert_eq!(status(detail), RunStatus::Blocked);

        // Once a person approves, the same report is stored.
        let approval = gantry_store::Approval {
            by: "alice".into(),
            at: now_ms(),
            decision: gantry_store::ApprovalDecision::Approved,
        };
        assert!(store.decide_approval(gate_id, &approval).await.unwrap());
        send(&mut a, &gate(3, StepState::Success)).await;
        loop {
            match next(&mut a).await {
                ServerMessage::Decision(_) => continue,
                ServerMessage::Ack(ack) => break assert_eq!(ack.seq, 3),
                other => panic!("expected an ack, got {other:?}"),
            }
        }
        let detail = store.build_by_id(build_id).await.unwrap().unwrap();
        assert_eq!(status(detail), RunStatus::Success);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn sec_09_secrets_a_runner_sends_are_masked_by_the_server() {
    within("server-side masking", async {
        let (server, _dir) = start().await;
        let yaml = "clone:\n  disable: true\nsteps:\n  - name: build\n    image: busybox\n    environment:\n      TOKEN:\n        from_secret: token\n    commands: [echo hi]\n";
        let (build_id, step_id) = queue_build(&server, yaml).await;
        let store = &server.state().store;
        let repo_id = store.build_by_id(build_id).await.unwrap().unwrap().build.repo_id;
        let secret = "hunter2-remote-secret";
        let value = gantry_store::SecretValue::new(secret.to_string());
        store.set_secret(repo_id, "token", &value, now_ms()).await.unwrap();
        let mut events = server.state().live.subscribe_events();
        let (_, token_a) = token(&server, "a", TokenRole::Runner).await;
        let (mut a, _) = connect(&server, &token_a, vec![]).await;
        let ServerMessage::Assign(assign) = next(&mut a).await else {
            panic!("an assignment")
        };
        let id = assign.assignment;
        let failed = RunnerMessage::StepUpdate(StepUpdate {
            assignment: id,
            seq: 3,
            step: "build".into(),
            state: StepState::Failure,
            exit_code: Some(1),
            error: Some(format!("exit 1: {secret}")),
        });
        let done = RunnerMessage::Done(Done {
            assignment: id,
            seq: 4,
            outcome: Outcome::Error,
            error: Some(format!("gave up: {secret}")),
        });
        let leak = format!("the token is {secret}");
        for message in [
            update(id, 1, StepState::Running),
            logs(id, 2, "build", &[&leak]),
            failed,
            done,
        ] {
            send(&mut a, &message).await;
            assert!(matches!(next(&mut a).await, ServerMessage::Ack(_)));
        }
        let lines = store.read_logs(step_id, None, 0).await.unwrap();
        assert_eq!(lines.len(), 1);
        assert!(lines[0].text.starts_with("the token is "), "{}", lines[0].text);
        let detail = store.build_by_id(build_id).await.unwrap().unwrap();
        let stored = [
            lines[0].text.clone(),
            detail.workflows[0].steps[0].error.clone().unwrap_or_default(),
            detail.workflows[0].workflow.error.clone().unwrap_or_default(),
        ];
        assert!(stored[1].starts_with("exit 1: ") && stored[2].starts_with("gave up: "));
        let mut published = Vec::new();
        while let Ok(event) = events.try_recv() {
            published.extend(event.error);
        }
        assert!(!published.is_empty(), "the step's error was published");
        for text in stored.iter().chain(&published) {
            assert!(!text.contains(secret), "secret leaked: {text}");
        }
        server.shutdown().await;
    })
    .await;
}

/// The `waiting_for` of the build's first workflow, as the API shows it.
async fn waiting_for(server: &Server) -> Option<String> {
    let url = format!("http://{}/api/repos/o/r/builds/1", server.addr());
    let answer: serde_json::Value = reqwest::Client::new()
        .get(url)
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["workflows"][0]["waiting_for"]
        .as_str()
        .map(String::from)
}

#[tokio::test]
async fn work_no_connected_runner_can_take_says_which_runner_it_waits_for() {
    within("waiting for a runner", async {
        let (server, _dir) = start().await;
        let yaml = "labels:\n  os: linux\n  gpu: \"true\"\nclone:\n  disable: true\nsteps:\n  - name: build\n    image: busybox\n    commands: [nvidia-smi]\n";
        queue_build(&server, yaml).await;
        let reason = waiting_for(&server).await;
        assert_eq!(reason.as_deref(), Some("waiting for a runner with gpu=true,os=linux"));

        // A runner without the gpu label changes nothing; one with it takes the work.
        let (_, token_a) = token(&server, "cpu", TokenRole::Runner).await;
        let mut cpu = open(&server, Some(&token_a)).await.unwrap();
        send(&mut cpu, &hello_with(PROTOCOL_VERSION, vec![], &[("os", "linux")])).await;
        assert!(matches!(next(&mut cpu).await, ServerMessage::Welcome(_)));
        assert!(waiting_for(&server).await.is_some());
        let (_, token_b) = token(&server, "gpu", TokenRole::Runner).await;
        let mut gpu = open(&server, Some(&token_b)).await.unwrap();
        let labels = [("os", "linux"), ("gpu", "true")];
        send(&mut gpu, &hello_with(PROTOCOL_VERSION, vec![], &labels)).await;
        assert!(matches!(next(&mut gpu).await, ServerMessage::Welcome(_)));
        assert!(matches!(next(&mut gpu).await, ServerMessage::Assign(_)));
        assert_eq!(waiting_for(&server).await, None);
        server.shutdown().await;
    })
    .await;
}

/// `GET /api/runners` with a token: status and answer.
async fn list_runners(server: &Server, bearer: &str) -> (u16, serde_json::Value) {
    let url = format!("http://{}/api/runners", server.addr());
    let answer = reqwest::Client::new()
        .get(url)
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or_default())
}
