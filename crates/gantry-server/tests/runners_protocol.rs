//! The runner protocol spoken by hand over a real websocket: who may connect, what a
//! runner may say about which assignment (security rules 4 and 5), and how duplicates
//! after a reconnect are stored once.

mod runners_support;

use runners_support::*;

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

        // After a reconnect the runner resumes and sends the logs again: stored once. (The
        // server does not know what the runner had acknowledged: the first message after
        // a resume sets where the sequence goes on.)
        drop(a);
        let (mut a, welcome) = connect(&server, &token_a, vec![id]).await;
        assert_eq!(welcome.resumed, vec![id]);
        send(&mut a, &logs(id, 2, "build", &["one", "two"])).await;
        assert!(matches!(next(&mut a).await, ServerMessage::Ack(_)));
        send(
            &mut a,
            &RunnerMessage::Done(Done {
                assignment: id,
                seq: 3,
                outcome: Outcome::Success,
                error: None,
            }),
        )
        .await;
        assert_eq!(
            next(&mut a).await,
            ServerMessage::Ack(Ack {
                assignment: id,
                seq: 3
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
