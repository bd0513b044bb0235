//! Live logs and events over websockets: replay then follow with no gap or duplicate,
//! build and step events, and private repositories hidden from outsiders.

mod run_common;

use std::time::Duration;

use gantry_server::BackendChoice;
use gantry_store::RunStatus;
use run_common::{ADMIN, SHA, WsClient, start, step, within};

/// Prints lines slowly; halfway it waits for the file `GATE` so a follower surely joins
/// while it runs.
const SLOW: &str = "steps:\n  - name: slow\n    image: busybox\n    commands:\n      - for i in $(seq 1 20); do echo line $i; sleep 0.02; done\n      - while [ ! -f GATE ]; do sleep 0.02; done\n      - for i in $(seq 21 40); do echo line $i; sleep 0.02; done\n";

/// Reads line frames until the end frame: the line numbers and texts, and the final status.
async fn read_to_end(ws: &mut WsClient) -> (Vec<i64>, Vec<String>, String) {
    let (mut numbers, mut texts) = (Vec::new(), Vec::new());
    while let Some(frame) = ws.next_json().await {
        if frame["end"] == true {
            return (
                numbers,
                texts,
                frame["status"].as_str().unwrap_or_default().into(),
            );
        }
        numbers.push(frame["number"].as_i64().expect("a line number"));
        texts.push(frame["text"].as_str().unwrap_or_default().to_string());
    }
    panic!("the stream closed without an end frame");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_joining_mid_step_sees_every_line_exactly_once() {
    within(90, "mid-step follow", async {
        let t = start(BackendChoice::Local).await;
        let repo = t.repo("slow", false).await;
        let gate = t.dir.path().join("gate");
        let slow = SLOW.replace("GATE", gate.to_str().unwrap());
        let queued = t.queue(&repo, &slow, false, SHA).await;
        let step_id = step(&queued, "slow").id;
        // Join once some lines are stored; the step waits at the gate until then.
        loop {
            let stored = t.state().store.read_logs(step_id, None, 0).await.unwrap();
            if stored.len() >= 8 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let path = "/api/repos/test/slow/builds/1/steps/slow/logs/stream";
        let mut whole = t.websocket(path, ADMIN).await.expect("stream opens");
        let mut tail = t
            .websocket(&format!("{path}?after=5"), ADMIN)
            .await
            .expect("stream opens");
        let running = t
            .state()
            .store
            .build_by_id(queued.build.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            step(&running, "slow").status,
            RunStatus::Running,
            "joined mid-step"
        );
        std::fs::write(&gate, "go").unwrap();

        let (numbers, texts, status) = read_to_end(&mut whole).await;
        assert_eq!(status, "success");
        let expected: Vec<String> = (1..=40).map(|i| format!("line {i}")).collect();
        // The shell's trace of the command comes first; then every line once, in order.
        let printed: Vec<String> = texts
            .into_iter()
            .filter(|t| t.starts_with("line "))
            .collect();
        assert_eq!(printed, expected, "every line once, in order");
        assert!(
            numbers.windows(2).all(|w| w[1] == w[0] + 1),
            "no gap: {numbers:?}"
        );

        let (tail_numbers, _, _) = read_to_end(&mut tail).await;
        assert_eq!(tail_numbers.first(), Some(&6), "after=5 starts at line 6");
        assert_eq!(tail_numbers.last(), numbers.last());
        t.server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_an_ended_step_replays_its_log_and_ends() {
    within(60, "follow ended step", async {
        let t = start(BackendChoice::Local).await;
        let repo = t.repo("done", false).await;
        let yaml =
            "steps:\n  - name: quick\n    image: busybox\n    commands: [echo a, echo b, exit 1]\n";
        let queued = t.queue(&repo, yaml, false, SHA).await;
        t.finished(queued.build.id).await;
        let mut ws = t
            .websocket(
                "/api/repos/test/done/builds/1/steps/quick/logs/stream",
                ADMIN,
            )
            .await
            .expect("stream opens");
        let (_, texts, status) = read_to_end(&mut ws).await;
        assert!(
            texts.contains(&"a".to_string()) && texts.contains(&"b".to_string()),
            "{texts:?}"
        );
        assert_eq!(status, "failure");
        // The follower's channel is released once its handler returns.
        while t.state().live.live_steps() != 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        t.server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_report_build_and_step_statuses() {
    within(60, "events", async {
        let t = start(BackendChoice::Local).await;
        let repo = t.repo("events", false).await;
        let mut events = t
            .websocket("/api/events", ADMIN)
            .await
            .expect("events open");
        let yaml = "steps:\n  - name: one\n    image: busybox\n    commands: [echo 1]\n";
        t.queue(&repo, yaml, false, SHA).await;
        let mut seen = Vec::new();
        while let Some(event) = events.next_json().await {
            let summary = format!(
                "{}:{}:{}",
                event["kind"].as_str().unwrap_or_default(),
                event["step"].as_str().unwrap_or("-"),
                event["status"].as_str().unwrap_or_default()
            );
            assert_eq!(event["repo"], "test/events");
            let last = summary == "build:-:success";
            seen.push(summary);
            if last {
                break;
            }
        }
        assert!(seen.contains(&"build:-:running".to_string()), "{seen:?}");
        assert!(seen.contains(&"step:one:running".to_string()), "{seen:?}");
        assert!(seen.contains(&"step:one:success".to_string()), "{seen:?}");
        t.server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec_12_private_logs_and_streams_are_404_to_outsiders() {
    within(60, "private", async {
        let t = start(BackendChoice::Local).await;
        let repo = t.repo("hidden", true).await;
        let yaml = "steps:\n  - name: s\n    image: busybox\n    commands: [echo private-line]\n";
        let queued = t.queue(&repo, yaml, false, SHA).await;
        t.finished(queued.build.id).await;
        let outsider = t.user_token(None).await;
        let reader = t.user_token(Some("read:test/hidden")).await;
        let logs = "/api/repos/test/hidden/builds/1/steps/s/logs";
        for path in [logs.to_string(), format!("{logs}?after=0")] {
            let (status, body) = t.get(&path, &outsider).await;
            assert_eq!(status, 404, "{path}: {body}");
            assert!(
                body.contains("\"not_found\"") && !body.contains("private-line"),
                "{body}"
            );
            let (status, body) = t.get(&path, &reader).await;
            assert_eq!(status, 200, "{path}");
            assert!(body.contains("private-line"));
        }
        // The same answer as for a repository that does not exist.
        let (missing, _) = t
            .get("/api/repos/test/nope/builds/1/steps/s/logs", &outsider)
            .await;
        assert_eq!(missing, 404);
        let stream = format!("{logs}/stream");
        assert_eq!(t.websocket(&stream, &outsider).await.err(), Some(404));
        assert!(t.websocket(&stream, &reader).await.is_ok());
        assert_eq!(t.websocket(&stream, "not-a-token").await.err(), Some(401));

        // Events of the private repository reach the reader, never the outsider.
        let mut outsider_events = t.websocket("/api/events", &outsider).await.expect("opens");
        let mut reader_events = t.websocket("/api/events", &reader).await.expect("opens");
        let public = t.repo("open", false).await;
        t.queue(&repo, yaml, false, SHA).await;
        let second = t.queue(&public, yaml, false, SHA).await;
        t.finished(second.build.id).await;
        let mut reader_saw_private = false;
        while let Some(event) = reader_events.next_json().await {
            reader_saw_private |= event["repo"] == "test/hidden";
            if event["repo"] == "test/open"
                && event["kind"] == "build"
                && event["status"] == "success"
            {
                break;
            }
        }
        assert!(
            reader_saw_private,
            "the reader follows the private repository"
        );
        while let Some(event) = outsider_events.next_json().await {
            assert_ne!(event["repo"], "test/hidden", "outsider saw {event}");
            if event["repo"] == "test/open"
                && event["kind"] == "build"
                && event["status"] == "success"
            {
                break;
            }
        }
        t.server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_get_of_a_stream_is_a_clear_400_and_unknown_steps_are_404() {
    within(60, "bad requests", async {
        let t = start(BackendChoice::Local).await;
        let repo = t.repo("plain", false).await;
        let yaml = "steps:\n  - name: s\n    image: busybox\n    commands: [echo x]\n";
        let queued = t.queue(&repo, yaml, false, SHA).await;
        t.finished(queued.build.id).await;
        let (status, body) = t
            .get("/api/repos/test/plain/builds/1/steps/s/logs/stream", ADMIN)
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("websocket"), "{body}");
        let (status, body) = t
            .get("/api/repos/test/plain/builds/1/steps/nope/logs", ADMIN)
            .await;
        assert_eq!(status, 404);
        assert!(body.contains("its steps are: s"), "{body}");
        let (status, _) = t
            .get("/api/repos/test/plain/builds/9/steps/s/logs", ADMIN)
            .await;
        assert_eq!(status, 404);
        let (status, body) = t
            .get("/api/repos/test/plain/builds/1/steps/s/logs?after=x", ADMIN)
            .await;
        assert_eq!(status, 400, "{body}");
        let path = "/api/repos/test/plain/builds/x/steps/s/logs";
        let (status, body) = t.get(path, ADMIN).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body.contains("\"bad_request\""),
            "in the JSON envelope: {body}"
        );
        t.server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec_09_secrets_are_masked_in_live_frames() {
    within(60, "masked frames", async {
        let t = start(BackendChoice::Local).await;
        let repo = t.repo("maskedlive", false).await;
        let value = gantry_store::SecretValue::new("live-secret-3141592");
        let now = gantry_store::now_ms();
        t.state().store.set_secret(repo.id, "pw", &value, now).await.unwrap();
        let yaml = "steps:\n  - name: leak\n    image: busybox\n    environment:\n      PW:\n        from_secret: pw\n    commands:\n      - sleep 1\n      - echo \"pw=$PW\"\n";
        let queued = t.queue(&repo, yaml, false, SHA).await;
        t.wait_build(queued.build.id, |d| step(d, "leak").status == RunStatus::Running).await;
        let mut ws = t
            .websocket("/api/repos/test/maskedlive/builds/1/steps/leak/logs/stream", ADMIN)
            .await
            .expect("stream opens");
        let (_, texts, status) = read_to_end(&mut ws).await;
        assert_eq!(status, "success");
        assert!(texts.iter().any(|t| t.starts_with("pw=")), "{texts:?}");
        for text in &texts {
            assert!(!text.contains("live-secret-3141592"), "secret in a live frame: {text}");
        }
        t.server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec_13_log_and_event_routes_need_a_user_or_admin_token() {
    within(60, "token scopes", async {
        let t = start(BackendChoice::Local).await;
        let repo = t.repo("scoped", false).await;
        let yaml = "steps:\n  - name: s\n    image: busybox\n    commands: [echo hi]\n";
        let queued = t.queue(&repo, yaml, false, SHA).await;
        t.finished(queued.build.id).await;
        let runner = gantry_store::NewToken {
            name: "runner".into(),
            subject: "runner-1".into(),
            role: gantry_store::TokenRole::Runner,
            scope: None,
        };
        let now = gantry_store::now_ms();
        let (_, runner) = t.state().store.create_token(&runner, now).await.unwrap();
        let runner = runner.expose().to_string();
        let logs = "/api/repos/test/scoped/builds/1/steps/s/logs";
        assert_eq!(t.get(logs, &runner).await.0, 403, "runner token on logs");
        let stream = format!("{logs}/stream");
        assert_eq!(t.websocket(&stream, &runner).await.err(), Some(403));
        assert_eq!(t.websocket("/api/events", &runner).await.err(), Some(403));
        assert_eq!(t.websocket("/api/events", "").await.err(), Some(401));
        let (status, _) = t
            .http
            .get(format!("{}{logs}", t.base))
            .send()
            .await
            .map(|r| (r.status().as_u16(), ()))
            .unwrap();
        assert_eq!(status, 401, "no token");
        let user = t.user_token(None).await;
        assert_eq!(
            t.get(logs, &user).await.0,
            200,
            "public logs for any user token"
        );
        t.server.shutdown().await;
    })
    .await;
}
