//! What a runner cannot make the server spend: one approval waiter per step however often
//! it reports the step blocked, and no lease write for heartbeats in a loop or for the
//! log batches between two heartbeats — while a cancelled build or a lease that passed to
//! another runner still takes effect at once; and a `done` the store fails to complete is
//! not taken from the runner.

mod runners_support;

use runners_support::*;

const GATED: &str = "clone:\n  disable: true\nsteps:\n  - name: gate\n    approval:\n      timeout: 1h\n  - name: build\n    image: busybox\n    commands: [echo hi]\n    depends_on: [gate]\n";

/// `POST` to the API as the admin; returns the status.
async fn post_admin(server: &Server, path: &str) -> u16 {
    let url = format!("http://{}{path}", server.addr());
    let answer = reqwest::Client::new()
        .post(url)
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    answer.status().as_u16()
}

/// The lease end the store holds for the assignment.
async fn lease_until(server: &Server, id: AssignmentId, runner: i64) -> i64 {
    let item = (server.state().store)
        .claimed_item(id, &format!("runner:{runner}"))
        .await
        .unwrap()
        .expect("the runner holds its assignment");
    item.lease_until.expect("a claimed item has a lease")
}

fn step_update(id: AssignmentId, seq: u64, step: &str, state: StepState) -> RunnerMessage {
    RunnerMessage::StepUpdate(StepUpdate {
        assignment: id,
        seq,
        step: step.into(),
        state,
        exit_code: None,
        error: None,
    })
}

/// A batch of one line of the step `build`, numbered `number`.
fn line(id: AssignmentId, seq: u64, number: u64) -> RunnerMessage {
    RunnerMessage::Logs(Logs {
        assignment: id,
        seq,
        step: "build".into(),
        lines: vec![LogLine {
            number,
            stream: Stream::Stdout,
            text: format!("line {number}"),
            elapsed_ms: 0,
        }],
    })
}

