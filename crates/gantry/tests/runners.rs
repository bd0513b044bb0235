//! Remote runners as real processes: `gantry server --no-local-runner` and `gantry runner`
//! children talking over the websocket protocol, on SQLite (runners_postgres.rs runs the
//! shared cases on Postgres).

mod server_common;

use std::path::Path;
use std::process::Command;

use gantry_store::RunStatus;
use server_common::runners::{
    self as cases, Database, runner_token, start_runner, start_runner_with,
};
use server_common::{
    ADMIN, ServerProcess, create_repo, free_port, open_store, queue_build,
    start_remote_only_server, start_server_at, wait_build, within,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_runners_drain_thirty_builds_each_exactly_once_with_its_logs() {
    cases::three_runners_drain_thirty_builds(&Database::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_killed_mid_step_loses_its_work_to_the_next_runner_within_the_lease() {
    cases::a_runner_killed_mid_step_is_requeued_within_the_lease(&Database::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_step_past_the_repository_timeout_is_stopped_and_the_build_says_why() {
    cases::a_remote_step_past_the_repository_timeout_is_stopped(&Database::Sqlite).await;
}

/// Starts `gantry server --no-local-runner` on a fixed port (a restarted server must be
/// found again).
fn start_server_on(port: u16, data: &Path, log: &Path) -> ServerProcess {
    let env = [("GANTRY_NO_LOCAL_RUNNER", "true")];
    start_server_at(&format!("127.0.0.1:{port}"), data, "local", &env, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_mid_build_keeps_the_runners_work_and_its_logs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let port = free_port();
    let mut server = start_server_on(port, &data, &log);
    let gate = dir.path().join("gate");
    within(120, "server restart", async {
        let store = open_store(&data).await;
        let repo = create_repo(&store, "restart").await;
        // The step waits for the test to open the gate, after the server was restarted.
        let yaml = format!(
            "clone:\n  disable: true\nsteps:\n  - name: work\n    image: busybox\n    commands:\n      - \"echo before; while [ ! -e {g} ]; do sleep 0.1; done; echo after\"\n",
            g = gate.display()
        );
        let build = queue_build(&store, &repo, &yaml).await;
        let token = runner_token(&store, "r").await;
        let _runner = start_runner(&server, &token, "r", 1, dir.path());
        wait_build(&store, build.build.id, |d| d.workflows[0].steps[0].status == RunStatus::Running).await;

        server.child.kill().expect("kill -9 of the server");
        server.child.wait().expect("reaped");
        server = start_server_on(port, &data, &log);
        std::fs::write(&gate, b"open").unwrap();

        let done = wait_build(&store, build.build.id, |d| d.build.status.is_terminal()).await;
        assert_eq!(done.build.status, RunStatus::Success, "{:?}", done.build.error);
        let lines = store.read_logs(done.workflows[0].steps[0].id, None, 0).await.unwrap();
        let texts: Vec<&str> = (lines.iter().map(|l| l.text.as_str()))
            .filter(|t| !t.starts_with("+ "))
            .collect();
        assert_eq!(texts, ["before", "after"], "every line once");
    })
    .await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_runner_killed_mid_step_leaves_nothing_once_it_is_back() {
    if !server_common::docker_ready() {
        eprintln!("skipped: no Docker engine or no gantry-test/busybox image (run .ci/images.sh)");
        return;
    }
    let test_id = format!("runners-{}", std::process::id());
    let _reaper = server_common::Reaper(test_id.clone());
    let labels = format!("gantry.test={test_id}");
    let env = [("GANTRY_DOCKER_LABELS", labels.as_str())];
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start_remote_only_server(dir.path());
    within(120, "docker runner killed", async {
        let store = open_store(&data).await;
        let repo = create_repo(&store, "docker-kill").await;
        let yaml = "clone:\n  disable: true\nsteps:\n  - name: long\n    image: gantry-test/busybox:latest\n    commands: [echo started, sleep 300]\n";
        let build = queue_build(&store, &repo, yaml).await;
        let token = runner_token(&store, "d").await;
        let docker = ["--backend", "docker"];
        let first = start_runner_with(&server, &token, "d", 1, dir.path(), &docker, &env);
        let containers = || server_common::docker(&["ps", "-aq", "--filter", &format!("label=gantry.test={test_id}")]);
        while containers().trim().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let orphan = containers().trim().to_string();
        drop(first); // SIGKILL mid-step: the container outlives the runner
        assert_eq!(containers().trim(), orphan);

        let _second = start_runner_with(&server, &token, "d", 1, dir.path(), &docker, &env);
        while containers().contains(&orphan) {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        // The lease ended, the work came back to the runner: it runs again. Cancelling the
        // build stops it, and nothing of either run is left.
        while containers().trim().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let cancel = format!("{}/api/repos/bin/docker-kill/builds/{}/cancel", server.base, build.build.number);
        let answer = reqwest::Client::new().post(cancel).bearer_auth(ADMIN).send().await.unwrap();
        assert!(answer.status().is_success(), "{}", answer.status());
        let done = wait_build(&store, build.build.id, |d| d.build.status.is_terminal()).await;
        assert_eq!(done.build.status, RunStatus::Killed);
        while !server_common::labelled_objects(&test_id).is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_step_on_a_remote_runner_waits_for_a_person_across_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let port = free_port();
    let mut server = start_server_on(port, &data, &log);
    within(120, "approval on a remote runner", async {
        let store = open_store(&data).await;
        let repo = create_repo(&store, "approve").await;
        let yaml = "clone:\n  disable: true\nsteps:\n  - name: gate\n    approval: { timeout: 1h }\n  - name: deploy\n    image: busybox\n    commands: [echo deployed]\n    depends_on: [gate]\n";
        let build = queue_build(&store, &repo, yaml).await;
        let token = runner_token(&store, "r").await;
        let _runner = start_runner(&server, &token, "r", 1, dir.path());
        wait_build(&store, build.build.id, |d| d.build.status == RunStatus::Blocked).await;
        // The server restarts while the step waits: the runner resumes, the wait goes on.
        server.child.kill().expect("kill -9 of the server");
        server.child.wait().expect("reaped");
        server = start_server_on(port, &data, &log);
        let resumed = |text: String| text.matches("runner connected").count() >= 2;
        while !resumed(std::fs::read_to_string(&log).unwrap_or_default()) {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let approve = format!("{}/api/repos/bin/approve/builds/{}/steps/gate/approve", server.base, build.build.number);
        let answer = reqwest::Client::new().post(approve).bearer_auth(ADMIN).send().await.unwrap();
        assert!(answer.status().is_success(), "{}", answer.status());
        let done = wait_build(&store, build.build.id, |d| d.build.status.is_terminal()).await;
        assert_eq!(done.build.status, RunStatus::Success, "{:?}", done.build.error);
        let deploy = &done.workflows[0].steps[1];
        assert_eq!((deploy.name.as_str(), deploy.status), ("deploy", RunStatus::Success));
    })
    .await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_stopped_with_sigterm_stops_its_work_reports_it_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start_remote_only_server(dir.path());
    within(120, "runner stopped with SIGTERM", async {
        let store = open_store(&data).await;
        let repo = create_repo(&store, "sigterm").await;
        let yaml = "clone:\n  disable: true\nsteps:\n  - name: long\n    image: busybox\n    commands: [echo started, sleep 300]\n";
        let build = queue_build(&store, &repo, yaml).await;
        let token = runner_token(&store, "t").await;
        let mut runner = start_runner(&server, &token, "t", 1, dir.path());
        wait_build(&store, build.build.id, |d| d.workflows[0].steps[0].status == RunStatus::Running).await;
        let pid = runner.0.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let status = tokio::task::spawn_blocking(move || {
            let status = runner.0.wait();
            (runner, status)
        });
        let (_runner, status) = status.await.unwrap();
        assert!(status.unwrap().success(), "the runner exits by itself");

        let done = wait_build(&store, build.build.id, |d| d.build.status.is_terminal()).await;
        assert_eq!(done.build.status, RunStatus::Error);
        let error = done.workflows[0].workflow.error.clone().unwrap_or_default();
        assert!(error.contains("runner `t` was stopped"), "{error}");
        let left = std::fs::read_dir(dir.path().join("t-workspaces")).map(|d| d.count()).unwrap_or(0);
        assert_eq!(left, 0, "its workspace was removed");
    })
    .await;
    drop(server);
}
