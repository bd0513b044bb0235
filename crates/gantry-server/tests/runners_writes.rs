//! What the server writes for a runner's messages: a message whose statuses the store
//! failed to write is not acknowledged (it comes again and completes them), and lines sent
//! again after a reconnect reach live followers once.

mod runners_support;

use gantry_server::live::StepFeed;
use runners_support::*;
use sqlx::Connection as _;

/// A connection to the server's own SQLite database, past the store.
async fn database(dir: &tempfile::TempDir) -> sqlx::SqliteConnection {
    let url = format!("sqlite://{}", dir.path().join("gantry.db").display());
    sqlx::SqliteConnection::connect(&url).await.unwrap()
}

async fn execute(db: &mut sqlx::SqliteConnection, sql: &'static str) {
    sqlx::query(sql).execute(db).await.unwrap();
}

fn done(assignment: AssignmentId, seq: u64) -> RunnerMessage {
    RunnerMessage::Done(Done {
        assignment,
        seq,
        outcome: Outcome::Success,
        error: None,
    })
}

/// Connects a runner and takes the queued build's assignment.
async fn assigned(server: &Server) -> (Socket, String, AssignmentId) {
    let (_, runner) = token(server, "r", TokenRole::Runner).await;
    let (mut socket, _) = connect(server, &runner, vec![]).await;
    let ServerMessage::Assign(assign) = next(&mut socket).await else {
        panic!("an assignment")
    };
    (socket, runner, assign.assignment)
}

async fn acked(socket: &mut Socket, message: &RunnerMessage) {
    send(socket, message).await;
    let (id, seq) = message.sequenced().unwrap();
    assert_eq!(
        next(socket).await,
        ServerMessage::Ack(Ack {
            assignment: id,
            seq
        })
    );
}

#[tokio::test]
async fn a_done_whose_final_status_was_not_stored_is_not_acknowledged_and_ends_the_build_when_sent_again()
 {
    within("done after a failed status write", async {
        let (server, dir) = start().await;
        let (build_id, _) = queue_build(&server, PIPELINE).await;
        let (mut socket, _, id) = assigned(&server).await;
        acked(&mut socket, &update(id, 1, StepState::Running)).await;
        acked(&mut socket, &update(id, 2, StepState::Success)).await;

        // The store fails to write the workflow's final status (the queue item's
        // completion itself commits).
        let mut db = database(&dir).await;
        execute(
            &mut db,
            "CREATE TRIGGER fail_final_status BEFORE UPDATE OF status ON workflows \
             WHEN NEW.status = 'success' BEGIN SELECT RAISE(ABORT, 'disk full'); END",
        )
        .await;
        send(&mut socket, &done(id, 3)).await;
        match next(&mut socket).await {
            ServerMessage::Error(error) => {
                assert_eq!(error.assignment, None, "the runner keeps the assignment");
                assert!(error.message.contains("disk full"), "{}", error.message);
            }
            other => panic!("expected a refusal without ack, got {other:?}"),
        }
        let store = &server.state().store;
        let detail = store.build_by_id(build_id).await.unwrap().unwrap();
        assert_eq!(detail.build.status, RunStatus::Running);

        // The store works again: the done, sent again, is acknowledged and ends the build.
        execute(&mut db, "DROP TRIGGER fail_final_status").await;
        acked(&mut socket, &done(id, 3)).await;
        let detail = store.build_by_id(build_id).await.unwrap().unwrap();
        assert_eq!(detail.workflows[0].workflow.status, RunStatus::Success);
        assert_eq!(detail.build.status, RunStatus::Success);
        server.shutdown().await;
    })
    .await;
}

/// The lines of the next batch published for a step (None: nothing within a second).
async fn published(feed: &mut tokio::sync::broadcast::Receiver<StepFeed>) -> Option<Vec<String>> {
    match tokio::time::timeout(Duration::from_secs(1), feed.recv()).await {
        Ok(Ok(StepFeed::Lines(lines))) => Some(lines.iter().map(|l| l.text.clone()).collect()),
        Ok(other) => panic!("expected lines, got {other:?}"),
        Err(_) => None,
    }
}

#[tokio::test]
async fn lines_sent_again_after_a_reconnect_are_published_once() {
    within("resent lines", async {
        let (server, _dir) = start().await;
        let (_, step_id) = queue_build(&server, PIPELINE).await;
        let (mut socket, runner, id) = assigned(&server).await;
        let mut feed = server.state().live.subscribe_step(step_id);
        acked(&mut socket, &update(id, 1, StepState::Running)).await;
        acked(&mut socket, &logs(id, 2, "build", &["one", "two"])).await;
        assert_eq!(published(&mut feed).await.unwrap(), ["one", "two"]);

        // The acks were lost: after a reconnect the runner sends the batch again.
        drop(socket);
        let (mut socket, welcome) = connect(&server, &runner, vec![id]).await;
        assert_eq!(welcome.resumed, vec![id]);
        acked(&mut socket, &logs(id, 2, "build", &["one", "two"])).await;
        let mut three = logs(id, 3, "build", &["", "", "three"]);
        if let RunnerMessage::Logs(batch) = &mut three {
            batch.lines.drain(..2);
        }
        acked(&mut socket, &three).await;
        // The next batch published is the new line: the stored ones did not come again.
        assert_eq!(published(&mut feed).await.unwrap(), ["three"]);
        assert_eq!(published(&mut feed).await, None);
        server.shutdown().await;
    })
    .await;
}

/// Sends `message`, which the store fails to write: refused without an ack.
async fn not_acked(socket: &mut Socket, message: &RunnerMessage, cause: &str) {
    send(socket, message).await;
    match next(socket).await {
        ServerMessage::Error(error) => {
            assert_eq!(error.assignment, None, "the runner keeps the assignment");
            assert!(error.message.contains(cause), "{}", error.message);
        }
        other => panic!("expected a refusal without ack, got {other:?}"),
    }
}

#[tokio::test]
async fn a_step_update_or_log_batch_the_store_failed_to_write_is_not_acknowledged_and_stored_when_sent_again()
 {
    within("updates and lines after failed writes", async {
        let (server, dir) = start().await;
        let (build_id, step_id) = queue_build(&server, PIPELINE).await;
        let (mut socket, _, id) = assigned(&server).await;
        let mut db = database(&dir).await;
        acked(&mut socket, &update(id, 1, StepState::Running)).await;

        execute(
            &mut db,
            "CREATE TRIGGER fail_lines BEFORE INSERT ON log_chunks \
             BEGIN SELECT RAISE(ABORT, 'disk full'); END",
        )
        .await;
        let batch = logs(id, 2, "build", &["one", "two"]);
        not_acked(&mut socket, &batch, "disk full").await;
        execute(&mut db, "DROP TRIGGER fail_lines").await;
        acked(&mut socket, &batch).await;

        execute(
            &mut db,
            "CREATE TRIGGER fail_step BEFORE UPDATE OF status ON steps \
             WHEN NEW.status = 'success' BEGIN SELECT RAISE(ABORT, 'disk full'); END",
        )
        .await;
        not_acked(&mut socket, &update(id, 3, StepState::Success), "disk full").await;
        execute(&mut db, "DROP TRIGGER fail_step").await;
        acked(&mut socket, &update(id, 3, StepState::Success)).await;
        acked(&mut socket, &done(id, 4)).await;

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
