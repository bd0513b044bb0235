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
