//! The in-process runner and live logs on Postgres: a build runs to success with its log
//! followed live, and a failing one ends in failure, as on SQLite.

#[path = "api_support/postgres.rs"]
mod postgres;
mod run_common;

use gantry_server::BackendChoice;
use gantry_store::RunStatus;
use run_common::{ADMIN, SHA, start_with, step, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_run_and_stream_on_postgres() {
    let url = match postgres::admin_url() {
        Ok(url) => url,
        Err(reason) => {
            eprintln!("SKIPPED builds_run_and_stream_on_postgres: {reason}");
            return;
        }
    };
    within(120, "postgres run", async {
        let t = start_with(BackendChoice::Local, |c| c.database_url = Some(url)).await;
        let repo = t.repo("pg", false).await;
        let yaml = "steps:\n  - name: count\n    image: busybox\n    commands:\n      - for i in $(seq 1 20); do echo n $i; sleep 0.05; done\n";
        let queued = t.queue(&repo, yaml, false, SHA).await;
        t.wait_build(queued.build.id, |d| step(d, "count").status == RunStatus::Running)
            .await;
        let mut ws = t
            .websocket("/api/repos/test/pg/builds/1/steps/count/logs/stream", ADMIN)
            .await
            .expect("stream opens");
        let mut seen = Vec::new();
        while let Some(frame) = ws.next_json().await {
            if frame["end"] == true {
                assert_eq!(frame["status"], "success");
                break;
            }
            if let Some(text) = frame["text"].as_str().filter(|t| t.starts_with("n ")) {
                seen.push(text.to_string());
            }
        }
        let expected: Vec<String> = (1..=20).map(|i| format!("n {i}")).collect();
        assert_eq!(seen, expected);
        let done = t.finished(queued.build.id).await;
        assert_eq!(done.build.status, RunStatus::Success);

        let failing = "steps:\n  - name: no\n    image: busybox\n    commands: [exit 2]\n";
        let queued = t.queue(&repo, failing, false, SHA).await;
        let done = t.finished(queued.build.id).await;
        assert_eq!(done.build.status, RunStatus::Failure);
        assert_eq!(step(&done, "no").exit_code, Some(2));
        t.server.shutdown().await;
    })
    .await;
}
