//! Remote runners as real processes: `gantry server --no-local-runner` and `gantry runner`
//! children talking over the websocket protocol.

mod server_common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use gantry_store::{NewToken, RunStatus, Store, TokenRole, now_ms};
use server_common::{
    ADMIN, ServerProcess, create_repo, open_store, queue_build, start_server, wait_build, within,
};

/// A `gantry runner` child process, killed when dropped.
struct RunnerProcess(Child);

impl Drop for RunnerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_runner(
    server: &ServerProcess,
    token: &str,
    name: &str,
    capacity: u32,
    dir: &Path,
) -> RunnerProcess {
    start_runner_with(
        server,
        token,
        name,
        capacity,
        dir,
        &["--backend", "local"],
        &[],
    )
}

fn start_runner_with(
    server: &ServerProcess,
    token: &str,
    name: &str,
    capacity: u32,
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> RunnerProcess {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}.log")))
        .expect("runner log");
    let child = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["runner", "--name", name])
        .args(args)
        .envs(env.iter().copied())
        .args(["--capacity", &capacity.to_string()])
        .arg("--workspaces")
        .arg(dir.join(format!("{name}-workspaces")))
        .args(["--server", &server.base, "--token", token])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("gantry runner starts");
    RunnerProcess(child)
}

async fn runner_token(store: &Arc<dyn Store>, name: &str) -> String {
    let new = NewToken {
        name: name.into(),
        subject: name.into(),
        role: TokenRole::Runner,
        scope: None,
    };
    let (_, plaintext) = store.create_token(&new, now_ms()).await.expect("token");
    plaintext.expose().to_string()
}

