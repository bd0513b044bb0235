//! What a runner's session holds to whatever the runner sends: a revoked token claims
//! nothing and is disconnected even when the runner never heartbeats, and only heartbeats
//! (or stored messages) keep a connection alive.

mod runners_support;

use runners_support::*;

/// What the server did while the runner kept sending frames that are not heartbeats.
#[derive(Debug, PartialEq)]
enum Seen {
    /// The connection closed.
    Closed,
    /// An assignment came.
    Assigned,
}

/// Sends a frame that is not a heartbeat every 200 ms (a log batch of an assignment the
/// runner does not hold) until the server assigns work or closes the connection.
async fn chatter_until_closed_or_assigned(socket: &mut Socket) -> Seen {
    let junk = logs(987_654, 1, "build", &["not a heartbeat"]);
    let mut every = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = every.tick() => {
                if socket.send(Message::text(encode(&junk))).await.is_err() {
                    return Seen::Closed;
                }
            }
            frame = socket.next() => match frame {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Seen::Closed,
                Some(Ok(Message::Text(text))) => {
                    if let Ok(ServerMessage::Assign(_)) = decode_server(&text) {
                        return Seen::Assigned;
                    }
                }
                Some(Ok(_)) => {}
            },
        }
    }
}

#[tokio::test]
async fn a_revoked_token_claims_nothing_and_is_disconnected_without_heartbeats() {
    within("revocation without heartbeats", async {
        let (server, _dir) = start().await;
        let (id, runner) = token(&server, "r", TokenRole::Runner).await;
        let (mut socket, _) = connect(&server, &runner, vec![]).await;
        let store = &server.state().store;
        assert!(store.revoke_token(id, now_ms()).await.unwrap());
        // Work with secrets arrives after the revocation; the runner never heartbeats but
        // keeps sending other frames.
        let (build_id, _) = queue_build(&server, PIPELINE).await;
        assert_eq!(
            chatter_until_closed_or_assigned(&mut socket).await,
            Seen::Closed
        );
        let detail = store.build_by_id(build_id).await.unwrap().unwrap();
        assert_eq!(
            detail.build.status,
            RunStatus::Pending,
            "nothing was claimed"
        );
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn frames_that_are_not_heartbeats_do_not_keep_a_connection_alive() {
    within("idle check", async {
        let (server, _dir) = start().await;
        let (_, runner) = token(&server, "r", TokenRole::Runner).await;
        let (mut socket, welcome) = connect(&server, &runner, vec![]).await;
        let started = std::time::Instant::now();
        assert_eq!(
            chatter_until_closed_or_assigned(&mut socket).await,
            Seen::Closed
        );
        // Closed for silence (a lease without a heartbeat), not at once.
        assert!(started.elapsed() >= Duration::from_millis(welcome.lease_ms));
        server.shutdown().await;
    })
    .await;
}

/// Sends `message` and reads its ack.
async fn acked(socket: &mut Socket, message: &RunnerMessage) {
    send(socket, message).await;
    let (_, seq) = message.sequenced().unwrap();
    match next(socket).await {
        ServerMessage::Ack(ack) if ack.seq == seq => {}
        other => panic!("expected the ack of {seq}, got {other:?}"),
    }
}

/// True once the server closed the connection (frames that came first are skipped).
async fn closed(socket: &mut Socket) -> bool {
    loop {
        match socket.next().await {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return true,
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn a_message_after_a_missing_one_is_not_stored_and_the_reconnect_sends_both() {
    within("sequence gap", async {
        let (server, _dir) = start().await;
        let (build_id, step_id) = queue_build(&server, PIPELINE).await;
        let (_, runner) = token(&server, "r", TokenRole::Runner).await;
        let (mut socket, _) = connect(&server, &runner, vec![]).await;
        let ServerMessage::Assign(assign) = next(&mut socket).await else {
            panic!("an assignment")
        };
        let id = assign.assignment;
        acked(&mut socket, &update(id, 1, StepState::Running)).await;
        // Message 2 (a log batch) was refused without an ack, say, and never came again on
        // this connection: message 3 must not be stored, or its (cumulative) ack would make
        // the runner forget message 2.
        send(&mut socket, &update(id, 3, StepState::Success)).await;
        match next(&mut socket).await {
            ServerMessage::Error(error) => {
                assert_eq!(error.assignment, None, "the runner keeps its assignment");
                assert!(
                    error.message.contains("came before message 2"),
                    "{}",
                    error.message
                );
            }
            other => panic!("expected an error, got {other:?}"),
        }
        assert!(closed(&mut socket).await, "the connection closes");
        let store = &server.state().store;
        let detail = store.build_by_id(build_id).await.unwrap().unwrap();
        assert_eq!(detail.workflows[0].steps[0].status, RunStatus::Running);

        // The reconnect sends every message not acknowledged, in order.
        let (mut socket, welcome) = connect(&server, &runner, vec![id]).await;
        assert_eq!(welcome.resumed, [id]);
        acked(&mut socket, &logs(id, 2, "build", &["hi"])).await;
        acked(&mut socket, &update(id, 3, StepState::Success)).await;
        let lines = store.read_logs(step_id, None, 0).await.unwrap();
        assert_eq!(lines.len(), 1);
        let detail = store.build_by_id(build_id).await.unwrap().unwrap();
        assert_eq!(detail.workflows[0].steps[0].status, RunStatus::Success);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_done_sent_again_after_its_completion_committed_ends_the_workflow_once() {
    within("done after a lost answer", async {
        let (server, _dir) = start().await;
        let (build_id, _) = queue_build(&server, PIPELINE).await;
        let (runner, token_a) = token(&server, "a", TokenRole::Runner).await;
        let (mut socket, _) = connect(&server, &token_a, vec![]).await;
        let ServerMessage::Assign(assign) = next(&mut socket).await else {
            panic!("an assignment")
        };
        let id = assign.assignment;
        acked(&mut socket, &update(id, 1, StepState::Success)).await;

        // The completion committed but its answer was lost (the statuses were not
        // written): the item is done by this runner when its done comes again, after the
        // lease the session cached is due to be checked.
        let store = &server.state().store;
        let runner_id = format!("runner:{runner}");
        let completed = store.complete_item(id, &runner_id).await.unwrap();
        assert_eq!(completed, gantry_store::Completion::Completed);
        tokio::time::sleep(Duration::from_millis(DEFAULT_LEASE_MS / 4 + 300)).await;
        let mut events = server.state().live.subscribe_events();
        let done = RunnerMessage::Done(Done {
            assignment: id,
            seq: 2,
            outcome: Outcome::Success,
            error: None,
        });
        acked(&mut socket, &done).await;
        let detail = store.build_by_id(build_id).await.unwrap().unwrap();
        assert_eq!(detail.workflows[0].workflow.status, RunStatus::Success);
        assert_eq!(detail.build.status, RunStatus::Success);
        assert!(detail.build.finished_at.is_some());
        let mut build_events = 0;
        while let Ok(event) = events.try_recv() {
            if event.kind == gantry_server::live::EventKind::Build {
                build_events += 1;
            }
        }
        assert_eq!(build_events, 1, "the build's end was published once");
        server.shutdown().await;
    })
    .await;
}

/// Completes the item as if a `done` had committed with its answer lost; returns the
/// build, the socket and the assignment.
async fn completed_without_answer(
    server: &Server,
    token: &str,
    runner: i64,
) -> (Socket, AssignmentId) {
    let (mut socket, _) = connect(server, token, vec![]).await;
    let ServerMessage::Assign(assign) = next(&mut socket).await else {
        panic!("an assignment")
    };
    let id = assign.assignment;
    acked(&mut socket, &update(id, 1, StepState::Success)).await;
    let store = &server.state().store;
    let completed = store
        .complete_item(id, &format!("runner:{runner}"))
        .await
        .unwrap();
    assert_eq!(completed, gantry_store::Completion::Completed);
    (socket, id)
}

/// The build's status as stored.
async fn build_status(server: &Server, build_id: i64) -> RunStatus {
    let detail = server.state().store.build_by_id(build_id).await;
    detail.unwrap().unwrap().build.status
}

fn success(id: AssignmentId, seq: u64) -> RunnerMessage {
    RunnerMessage::Done(Done {
        assignment: id,
        seq,
        outcome: Outcome::Success,
        error: None,
    })
}

#[tokio::test]
async fn a_heartbeat_after_a_completion_whose_answer_was_lost_keeps_the_assignment() {
    within("heartbeat after a lost done answer", async {
        let (server, _dir) = start().await;
        let (build_id, _) = queue_build(&server, PIPELINE).await;
        let (runner, token_a) = token(&server, "a", TokenRole::Runner).await;
        let (mut socket, id) = completed_without_answer(&server, &token_a, runner).await;
        // The cached lease is due: the heartbeat checks it in the store, where the item
        // is done by this runner. No cancel comes: the next frame is the done's ack.
        tokio::time::sleep(Duration::from_millis(DEFAULT_LEASE_MS / 4 + 300)).await;
        send(&mut socket, &RunnerMessage::Heartbeat).await;
        acked(&mut socket, &success(id, 2)).await;
        assert_eq!(build_status(&server, build_id).await, RunStatus::Success);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_resume_after_a_completion_whose_answer_was_lost_takes_the_done_again() {
    within("resume after a lost done answer", async {
        let (server, _dir) = start().await;
        let (build_id, _) = queue_build(&server, PIPELINE).await;
        let (runner, token_a) = token(&server, "a", TokenRole::Runner).await;
        let (socket, id) = completed_without_answer(&server, &token_a, runner).await;
        drop(socket);
        let (mut socket, welcome) = connect(&server, &token_a, vec![id]).await;
        assert_eq!(welcome.resumed, vec![id]);
        assert!(welcome.dropped.is_empty(), "{:?}", welcome.dropped);
        acked(&mut socket, &success(id, 2)).await;
        assert_eq!(build_status(&server, build_id).await, RunStatus::Success);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_message_refused_for_good_names_no_assignment_and_the_work_goes_on() {
    within("refusal for good", async {
        let (server, _dir) = start().await;
        let (build_id, _) = queue_build(&server, PIPELINE).await;
        let (_, token_a) = token(&server, "a", TokenRole::Runner).await;
        let (mut socket, _) = connect(&server, &token_a, vec![]).await;
        let ServerMessage::Assign(assign) = next(&mut socket).await else {
            panic!("an assignment")
        };
        let id = assign.assignment;
        // A step outside the workflow: refused, without the assignment (a runner stops
        // the work an error names).
        send(&mut socket, &logs(id, 1, "deploy", &["elsewhere"])).await;
        match next(&mut socket).await {
            ServerMessage::Error(error) => {
                assert_eq!(error.assignment, None);
                assert!(error.message.contains("deploy"), "{}", error.message);
            }
            other => panic!("expected an error, got {other:?}"),
        }
        acked(&mut socket, &update(id, 2, StepState::Success)).await;
        acked(&mut socket, &success(id, 3)).await;
        assert_eq!(build_status(&server, build_id).await, RunStatus::Success);
        server.shutdown().await;
    })
    .await;
}
