//! What the runner suites share: the database a `gantry server --no-local-runner` runs on
//! (its SQLite file, or a fresh database on the test binary's throwaway Postgres), `gantry
//! runner` child processes, and the cases both runners.rs (SQLite) and
//! runners_postgres.rs run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use gantry_store::{NewToken, RunStatus, Store, TokenRole, now_ms};

use super::postgres::KEY;
use super::{ServerProcess, create_repo, queue_build, wait_build, within};

/// Where a server keeps its state.
pub enum Database {
    /// The SQLite file in its data directory.
    Sqlite,
    /// A Postgres database of its own.
    Postgres {
        /// `postgres://...`
        url: String,
    },
}

impl Database {
    /// A fresh database on the test binary's throwaway Postgres cluster (or the one
    /// `GANTRY_TEST_POSTGRES_URL` names); None, said on stderr, without Postgres (a
    /// failure under `CI=true`). The cluster and its databases go when the tests end.
    pub fn postgres(name: &str) -> Option<Self> {
        let url = super::postgres::fresh_database(name)?;
        Some(Self::Postgres { url })
    }

    /// Starts `gantry server --no-local-runner` (local backend) on this database.
    pub fn start_server(&self, dir: &Path) -> ServerProcess {
        let mut env = vec![("GANTRY_NO_LOCAL_RUNNER", "true")];
        if let Self::Postgres { url } = self {
            env.extend([
                ("GANTRY_DATABASE_URL", url.as_str()),
                ("GANTRY_SECRET_KEY", KEY),
            ]);
        }
        let log = dir.join("server.log");
        super::start_server(&dir.join("data"), "local", &env, &log)
    }

    /// The store of the server [`Database::start_server`] started in `dir`.
    pub async fn open_store(&self, dir: &Path) -> Arc<dyn Store> {
        match self {
            Self::Sqlite => super::open_store(&dir.join("data")).await,
            Self::Postgres { url } => super::postgres::open_store(url).await,
        }
    }
}

/// A `gantry runner` child process, killed (SIGKILL) when dropped.
pub struct RunnerProcess(pub Child);