/// Five numbered lines, then a line appended to `runs` (to count how often it ran).
fn pipeline(n: usize, runs: &Path) -> String {
    format!(
        "clone:\n  disable: true\nsteps:\n  - name: count\n    image: busybox\n    commands:\n      - \"for i in 1 2 3 4 5; do echo build-{n}-line-$i; done\"\n  - name: after\n    image: busybox\n    commands: [\"echo ran-{n} >> {runs}\"]\n    depends_on: [count]\n",
        runs = runs.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_runners_drain_thirty_builds_each_exactly_once_with_its_logs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start_server(
        &data,
        "local",
        &[("GANTRY_NO_LOCAL_RUNNER", "true")],
        &dir.path().join("server.log"),
    );
    let runs = dir.path().join("runs");
    within(120, "three runners drain the queue", async {
        let store = open_store(&data).await;
        let repo = create_repo(&store, "drain").await;
        let mut builds = Vec::new();
        for n in 0..30 {
            builds.push(queue_build(&store, &repo, &pipeline(n, &runs)).await);
        }
        let mut runners = Vec::new();
        for name in ["a", "b", "c"] {
            let token = runner_token(&store, name).await;
            runners.push(start_runner(&server, &token, name, 2, dir.path()));
        }
        let mut runners_seen = std::collections::BTreeSet::new();
        for (n, build) in builds.iter().enumerate() {
            let done = wait_build(&store, build.build.id, |d| d.build.status.is_terminal()).await;
            assert_eq!(
                done.build.status,
                RunStatus::Success,
                "build {n}: {:?}",
                done.build.error
            );
            let steps = &done.workflows[0].steps;
            let runner = steps[0].runner_id.clone().expect("the runner is recorded");
            assert!(runner.starts_with("runner:"), "{runner}");
            runners_seen.insert(runner);
            let lines = store.read_logs(steps[0].id, None, 0).await.unwrap();
            let texts: Vec<&str> = (lines.iter().map(|l| l.text.as_str()))
                .filter(|t| !t.starts_with("+ ")) // the command echo
                .collect();
            let expected: Vec<String> = (1..=5).map(|i| format!("build-{n}-line-{i}")).collect();
            assert_eq!(texts, expected, "every line once, in order");
        }
        let items = store.list_pending().await.unwrap();
        assert!(items.is_empty(), "nothing left in the queue");
        assert!(
            runners_seen.len() > 1,
            "the work was shared: {runners_seen:?}"
        );
        let mut ran: Vec<String> = std::fs::read_to_string(&runs)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        ran.sort();
        let mut expected: Vec<String> = (0..30).map(|n| format!("ran-{n}")).collect();
        expected.sort();
        assert_eq!(ran, expected, "each build ran exactly once");
    })
    .await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_killed_mid_step_loses_its_work_to_the_next_runner_within_the_lease() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start_server(
        &data,
        "local",
        &[("GANTRY_NO_LOCAL_RUNNER", "true")],
        &dir.path().join("server.log"),
    );
    let marker = dir.path().join("first-attempt");
    within(120, "kill -9 of a runner", async {
        let store = open_store(&data).await;
        let repo = create_repo(&store, "kill").await;
        // The first attempt hangs (until the test kills its runner); the second finishes.
        let yaml = format!(
            "clone:\n  disable: true\nsteps:\n  - name: work\n    image: busybox\n    commands:\n      - \"if [ -e {m} ]; then echo second attempt; else touch {m}; echo first attempt; sleep 20; fi\"\n",
            m = marker.display()
        );
        let build = queue_build(&store, &repo, &yaml).await;
        let token = runner_token(&store, "k").await;
        let first = start_runner(&server, &token, "k", 1, dir.path());
        wait_build(&store, build.build.id, |d| d.workflows[0].steps[0].status == RunStatus::Running).await;
        // Killed once its first line is stored (what a runner sent is kept).
        let step_id = build.workflows[0].steps[0].id;
        let stored = |lines: Vec<gantry_store::LogLine>| lines.iter().any(|l| l.text == "first attempt");
        while !stored(store.read_logs(step_id, None, 0).await.unwrap()) {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        drop(first); // SIGKILL: the runner says nothing more
        let workspaces = dir.path().join("k-workspaces");
        let left = std::fs::read_dir(&workspaces).map(|d| d.count()).unwrap_or(0);
        assert!(left > 0, "the killed run's workspace is still there");

        // The same runner comes back: it removes what the killed run left, and gets the
        // workflow again once the lease ended.
        let _second = start_runner(&server, &token, "k", 1, dir.path());
        let done = wait_build(&store, build.build.id, |d| d.build.status.is_terminal()).await;
        assert_eq!(done.build.status, RunStatus::Success, "{:?}", done.build.error);
        assert!(store.list_pending().await.unwrap().is_empty());
        // The retry numbers its lines after the first attempt's: both are kept.
        let lines = (store.read_logs(done.workflows[0].steps[0].id, None, 0).await).unwrap();
        let texts: Vec<&str> = (lines.iter().map(|l| l.text.as_str()))
            .filter(|t| !t.starts_with("+ "))
            .collect();
        assert_eq!(texts, ["first attempt", "second attempt"]);
        let left = std::fs::read_dir(&workspaces).map(|d| d.count()).unwrap_or(0);
        assert_eq!(left, 0, "no workspace is left behind");
    })
    .await;
    drop(server);
}

/// Starts `gantry server` on a fixed port (a restarted server must be found again).
fn start_server_on(port: u16, data: &Path, log: &Path) -> ServerProcess {
    use std::io::{BufRead as _, BufReader};
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["server", "--backend", "local", "--no-local-runner"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data)
        .env("GANTRY_ADMIN_TOKEN", ADMIN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("gantry server starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let listening = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.starts_with("gantry: listening on"));
    assert!(
        listening,
        "the server did not start: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    std::thread::spawn(move || for _ in lines {});
    ServerProcess {
        child,
        base: format!("http://127.0.0.1:{port}"),
        log: log.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_mid_build_keeps_the_runners_work_and_its_logs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
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
    let server = start_server(
        &data,
        "local",
        &[("GANTRY_NO_LOCAL_RUNNER", "true")],
        &dir.path().join("server.log"),
    );
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
    let port = (std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .local_addr()
        .unwrap()
        .port();
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
    let server = start_server(
        &data,
        "local",
        &[("GANTRY_NO_LOCAL_RUNNER", "true")],
        &dir.path().join("server.log"),
    );
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
