//! What the server refuses or repairs in what a runner sends: a holder whose lease ended,
//! an assignment over the frame limit, an outcome that hides a failed step, a runner
//! approving its own approval step, and secrets in its lines and errors (rules 5 and 9).

mod runners_support;

use runners_support::*;

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
