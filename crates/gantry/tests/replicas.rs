//! Two `gantry server` replicas on one Postgres, as real processes: work is taken once,
//! a replica starting leaves the other's running builds alone, followers on one replica
//! see what the other runs, and a cancel on one stops a build running on the other.

mod server_common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use gantry_store::{BuildDetail, RunStatus, Store};
use server_common::runners::{RunnerProcess, runner_token, start_runner};
use server_common::{ADMIN, ServerProcess, create_repo, postgres, queue_build, wait_build, within};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

/// One replica: its own data directory and log, the shared database and key.
fn start_replica(dir: &Path, name: &str, url: &str, local_runner: bool) -> ServerProcess {
    let no_local = if local_runner { "false" } else { "true" };
    let env = [
        ("GANTRY_NO_LOCAL_RUNNER", no_local),
        ("GANTRY_RUNNER_CAPACITY", "2"),
    ];
    postgres::start_replica(dir, name, url, &env)
}

/// A websocket to `path` on `server`, as the admin.
async fn follow(
    server: &ServerProcess,
    path: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = format!("{}{path}", server.base.replacen("http", "ws", 1));
    let mut request = url.into_client_request().unwrap();
    let bearer = format!("Bearer {ADMIN}").parse().unwrap();
    request.headers_mut().insert("authorization", bearer);
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("websocket opens");
    socket
}

fn step_named<'a>(build: &'a BuildDetail, name: &str) -> &'a gantry_store::Step {
    (build.workflows.iter().flat_map(|w| &w.steps))
        .find(|s| s.name == name)
        .expect("step")
}

fn log_tail(path: &PathBuf) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().rev().take(30).collect::<Vec<_>>().join("\n")
}

/// A `gantry runner` `r` (local backend, its log `dir/r.log`) connected to `server` with a
/// new runner token.
async fn connect_runner(
    store: &Arc<dyn Store>,
    server: &ServerProcess,
    dir: &Path,
) -> RunnerProcess {
    let token = runner_token(store, "r").await;
    start_runner(server, &token, "r", 1, dir)
}

fn now_ns() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// What a log stream sent, and how late its stamped lines came.
struct Followed {
    numbers: Vec<i64>,
    texts: Vec<String>,
    lags_ms: Vec<f64>,
    end: serde_json::Value,
}

impl Followed {
    /// p50, p90 and max of the lags, in ms.
    fn lags(&self) -> [f64; 3] {
        let mut lags = self.lags_ms.clone();
        lags.sort_by(f64::total_cmp);
        let at = |q: f64| lags[((lags.len() - 1) as f64 * q) as usize];
        [at(0.5), at(0.9), at(1.0)]
    }
}

/// Reads a log stream to its end frame; creates `gate` once line 200 came.
async fn read_log_stream(
    mut logs: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    gate: Option<PathBuf>,
) -> Followed {
    let (mut numbers, mut texts, mut lags_ms) = (Vec::new(), Vec::new(), Vec::new());
    loop {
        let Some(Ok(message)) = logs.next().await else {
            panic!("the stream closed without an end frame");
        };
        let Message::Text(text) = message else {
            continue;
        };
        let frame: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
        if frame["end"] == true {
            return Followed {
                numbers,
                texts,
                lags_ms,
                end: frame,
            };
        }
        numbers.push(frame["number"].as_i64().unwrap());
        let text = frame["text"].as_str().unwrap_or_default().to_string();
        if let Some(gate) = gate.as_ref().filter(|_| text == "line-200") {
            std::fs::write(gate, "open").unwrap();
        }
        if let Some(stamp) = text.split(' ').nth(1).and_then(|s| s.parse::<i64>().ok()) {
            lags_ms.push((now_ns() - stamp) as f64 / 1e6);
        }
        texts.push(text);
    }
}