impl Drop for RunnerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl RunnerProcess {
    /// Waits for the runner to exit by itself.
    pub async fn exited(&mut self) -> ExitStatus {
        loop {
            if let Some(status) = self.0.try_wait().expect("wait") {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `gantry runner --name <name>` for the server at `server` (a URL) with `token`: its
/// workspaces in `dir/<name>-workspaces`, its log (stderr) in `dir/<name>.log`, nothing
/// on stdin or stdout. The caller adds the rest and spawns it.
pub fn runner_command(server: &str, token: &str, name: &str, dir: &Path) -> Command {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}.log")))
        .expect("runner log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_gantry"));
    command
        .args(["runner", "--name", name])
        .arg("--workspaces")
        .arg(dir.join(format!("{name}-workspaces")))
        .args(["--server", server, "--token", token])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    command
}

/// Spawns what [`runner_command`] (and the caller) made.
pub fn spawn_runner(mut command: Command) -> RunnerProcess {
    RunnerProcess(command.spawn().expect("gantry runner starts"))
}

/// `gantry runner --backend local` named `name`, its workspaces in `dir/<name>-workspaces`,
/// its log in `dir/<name>.log`.
pub fn start_runner(
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

/// `gantry runner` with `args` and `env` of the caller's choosing.
pub fn start_runner_with(
    server: &ServerProcess,
    token: &str,
    name: &str,
    capacity: u32,
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> RunnerProcess {
    let mut command = runner_command(&server.base, token, name, dir);
    command
        .args(args)
        .envs(env.iter().copied())
        .args(["--capacity", &capacity.to_string()]);
    spawn_runner(command)
}

/// A new runner token named `name`.
pub async fn runner_token(store: &Arc<dyn Store>, name: &str) -> String {
    let new = NewToken {
        name: name.into(),
        subject: name.into(),
        role: TokenRole::Runner,
        scope: None,
    };
    let (_, plaintext) = store.create_token(&new, now_ms()).await.expect("token");
    plaintext.expose().to_string()
}

/// True while process `pid` runs (a zombie, ended but not reaped, does not count).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => (stat.rsplit_once(')'))
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Polls until process `pid` is gone (the caller's `within` bounds it).
pub async fn wait_until_dead(pid: u32) {
    while process_alive(pid) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls until a step wrote its pid into `path`, and returns it.
pub async fn wait_for_pid(path: &Path) -> u32 {
    loop {
        if let Some(pid) =
            (std::fs::read_to_string(path).ok()).and_then(|text| text.trim().parse().ok())
        {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Kills the `sleep` a step wrote into the pid file if it still runs when dropped, so a
/// failing test leaves no process behind.
pub struct SleeperGuard(pub PathBuf);

impl Drop for SleeperGuard {
    fn drop(&mut self) {
        let Some(pid) = (std::fs::read_to_string(&self.0).ok())
            .and_then(|text| text.trim().parse::<u32>().ok())
        else {
            return;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "sleep" && process_alive(pid) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// A step script that, the first time, starts `sleep 300` in the background, writes its
/// pid into `pid_file` and waits for it; the next time it says so and ends at once.
pub fn sleep_once(pid_file: &Path) -> String {
    format!(
        "if [ -e {p} ]; then echo second attempt; else echo first attempt; sleep 300 & echo $! > {p}.tmp; mv {p}.tmp {p}; wait; fi",
        p = pid_file.display()
    )
}

/// A pipeline of one step `step` running [`sleep_once`] with `pid_file`.
pub fn sleep_once_pipeline(step: &str, pid_file: &Path) -> String {
    format!(
        "clone:\n  disable: true\nsteps:\n  - name: {step}\n    image: busybox\n    commands:\n      - \"{}\"\n",
        sleep_once(pid_file)
    )
}

/// Five numbered lines, then a line appended to `runs` (to count how often it ran).
fn pipeline(n: usize, runs: &Path) -> String {
    format!(
        "clone:\n  disable: true\nsteps:\n  - name: count\n    image: busybox\n    commands:\n      - \"for i in 1 2 3 4 5; do echo build-{n}-line-$i; done\"\n  - name: after\n    image: busybox\n    commands: [\"echo ran-{n} >> {runs}\"]\n    depends_on: [count]\n",
        runs = runs.display()
    )
}

/// Step log lines without the command echoes.
fn texts(lines: &[gantry_store::LogLine]) -> Vec<&str> {
    (lines.iter().map(|l| l.text.as_str()))
        .filter(|t| !t.starts_with("+ "))
        .collect()
}

/// Three runners of capacity 2 drain 30 queued builds: each build runs exactly once,
/// succeeds with every log line once and in order, and the work is shared.
pub async fn three_runners_drain_thirty_builds(db: &Database) {
    let dir = tempfile::tempdir().unwrap();
    let server = db.start_server(dir.path());
    let runs = dir.path().join("runs");
    within(120, "three runners drain the queue", async {
        let store = db.open_store(dir.path()).await;
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
            let expected: Vec<String> = (1..=5).map(|i| format!("build-{n}-line-{i}")).collect();
            assert_eq!(texts(&lines), expected, "every line once, in order");
        }
        let items = store.list_pending().await.unwrap();
        assert!(items.is_empty(), "nothing left in the queue");
        assert!(
            runners_seen.len() > 1,
            "the work was shared: {runners_seen:?}"
        );
        super::assert_each_ran_once(&runs, 30);
    })
    .await;
    drop(server);
}

/// A runner killed (`kill -9`) mid-step: its step's process outlives it until the runner
/// starts again, which first kills it and removes the workspace; the workflow comes back
/// once the lease ended and the second attempt succeeds, both attempts' lines kept.
pub async fn a_runner_killed_mid_step_is_requeued_within_the_lease(db: &Database) {
    let dir = tempfile::tempdir().unwrap();
    let server = db.start_server(dir.path());
    let pid_file = dir.path().join("sleep.pid");
    let _sleeper = SleeperGuard(pid_file.clone());
    within(120, "kill -9 of a runner", async {
        let store = db.open_store(dir.path()).await;
        let repo = create_repo(&store, "kill").await;
        // The first attempt hangs (until the test kills its runner); the second finishes.
        let yaml = sleep_once_pipeline("work", &pid_file);
        let build = queue_build(&store, &repo, &yaml).await;
        let token = runner_token(&store, "k").await;
        let first = start_runner(&server, &token, "k", 1, dir.path());
        let sleeper = wait_for_pid(&pid_file).await;
        // Killed once its first line is stored (what a runner sent is kept).
        let step_id = build.workflows[0].steps[0].id;
        let stored =
            |lines: Vec<gantry_store::LogLine>| lines.iter().any(|l| l.text == "first attempt");
        while !stored(store.read_logs(step_id, None, 0).await.unwrap()) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(first); // SIGKILL: the runner says nothing more
        let workspaces = dir.path().join("k-workspaces");
        let left = std::fs::read_dir(&workspaces)
            .map(|d| d.count())
            .unwrap_or(0);
        assert!(left > 0, "the killed run's workspace is still there");
        assert!(
            process_alive(sleeper),
            "the step's process outlives its runner"
        );

        // The same runner comes back: it kills the step the killed run left, removes its
        // workspace, and gets the workflow again once the lease ended.
        let _second = start_runner(&server, &token, "k", 1, dir.path());
        wait_until_dead(sleeper).await;
        let done = wait_build(&store, build.build.id, |d| d.build.status.is_terminal()).await;
        assert_eq!(
            done.build.status,
            RunStatus::Success,
            "{:?}",
            done.build.error
        );
        assert!(store.list_pending().await.unwrap().is_empty());
        // The retry numbers its lines after the first attempt's: both are kept.
        let lines = (store
            .read_logs(done.workflows[0].steps[0].id, None, 0)
            .await)
            .unwrap();
        assert_eq!(texts(&lines), ["first attempt", "second attempt"]);
        let left = std::fs::read_dir(&workspaces)
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(left, 0, "no workspace is left behind");
    })
    .await;
    drop(server);
}

/// A repository with the shortest timeout (1 minute, set through the API) and a step
/// that sleeps longer, run by a `gantry runner`: the server stops it at the timeout, the
/// build ends in `error` saying why, and the step's process is gone. Takes over a minute.
pub async fn a_remote_step_past_the_repository_timeout_is_stopped(db: &Database) {
    let dir = tempfile::tempdir().unwrap();
    let server = db.start_server(dir.path());
    let pid_file = dir.path().join("sleep.pid");
    let _sleeper = SleeperGuard(pid_file.clone());
    within(150, "repository timeout on a remote runner", async {
        let store = db.open_store(dir.path()).await;
        let repo = create_repo(&store, "slowpoke").await;
        let answer = reqwest::Client::new()
            .patch(format!("{}/api/repos/bin/slowpoke", server.base))
            .bearer_auth(super::ADMIN)
            .json(&serde_json::json!({"timeout_minutes": 1}))
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "{}", answer.status());
        let yaml = sleep_once_pipeline("forever", &pid_file);
        let build = queue_build(&store, &repo, &yaml).await;
        let token = runner_token(&store, "slow").await;
        let _runner = start_runner(&server, &token, "slow", 1, dir.path());
        let sleeper = wait_for_pid(&pid_file).await;
        let done = wait_build(&store, build.build.id, |d| d.build.status.is_terminal()).await;
        assert_eq!(done.build.status, RunStatus::Error, "{done:#?}");
        let why = done.workflows[0].workflow.error.clone().unwrap_or_default();
        assert!(
            why.contains("ran longer than the repository's timeout"),
            "{why}"
        );
        let build_error = done.build.error.clone().unwrap_or_default();
        assert!(
            build_error.contains("ran longer than the repository's timeout"),
            "{build_error}"
        );
        let step = &done.workflows[0].steps[0];
        assert_eq!(step.status, RunStatus::Killed, "{step:?}");
        wait_until_dead(sleeper).await;
        let lines = store.read_logs(step.id, None, 0).await.unwrap();
        assert_eq!(texts(&lines), ["first attempt"], "it ran once");
        let workspaces = dir.path().join("slow-workspaces");
        while std::fs::read_dir(&workspaces).map_or(0, |d| d.count()) > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    drop(server);
}
