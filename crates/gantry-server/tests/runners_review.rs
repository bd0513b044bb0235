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