/// Follows on replica b a step run on replica a (by its in-process runner, or by a runner
/// connected to a): every line once and in order, and the events, which b has no store
/// to read back from. Prints how late the live lines arrived (a figure, not a check).
async fn follow_across_replicas(database: &str, remote_runner: bool) {
    let Some(url) = postgres::fresh_database(database) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let runs_steps = start_replica(dir.path(), "a", &url, !remote_runner);
    let viewer = start_replica(dir.path(), "b", &url, false);
    let gate = dir.path().join("gate");
    within(120, "a follower on replica b", async {
        let store = postgres::open_store(&url).await;
        let _runner = match remote_runner {
            true => Some(connect_runner(&store, &runs_steps, dir.path()).await),
            false => None,
        };
        let repo = create_repo(&store, "follow").await;
        let mut events = follow(&viewer, "/api/events").await;
        // 400 stamped lines, the last 200 only once the follower has the first ones.
        let yaml = format!(
            "clone:\n  disable: true\nsteps:\n  - name: talk\n    image: busybox\n    commands:\n      - \"for i in $(seq 1 200); do echo line-$i; done\"\n      - \"while [ ! -e {g} ]; do sleep 0.05; done\"\n      - \"for i in $(seq 201 400); do echo line-$i $(date +%s%N); sleep 0.01; done\"\n",
            g = gate.display()
        );
        let build = queue_build(&store, &repo, &yaml).await;
        let number = build.build.number;
        let path = format!("/api/repos/bin/follow/builds/{number}/steps/talk/logs/stream");
        // The same step followed on a, where it runs: the baseline of the lag figure.
        let local = tokio::spawn(read_log_stream(follow(&runs_steps, &path).await, None));
        let across = read_log_stream(follow(&viewer, &path).await, Some(gate.clone())).await;
        let local = local.await.unwrap();
        for followed in [&across, &local] {
            assert_eq!(followed.end["status"], "success", "{}", followed.end);
            let expected: Vec<i64> = (1..=followed.numbers.len() as i64).collect();
            assert_eq!(followed.numbers, expected, "every line once, in order");
            let lines = followed.texts.iter().filter(|t| t.starts_with("line-"));
            assert_eq!(lines.count(), 400, "all 400 lines");
        }
        let (b, a) = (across.lags(), local.lags());
        eprintln!(
            "live lines of a step run by {}: lag on b p50 {:.0} ms, p90 {:.0} ms, max {:.0} ms; \
             on a p50 {:.0} ms, p90 {:.0} ms, max {:.0} ms; b/a at p50 {:.2}",
            if remote_runner { "a runner connected to a" } else { "a's in-process runner" },
            b[0], b[1], b[2], a[0], a[1], a[2],
            b[0] / a[0].max(0.001)
        );
        let done = wait_build(&store, build.build.id, |d| d.build.status.is_terminal()).await;
        let ran_on = step_named(&done, "talk").runner_id.clone().unwrap_or_default();
        let kind = if remote_runner { "runner:" } else { "server:" };
        assert!(ran_on.starts_with(kind), "ran on {ran_on}");

        let mut seen = Vec::new();
        while !seen.contains(&("build".to_string(), "success".to_string())) {
            let Some(Ok(Message::Text(text))) = events.next().await else {
                continue;
            };
            let event: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
            if event["repo"] == "bin/follow" && event["build"] == number {
                let kind = event["kind"].as_str().unwrap_or_default().to_string();
                seen.push((kind, event["status"].as_str().unwrap_or_default().to_string()));
            }
        }
        assert!(
            seen.contains(&("step".into(), "running".into())),
            "the step's start reached b: {seen:?}"
        );
    })
    .await;
    drop((runs_steps, viewer));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_on_one_replica_sees_every_line_and_event_of_a_step_run_on_the_other() {
    follow_across_replicas("replicas_follow", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_on_one_replica_sees_a_step_run_by_a_runner_connected_to_the_other() {
    follow_across_replicas("replicas_follow_runner", true).await;
}

/// One step that appends its build's name to `runs` and takes a moment.
fn counted(n: usize, runs: &Path) -> String {
    format!(
        "clone:\n  disable: true\nsteps:\n  - name: work\n    image: busybox\n    commands:\n      - \"echo ran-{n} >> {runs}\"\n      - \"sleep 0.3\"\n",
        runs = runs.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_drain_twenty_builds_each_exactly_once() {
    let Some(url) = postgres::fresh_database("replicas_drain") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let first = start_replica(dir.path(), "a", &url, true);
    let mut second = None;
    within(180, "two replicas drain the queue", async {
        let store = postgres::open_store(&url).await;
        let repo = create_repo(&store, "drain").await;
        let mut builds = Vec::new();
        for n in 0..20 {
            builds.push(queue_build(&store, &repo, &counted(n, &runs)).await);
        }
        // Replica b starts while a runs builds: its recovery must leave them alone.
        wait_build(&store, builds[0].build.id, |d| {
            d.workflows[0].steps[0].status == RunStatus::Running
        })
        .await;
        second = Some(start_replica(dir.path(), "b", &url, true));
        let mut runners = std::collections::BTreeSet::new();
        for (n, build) in builds.iter().enumerate() {
            let done = wait_build(&store, build.build.id, |d| d.build.status.is_terminal()).await;
            assert_eq!(
                done.build.status,
                RunStatus::Success,
                "build {n}: {:?}\nreplica b's log:\n{}",
                done.build.error,
                log_tail(&dir.path().join("b.log"))
            );
            runners.extend(done.workflows[0].steps[0].runner_id.clone());
        }
        assert!(store.list_pending().await.unwrap().is_empty());
        assert_eq!(runners.len(), 2, "both replicas ran builds: {runners:?}");
        server_common::assert_each_ran_once(&runs, 20);
    })
    .await;
    drop((first, second));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_sent_to_one_replica_stops_a_build_running_on_the_other() {
    cancel_across_replicas("replicas_cancel", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_sent_to_one_replica_stops_a_build_on_a_runner_connected_to_the_other() {
    cancel_across_replicas("replicas_cancel_runner", true).await;
}

/// Cancels on replica b a build that replica a runs (by its in-process runner, or by a
/// runner connected to a): the step's process ends and the step is `killed`.
async fn cancel_across_replicas(database: &str, remote_runner: bool) {
    let Some(url) = postgres::fresh_database(database) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let runner = start_replica(dir.path(), "a", &url, !remote_runner);
    let other = start_replica(dir.path(), "b", &url, false);
    let pid_file = dir.path().join("step.pid");
    within(120, "a cancel across replicas", async {
        let store = postgres::open_store(&url).await;
        let remote = match remote_runner {
            true => Some(connect_runner(&store, &runner, dir.path()).await),
            false => None,
        };
        let repo = create_repo(&store, "cancel").await;
        // `$$$$` is the pipeline escape for the shell's `$$`: the step writes its own pid.
        let yaml = format!(
            "clone:\n  disable: true\nsteps:\n  - name: wait\n    image: busybox\n    commands:\n      - \"echo $$$$ > {p}\"\n      - \"sleep 120\"\n",
            p = pid_file.display()
        );
        let build = queue_build(&store, &repo, &yaml).await;
        while std::fs::read_to_string(&pid_file).map_or(true, |p| p.trim().is_empty()) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_string();
        let number = build.build.number;
        let cancelled = reqwest::Client::new()
            .post(format!("{}/api/repos/bin/cancel/builds/{number}/cancel", other.base))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert!(cancelled.status().is_success(), "{}", cancelled.text().await.unwrap());
        // Replica a's in-process runner stops the step: its process goes away.
        while Path::new(&format!("/proc/{pid}")).exists() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let done = wait_build(&store, build.build.id, |d| {
            d.build.status.is_terminal() && d.workflows[0].steps[0].status.is_terminal()
        })
        .await;
        assert_eq!(done.build.status, RunStatus::Killed);
        assert_eq!(done.workflows[0].steps[0].status, RunStatus::Killed);
        if remote_runner {
            // Told as a person's cancel, relayed from b; not as a lease lost later.
            let said = std::fs::read_to_string(dir.path().join("r.log")).unwrap();
            assert!(said.contains("the build was cancelled"), "{said}");
        }
        drop(remote);
        // Their listening connections do not hold up a graceful stop.
        for replica in [runner, other] {
            assert_eq!(stop_gracefully(replica).await, Some(0), "a graceful stop exits 0");
        }
    })
    .await;
}

/// SIGTERM, then the exit code once the process ended.
async fn stop_gracefully(mut server: ServerProcess) -> Option<i32> {
    let pid = server.child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success());
    tokio::task::spawn_blocking(move || server.child.wait().map(|s| s.code()))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_decided_on_one_replica_releases_the_step_waiting_on_the_other() {
    let Some(url) = postgres::fresh_database("replicas_approve") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let runner = start_replica(dir.path(), "a", &url, true);
    let other = start_replica(dir.path(), "b", &url, false);
    within(120, "an approval across replicas", async {
        let store = postgres::open_store(&url).await;
        let repo = create_repo(&store, "approve").await;
        let yaml = "clone:\n  disable: true\nsteps:\n  - name: gate\n    approval:\n      timeout: 1h\n  - name: after\n    image: busybox\n    commands: [\"echo approved\"]\n    depends_on: [gate]\n";
        let build = queue_build(&store, &repo, yaml).await;
        // The step waits on replica a's runner before anyone decides.
        wait_build(&store, build.build.id, |d| {
            step_named(d, "gate").status == RunStatus::Blocked
        })
        .await;
        let number = build.build.number;
        let approved = reqwest::Client::new()
            .post(format!(
                "{}/api/repos/bin/approve/builds/{number}/steps/gate/approve",
                other.base
            ))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert!(approved.status().is_success(), "{}", approved.text().await.unwrap());
        let done = wait_build(&store, build.build.id, |d| d.build.status.is_terminal()).await;
        assert_eq!(done.build.status, RunStatus::Success, "{:?}", done.build.error);
        assert_eq!(step_named(&done, "after").status, RunStatus::Success);
    })
    .await;
    drop((runner, other));
}
