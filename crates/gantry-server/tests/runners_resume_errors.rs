//! Resuming an assignment after a reconnect: a store that fails while the server reads
//! it closes the connection without a welcome (the runner keeps the work and connects
//! again), while an assignment that cannot run any more is dropped.

mod runners_support;

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

/// Connects a runner and takes the queued build's assignment.
async fn assigned(server: &Server) -> (Socket, String, AssignmentId) {
    let (_, runner) = token(server, "r", TokenRole::Runner).await;
    let (mut socket, _) = connect(server, &runner, vec![]).await;
    let ServerMessage::Assign(assign) = next(&mut socket).await else {
        panic!("an assignment")
    };
    (socket, runner, assign.assignment)
}

/// Says hello resuming `id`; the server closes the connection without a welcome.
async fn closed_without_welcome(server: &Server, runner: &str, id: AssignmentId) {
    let mut socket = open(server, Some(runner)).await.expect("connects");
    send(&mut socket, &hello(PROTOCOL_VERSION, vec![id])).await;
    loop {
        match socket.next().await {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
            Some(Ok(Message::Text(text))) => {
                panic!("expected the connection to close, got {text}")
            }
            Some(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn a_resume_whose_secrets_the_store_cannot_read_closes_without_a_welcome_and_keeps_the_work()
{
    within("resume while the secrets cannot be read", async {
        let (server, dir) = start().await;
        queue_build(&server, PIPELINE).await;
        let (socket, runner, id) = assigned(&server).await;
        drop(socket);

        // Reading the repository's secrets fails (the store's query finds no table).
        let mut db = database(&dir).await;
        execute(&mut db, "ALTER TABLE secrets RENAME TO secrets_away").await;
        closed_without_welcome(&server, &runner, id).await;
        execute(&mut db, "ALTER TABLE secrets_away RENAME TO secrets").await;

        // Connecting again, the runner still holds it.
        let (_socket, welcome) = connect(&server, &runner, vec![id]).await;
        assert_eq!(welcome.resumed, vec![id]);
        assert!(welcome.dropped.is_empty(), "{:?}", welcome.dropped);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_resumed_assignment_whose_plan_is_unusable_is_dropped() {
    within("resume of an unusable plan", async {
        let (server, dir) = start().await;
        queue_build(&server, PIPELINE).await;
        let (socket, runner, id) = assigned(&server).await;
        drop(socket);

        let mut db = database(&dir).await;
        execute(&mut db, "UPDATE workflows SET plan = 'not a plan'").await;
        let (_socket, welcome) = connect(&server, &runner, vec![id]).await;
        assert!(welcome.resumed.is_empty());
        assert_eq!(welcome.dropped.len(), 1);
        assert_eq!(welcome.dropped[0].assignment, id);
        assert!(
            welcome.dropped[0].reason.contains("cannot be read"),
            "{}",
            welcome.dropped[0].reason
        );
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_workflow_whose_error_status_the_store_failed_to_write_is_given_up_again() {
    within("giving up a workflow the store failed to end", async {
        let (server, dir) = start().await;
        let (build_id, _) = queue_build(&server, PIPELINE).await;
        let store = &server.state().store;

        // The plan cannot run, and the store fails to write the workflow's error status.
        let mut db = database(&dir).await;
        execute(&mut db, "UPDATE workflows SET plan = 'not a plan'").await;
        execute(
            &mut db,
            "CREATE TRIGGER fail_error_status BEFORE UPDATE OF status ON workflows \
             WHEN NEW.status = 'error' BEGIN SELECT RAISE(ABORT, 'disk full'); END",
        )
        .await;
        let (_, runner) = token(&server, "r", TokenRole::Runner).await;
        let (mut socket, welcome) = connect(&server, &runner, vec![]).await;
        let item = loop {
            if let Some(item) = store.claimed_item(1, &welcome.runner_id).await.unwrap() {
                break item;
            }
            let done = store.done_item(1, &welcome.runner_id).await.unwrap();
            assert!(
                done.is_none(),
                "completed although its workflow was not ended"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // The session handles this after the claim it made: its answer follows the attempt.
        send(&mut socket, &hello(PROTOCOL_VERSION, vec![])).await;
        assert!(matches!(next(&mut socket).await, ServerMessage::Error(_)));

        // Not completed: the item stays claimed, its workflow not ended.
        let claimed = store.claimed_item(item.id, &welcome.runner_id).await;
        assert!(claimed.unwrap().is_some(), "the item stays claimed");
        let detail = store.build_by_id(build_id).await.unwrap().unwrap();
        assert!(!detail.workflows[0].workflow.status.is_terminal());

        // Its lease ends and it is claimed again: this time the store writes the status.
        execute(&mut db, "DROP TRIGGER fail_error_status").await;
        let outcome = store.requeue_expired(now_ms() + 60_000, 3).await.unwrap();
        assert_eq!(outcome.requeued.len(), 1);
        server.state().live.announce_work();
        loop {
            let detail = store.build_by_id(build_id).await.unwrap().unwrap();
            let workflow = &detail.workflows[0].workflow;
            if workflow.status.is_terminal() {
                assert_eq!(workflow.status, RunStatus::Error);
                let error = workflow.error.clone().unwrap_or_default();
                assert!(error.contains("cannot be read"), "{error}");
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_workflow_the_lease_keeper_failed_to_end_is_ended_on_a_later_round() {
    within("the lease keeper giving up again", async {
        let (server, dir) = start().await;
        let (build_id, _) = queue_build(&server, PIPELINE).await;
        let store = &server.state().store;
        let (socket, _, _) = assigned(&server).await;
        drop(socket);

        // Each failed write of the error status is recorded before it fails.
        let mut db = database(&dir).await;
        execute(&mut db, "CREATE TABLE failed_writes (at INTEGER)").await;
        execute(
            &mut db,
            "CREATE TRIGGER fail_error_status BEFORE UPDATE OF status ON workflows \
             WHEN NEW.status = 'error' BEGIN INSERT INTO failed_writes VALUES (1); \
             SELECT RAISE(FAIL, 'disk full'); END",
        )
        .await;
        // Its last attempt's lease ended: the lease keeper fails the item.
        execute(
            &mut db,
            "UPDATE queue_items SET lease_until = 0, attempts = 3",
        )
        .await;
        loop {
            let failed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM failed_writes")
                .fetch_one(&mut db)
                .await
                .unwrap();
            if failed > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let state: String = sqlx::query_scalar("SELECT state FROM queue_items")
            .fetch_one(&mut db)
            .await
            .unwrap();
        assert_eq!(state, "failed");
        execute(&mut db, "DROP TRIGGER fail_error_status").await;

        loop {
            let detail = store.build_by_id(build_id).await.unwrap().unwrap();
            let workflow = &detail.workflows[0].workflow;
            if workflow.status.is_terminal() {
                assert_eq!(workflow.status, RunStatus::Error);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.shutdown().await;
    })
    .await;
}
