//! Runs the real `gantry server` binary for tests that need a real process (kill -9) and
//! its real log output, and reaches its SQLite database directly.
#![allow(dead_code)] // each test file uses a different part

pub mod postgres;
pub mod runners;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gantry_pipeline::CompileContext;
use gantry_store::{
    BuildDetail, BuildEvent, ForgeKind, NewBuild, NewRepo, NewStep, NewWorkflow, Repo, RunStatus,
    SecretKey, Store, StoreOptions, now_ms,
};

/// The admin token the servers adopt.
pub const ADMIN: &str = "gantry-bin-admin-token-0123456789abc";
/// A commit id for pipelines that do not clone.
pub const SHA: &str = "89abcdef0123456789abcdef0123456789abcdef";

/// A `gantry server` child process.
pub struct ServerProcess {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// Where its stderr (the log) goes.
    pub log: PathBuf,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `gantry server` on a free port and waits for its "listening" line.
pub fn start_server(
    data_dir: &Path,
    backend: &str,
    env: &[(&str, &str)],
    log: &Path,
) -> ServerProcess {
    start_server_at("127.0.0.1:0", data_dir, backend, env, log)
}

/// A port free on 127.0.0.1 a moment ago (for a server that must be found again at the
/// same address once restarted).
pub fn free_port() -> u16 {
    (std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
        .local_addr()
        .expect("address")
        .port()
}

/// `gantry server --no-local-runner` (local backend) on a free port, its data in
/// `dir/data`, its log in `dir/server.log`.
pub fn start_remote_only_server(dir: &Path) -> ServerProcess {
    let env = [("GANTRY_NO_LOCAL_RUNNER", "true")];
    start_server(&dir.join("data"), "local", &env, &dir.join("server.log"))
}

/// Starts `gantry server --listen <listen>` and waits for its "listening" line.
pub fn start_server_at(
    listen: &str,
    data_dir: &Path,
    backend: &str,
    env: &[(&str, &str)],
    log: &Path,
) -> ServerProcess {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_gantry"));
    command
        .args(["server", "--listen", listen, "--backend", backend])
        .arg("--data-dir")
        .arg(data_dir)
        .env("GANTRY_ADMIN_TOKEN", ADMIN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("gantry server starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(addr) = line.strip_prefix("gantry: listening on ") {
                    break addr.trim().to_string();
                }
            }
            _ => {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                panic!("gantry server exited before listening; its log:\n{text}");
            }
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    ServerProcess {
        child,
        base,
        log: log.to_owned(),
    }
}

/// `GET <path>` on `server` as the admin: the JSON answer (a failure status fails the test).
pub async fn get_json(server: &ServerProcess, path: &str) -> serde_json::Value {
    let answer = reqwest::Client::new()
        .get(format!("{}{path}", server.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("GET");
    assert!(
        answer.status().is_success(),
        "GET {path}: {}",
        answer.status()
    );
    answer.json().await.expect("JSON")
}

/// `gantry <args> --server <base> --token <admin>`: (success, stdout, stderr).
pub fn gantry_as_admin(base: &str, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(args)
        .args(["--server", base, "--token", ADMIN])
        .output()
        .expect("gantry runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The output of the `gantry <args>` child once it exits; killed and failed after 60 s.
pub fn wait_within(mut child: Child, args: &[&str]) -> Output {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("gantry {args:?} did not finish within 60s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Opens the server's SQLite database (the server made the key file at its first start).
pub async fn open_store(data_dir: &Path) -> Arc<dyn Store> {
    let key = SecretKey::load(data_dir).expect("secret key");
    let url = gantry_store::default_database_url(data_dir);
    gantry_store::connect(&url, StoreOptions::new(key))
        .await
        .expect("store")
}

/// A repository `bin/<name>`.
pub async fn create_repo(store: &Arc<dyn Store>, name: &str) -> Repo {
    let new = NewRepo::new(
        "bin",
        name,
        ForgeKind::Generic,
        "file:///nonexistent.git",
        "hook-secret-value-5678",
    );
    store.create_repo(&new).await.expect("repo")
}

/// Compiles `yaml` without a clone step and queues it.
pub async fn queue_build(store: &Arc<dyn Store>, repo: &Repo, yaml: &str) -> BuildDetail {
    let ctx = CompileContext {
        repo: repo.full_name(),
        repo_url: repo.clone_url.clone(),
        sha: SHA.into(),
        git_ref: "refs/heads/main".into(),
        branch: "main".into(),
        clone: false,
        ..CompileContext::default()
    };
    let compiled = gantry_pipeline::compile(".pipeline.yml", yaml, &ctx).expect("compiles");
    let workflows: Vec<NewWorkflow> = compiled
        .plans
        .iter()
        .map(|plan| NewWorkflow {
            name: plan.name.clone(),
            plan: serde_json::to_string(plan).expect("json"),
            labels: plan.labels.clone(),
            steps: plan
                .services
                .iter()
                .chain(&plan.steps)
                .map(|s| NewStep {
                    name: s.name.clone(),
                    kind: serde_json::to_value(s.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default(),
                    needs: s.needs.clone(),
                })
                .collect(),
        })
        .collect();
    let build = NewBuild {
        repo_id: repo.id,
        event: BuildEvent::Push,
        git_ref: "refs/heads/main".into(),
        sha: SHA.into(),
        before: String::new(),
        message: "test".into(),
        author: "tester".into(),
        sender: "tester".into(),
        status: RunStatus::Pending,
        error: None,
        parent_id: None,
        deploy_target: None,
        diagnostics: None,
        created_at: now_ms(),
    };
    store.create_build(&build, &workflows).await.expect("build")
}

/// Polls the build until `done` holds.
pub async fn wait_build(
    store: &Arc<dyn Store>,
    id: i64,
    done: impl Fn(&BuildDetail) -> bool,
) -> BuildDetail {
    loop {
        let detail = store.build_by_id(id).await.expect("read").expect("exists");
        if done(&detail) {
            return detail;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks that `runs` holds the lines `ran-0` to `ran-<count - 1>`, each once, in any
/// order (each build of a drain appended its own).
pub fn assert_each_ran_once(runs: &Path, count: usize) {
    let mut ran: Vec<String> = (std::fs::read_to_string(runs).unwrap().lines())
        .map(String::from)
        .collect();
    ran.sort();
    let mut expected: Vec<String> = (0..count).map(|n| format!("ran-{n}")).collect();
    expected.sort();
    assert_eq!(ran, expected, "each build ran exactly once");
}

/// Fails the test instead of hanging it.
pub async fn within<T>(secs: u64, what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {secs}s: {what}"),
    }
}

/// Output of a docker CLI call (empty when docker is missing).
pub fn docker(args: &[&str]) -> String {
    Command::new("docker")
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default()
}

/// True when a Docker engine answers and the test images exist.
pub fn docker_ready() -> bool {
    Command::new("docker")
        .args(["image", "inspect", "gantry-test/busybox:latest"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Containers, networks and volumes carrying `gantry.test=<id>`.
pub fn labelled_objects(test_id: &str) -> Vec<String> {
    let filter = format!("label=gantry.test={test_id}");
    let mut found = Vec::new();
    for kind in [["ps", "-aq"], ["network", "ls"], ["volume", "ls"]] {
        let mut args: Vec<&str> = kind.to_vec();
        if kind[0] != "ps" {
            args.push("-q");
        }
        args.extend(["--filter", &filter]);
        found.extend(docker(&args).lines().map(|l| format!("{}:{l}", kind[0])));
    }
    found
}

/// Removes whatever carries `gantry.test=<id>`.
pub fn reap(test_id: &str) {
    let filter = format!("label=gantry.test={test_id}");
    for id in docker(&["ps", "-aq", "--filter", &filter]).lines() {
        docker(&["rm", "-f", id]);
    }
    for id in docker(&["network", "ls", "-q", "--filter", &filter]).lines() {
        docker(&["network", "rm", id]);
    }
    for id in docker(&["volume", "ls", "-q", "--filter", &filter]).lines() {
        docker(&["volume", "rm", "-f", id]);
    }
}

/// Removes what carries `gantry.test=<id>` when dropped, however the test ends.
pub struct Reaper(pub String);

impl Drop for Reaper {
    fn drop(&mut self) {
        reap(&self.0);
    }
}