/// Sends `message` and reads up to its ack, counting the decisions that came first.
async fn acked(socket: &mut Socket, message: &RunnerMessage) -> usize {
    send(socket, message).await;
    let (_, seq) = message.sequenced().unwrap();
    let mut decisions = 0;
    loop {
        match next(socket).await {
            ServerMessage::Ack(ack) if ack.seq == seq => return decisions,
            ServerMessage::Decision(_) => decisions += 1,
            other => panic!("expected the ack of {seq}, got {other:?}"),
        }
    }
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

#[tokio::test]
async fn a_step_reported_blocked_again_and_again_has_one_waiter_and_one_decision() {
    within("one waiter per step", async {
        let (server, _dir) = start().await;
        queue_build(&server, GATED).await;
        let (_, token_a) = token(&server, "a", TokenRole::Runner).await;
        let (mut a, _) = connect(&server, &token_a, vec![]).await;
        let ServerMessage::Assign(assign) = next(&mut a).await else {
            panic!("an assignment")
        };
        let id = assign.assignment;
        acked(&mut a, &step_update(id, 1, "gate", StepState::Blocked)).await;
        let before = alive_tasks();
        for seq in 2..=200 {
            acked(&mut a, &step_update(id, seq, "gate", StepState::Blocked)).await;
        }
        let after = alive_tasks();
        assert!(
            after < before + 20,
            "199 more blocked reports left {} more tasks alive",
            after - before
        );

        assert_eq!(
            post_admin(&server, "/api/repos/o/r/builds/1/steps/gate/approve").await,
            200
        );
        let decision = match next(&mut a).await {
            ServerMessage::Decision(decision) => decision,
            other => panic!("expected the decision, got {other:?}"),
        };
        assert!(decision.approved && decision.step == "gate", "{decision:?}");
        // Only one waiter existed: no other decision comes before the next ack, nor for
        // a blocked report after the decision.
        let probe = logs(id, 201, "gate", &["waiting done"]);
        assert_eq!(acked(&mut a, &probe).await, 0);
        let again = step_update(id, 202, "gate", StepState::Blocked);
        assert_eq!(acked(&mut a, &again).await, 0);
        let success = step_update(id, 203, "gate", StepState::Success);
        assert_eq!(acked(&mut a, &success).await, 0);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn heartbeats_in_a_loop_and_log_batches_between_heartbeats_write_no_lease() {
    within("lease writes", async {
        let started = std::time::Instant::now();
        let (server, _dir) = start().await;
        let (_, step_id) = queue_build(&server, PIPELINE).await;
        let (runner, token_a) = token(&server, "a", TokenRole::Runner).await;
        let (mut a, _) = connect(&server, &token_a, vec![]).await;
        let ServerMessage::Assign(assign) = next(&mut a).await else {
            panic!("an assignment")
        };
        let id = assign.assignment;
        let claimed = lease_until(&server, id, runner).await;
        acked(&mut a, &update(id, 1, StepState::Running)).await;
        for seq in 2..=41 {
            for _ in 0..25 {
                send(&mut a, &RunnerMessage::Heartbeat).await;
            }
            acked(&mut a, &line(id, seq, seq - 1)).await;
        }
        let lines = (server.state().store)
            .read_logs(step_id, None, 0)
            .await
            .unwrap();
        assert_eq!(lines.len(), 40, "every batch is stored, each in its turn");
        // A lease is written again once a quarter of it passed (2.5 s): when the machine
        // was quick enough for all of the above to fit in that, nothing was written since
        // the claim (1,000 heartbeats and 41 messages).
        let quarter = Duration::from_millis(LEASE_MS_FOR_TESTS / 4);
        if started.elapsed() < quarter {
            assert_eq!(lease_until(&server, id, runner).await, claimed);
        }

        // Once it is due, a heartbeat writes it.
        tokio::time::sleep(quarter + Duration::from_millis(200)).await;
        send(&mut a, &RunnerMessage::Heartbeat).await;
        let mut extended = lease_until(&server, id, runner).await;
        while extended == claimed {
            tokio::time::sleep(Duration::from_millis(20)).await;
            extended = lease_until(&server, id, runner).await;
        }
        assert!(extended > claimed);
        // And the next batches, within the new lease's first quarter, write nothing.
        let rewritten = std::time::Instant::now();
        acked(&mut a, &line(id, 42, 41)).await;
        if rewritten.elapsed() < quarter {
            assert_eq!(lease_until(&server, id, runner).await, extended);
        }
        server.shutdown().await;
    })
    .await;
}

/// The lease a test expects (the protocol's default; the welcome says it too).
const LEASE_MS_FOR_TESTS: u64 = DEFAULT_LEASE_MS;

#[tokio::test]
async fn a_cancelled_build_refuses_the_runners_next_message_despite_a_fresh_lease() {
    within("cancel and the cached lease", async {
        let (server, _dir) = start().await;
        let (build_id, step_id) = queue_build(&server, PIPELINE).await;
        let (_, token_a) = token(&server, "a", TokenRole::Runner).await;
        let (mut a, _) = connect(&server, &token_a, vec![]).await;
        let ServerMessage::Assign(assign) = next(&mut a).await else {
            panic!("an assignment")
        };
        let id = assign.assignment;
        acked(&mut a, &update(id, 1, StepState::Running)).await;
        acked(&mut a, &logs(id, 2, "build", &["before"])).await;

        assert_eq!(
            post_admin(&server, "/api/repos/o/r/builds/1/cancel").await,
            200
        );
        match next(&mut a).await {
            ServerMessage::Cancel(cancel) => assert_eq!(cancel.assignment, id),
            other => panic!("expected a cancel, got {other:?}"),
        }
        // The lease was written a moment ago, but the cancel ended it in the store.
        send(&mut a, &logs(id, 3, "build", &["after"])).await;
        match next(&mut a).await {
            ServerMessage::Error(error) => {
                assert_eq!(error.assignment, Some(id));
                assert!(
                    error.message.contains("no longer held"),
                    "{}",
                    error.message
                );
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        let store = &server.state().store;
        let lines = store.read_logs(step_id, None, 0).await.unwrap();
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["before"]);
        let detail = store.build_by_id(build_id).await.unwrap().unwrap();
        assert_eq!(detail.build.status, RunStatus::Killed);
        assert_eq!(detail.workflows[0].steps[0].status, RunStatus::Killed);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_runner_whose_lease_passed_to_another_cannot_move_its_steps_despite_the_cache() {
    within("stale step update", async {
        let (server, _dir) = start().await;
        let (build_id, _) = queue_build(&server, PIPELINE).await;
        let (_, token_a) = token(&server, "a", TokenRole::Runner).await;
        let (_, token_b) = token(&server, "b", TokenRole::Runner).await;
        let (mut a, _) = connect(&server, &token_a, vec![]).await;
        let ServerMessage::Assign(assign) = next(&mut a).await else {
            panic!("an assignment for A")
        };
        let id = assign.assignment;
        acked(&mut a, &update(id, 1, StepState::Running)).await;

        // A's lease ends (the keeper is asked as if an hour had passed) and B claims the
        // work while A's lease, as A's session last wrote it, has most of it left.
        let store = &server.state().store;
        let outcome = store
            .requeue_expired(now_ms() + 3_600_000, 5)
            .await
            .unwrap();
        assert_eq!(outcome.requeued.len(), 1);
        server.state().live.announce_work();
        let (mut b, _) = connect(&server, &token_b, vec![]).await;
        let ServerMessage::Assign(again) = next(&mut b).await else {
            panic!("the requeued work for B")
        };
        assert_eq!(again.assignment, id);
        acked(&mut b, &update(id, 1, StepState::Running)).await;

        send(&mut a, &update(id, 2, StepState::Success)).await;
        match next(&mut a).await {
            ServerMessage::Error(error) => {
                assert!(
                    error.message.contains("no longer held"),
                    "{}",
                    error.message
                )
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        let detail = store.build_by_id(build_id).await.unwrap().unwrap();
        assert_eq!(detail.workflows[0].steps[0].status, RunStatus::Running);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_done_the_store_cannot_complete_stays_the_runners_to_send_again() {
    within("done on a failing store", async {
        let (server, _dir) = start().await;
        queue_build(&server, PIPELINE).await;
        let (_, token_a) = token(&server, "a", TokenRole::Runner).await;
        let (mut a, _) = connect(&server, &token_a, vec![]).await;
        let ServerMessage::Assign(assign) = next(&mut a).await else {
            panic!("an assignment")
        };
        let id = assign.assignment;
        acked(&mut a, &update(id, 1, StepState::Success)).await;

        // The database goes away: the done cannot be stored, but the assignment is not
        // taken from the runner (an error naming it would make the runner drop it).
        server.state().store.close().await;
        let done = RunnerMessage::Done(Done {
            assignment: id,
            seq: 2,
            outcome: Outcome::Success,
            error: None,
        });
        for _ in 0..2 {
            send(&mut a, &done).await;
            match next(&mut a).await {
                ServerMessage::Error(error) => {
                    assert_eq!(error.assignment, None, "{}", error.message);
                    assert!(
                        error.message.contains("could not complete assignment"),
                        "{}",
                        error.message
                    );
                }
                other => panic!("expected an error, got {other:?}"),
            }
        }
        server.shutdown().await;
    })
    .await;
}
