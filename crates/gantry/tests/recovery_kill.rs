//! Crash recovery with a real process kill: `kill -9` of `gantry server` mid-build, then
//! a restart: the interrupted build ends in `error` saying why, its containers are gone,
//! work that had not started runs, and a hook accepted but not yet prepared is built.

mod server_common;

use std::collections::BTreeMap;

use gantry_store::{ForgeKind, NewRepo, RunStatus, now_ms};
use server_common::{
    create_repo, docker_ready, labelled_objects, open_store, queue_build, start_server, wait_build,
    within,
};

const LONG: &str = "steps:\n  - name: long\n    image: gantry-test/busybox:latest\n    commands: [echo started, sleep 300]\n";
const QUICK_LOCAL: &str = "clone:\n  disable: true\nsteps:\n  - name: quick\n    image: busybox\n    commands: [echo quick]\n";
const HOOK_SECRET: &str = "hook-secret-value-5678";
const QUICK: &str =
    "steps:\n  - name: quick\n    image: gantry-test/busybox:latest\n    commands: [echo quick]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_build_then_restart_ends_it_in_error_and_removes_its_containers() {
    if !docker_ready() {
        eprintln!("skipped: no Docker engine or no gantry-test/busybox image (run .ci/images.sh)");
        return;
    }
    let test_id = format!("recovery-{}", std::process::id());
    let _reaper = server_common::Reaper(test_id.clone());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let labels = format!("gantry.test={test_id}");
    let env = [("GANTRY_DOCKER_LABELS", labels.as_str())];
    within(120, "recovery", async {
        let mut first = start_server(&data, "docker", &env, &log);
        let store = open_store(&data).await;
        let repo = create_repo(&store, "crash").await;
        let build = queue_build(&store, &repo, LONG).await;
        wait_build(&store, build.build.id, |d| {
            d.workflows[0].steps[0].status == RunStatus::Running
        })
        .await;
        while labelled_objects(&test_id)
            .iter()
            .all(|o| !o.starts_with("ps:"))
        {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }

        first.child.kill().expect("kill -9"); // SIGKILL: no cleanup runs
        first.child.wait().expect("reaped");
        assert!(
            labelled_objects(&test_id)
                .iter()
                .any(|o| o.starts_with("ps:")),
            "the container outlives the killed server"
        );
        // While it is down: one build queued, and one claimed by the dead runner but not
        // started (as if it died right after claiming).
        let waiting = queue_build(&store, &repo, QUICK).await;
        let claimed = queue_build(&store, &repo, QUICK).await;
        let runner = gantry_server::run::backend::runner_id(&data);
        let mut taken = Vec::new();
        while let Some(item) = store
            .claim_next(&runner, &BTreeMap::new(), now_ms(), 600_000)
            .await
            .unwrap()
        {
            taken.push(item.build_id);
        }
        assert!(taken.contains(&claimed.build.id));

        let second = start_server(&data, "docker", &env, &log);
        let crashed = wait_build(&store, build.build.id, |d| d.build.status.is_terminal()).await;
        assert_eq!(crashed.build.status, RunStatus::Error);
        let why = crashed.build.error.clone().unwrap_or_default();
        assert!(why.contains("server stopped"), "the build says why: {why}");
        assert_eq!(crashed.workflows[0].steps[0].status, RunStatus::Error);
        for queued in [&waiting, &claimed] {
            let done = wait_build(&store, queued.build.id, |d| d.build.status.is_terminal()).await;
            assert_eq!(done.build.status, RunStatus::Success, "{done:#?}");
        }
        let left = labelled_objects(&test_id);
        drop(second);
        assert!(left.is_empty(), "left behind: {left:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_build_stops_it_and_records_why_before_exiting() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    within(60, "graceful stop", async {
        let mut server = start_server(&data, "local", &[], &log);
        let store = open_store(&data).await;
        let repo = create_repo(&store, "term").await;
        let build = queue_build(&store, &repo, LONG).await;
        wait_build(&store, build.build.id, |d| {
            d.workflows[0].steps[0].status == RunStatus::Running
        })
        .await;
        let pid = server.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        let exit = tokio::task::spawn_blocking(move || server.child.wait().map(|s| s.code()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(exit, Some(0), "a graceful stop exits 0");
        let stopped = store.build_by_id(build.build.id).await.unwrap().unwrap();
        assert_eq!(stopped.build.status, RunStatus::Error, "{stopped:#?}");
        let why = stopped.build.error.unwrap_or_default();
        assert!(why.contains("shut down"), "{why}");
    })
    .await;
}

/// True while `pid` runs (a zombie waiting for its parent does not count).
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_on_the_local_backend_then_restart_kills_left_steps_and_removes_workspaces() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let pid_file = dir.path().join("step.pid");
    // `$$$$` is the pipeline escape for the shell's `$$`: the step writes its own pid.
    let pipeline = format!(
        "steps:\n  - name: long\n    image: busybox\n    commands:\n      - echo $$$$ > {}\n      - exec sleep 300\n",
        pid_file.display()
    );
    within(60, "local recovery", async {
        let mut first = start_server(&data, "local", &[], &log);
        let store = open_store(&data).await;
        let repo = create_repo(&store, "localcrash").await;
        let build = queue_build(&store, &repo, &pipeline).await;
        let pid = loop {
            match std::fs::read_to_string(&pid_file) {
                Ok(pid) if !pid.trim().is_empty() => break pid.trim().to_string(),
                _ => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        };
        first.child.kill().expect("kill -9");
        first.child.wait().expect("reaped");
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            alive(&pid),
            "the step outlives the killed server: pid {pid}: {stat}"
        );
        let workspaces = data.join("workspaces");
        let left_before = std::fs::read_dir(&workspaces).unwrap().count();
        assert!(left_before > 0, "its workspace is still there");

        let _second = start_server(&data, "local", &[], &log);
        let ended = wait_build(&store, build.build.id, |d| d.build.status.is_terminal()).await;
        assert_eq!(ended.build.status, RunStatus::Error);
        while alive(&pid) {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let left: Vec<_> = std::fs::read_dir(&workspaces)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(left.is_empty(), "workspaces left: {left:?}");
    })
    .await;
}

/// A `git://` server whose connections wait until [`GatedGit::open`], then reach a real
/// `git daemon`: a fetch from it hangs until then.
struct GatedGit {
    url: String,
    gate: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    daemon: std::process::Child,
}

impl GatedGit {
    /// Serves the bare repositories under `base` (`git://.../<name>`) behind a closed gate.
    fn start(base: &std::path::Path, name: &str) -> GatedGit {
        use std::net::{TcpListener, TcpStream};
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        // The daemon binary itself: `git daemon` would run it as a child outliving a kill.
        let exec_path = std::process::Command::new("git")
            .arg("--exec-path")
            .output()
            .unwrap();
        let exec_path = String::from_utf8_lossy(&exec_path.stdout)
            .trim()
            .to_string();
        let daemon =
            std::process::Command::new(std::path::Path::new(&exec_path).join("git-daemon"))
                .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1"])
                .arg(format!("--port={port}"))
                .arg(format!("--base-path={}", base.display()))
                .arg(base)
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("git daemon");
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let gate = std::sync::Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("git://{}/{name}", listener.local_addr().unwrap());
        let waiting = gate.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let gate = waiting.clone();
                std::thread::spawn(move || {
                    let (open, changed) = &*gate;
                    drop(changed.wait_while(open.lock().unwrap(), |open| !*open));
                    let Ok(upstream) = TcpStream::connect(("127.0.0.1", port)) else {
                        return;
                    };
                    let (mut up_read, mut client_read) =
                        (upstream.try_clone().unwrap(), client.try_clone().unwrap());
                    let (mut up_write, mut client_write) = (upstream, client);
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut client_read, &mut up_write);
                        let _ = up_write.shutdown(std::net::Shutdown::Write);
                    });
                    let _ = std::io::copy(&mut up_read, &mut client_write);
                });
            }
        });
        GatedGit { url, gate, daemon }
    }

    /// Lets waiting and later connections through.
    fn open(&self) {
        *self.gate.0.lock().unwrap() = true;
        self.gate.1.notify_all();
    }
}

impl Drop for GatedGit {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// A bare repository `<dir>/app.git` with one commit holding `.pipeline.yml`; its commit.
fn bare_repo(dir: &std::path::Path, pipeline: &str) -> String {
    let git = |cwd: &std::path::Path, args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .current_dir(cwd)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join(".pipeline.yml"), pipeline).unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "first"]);
    git(dir, &["clone", "-q", "--bare", "work", "app.git"]);
    git(&work, &["rev-parse", "HEAD"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_a_hook_is_accepted_but_before_it_is_prepared_then_restart_builds_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let sha = bare_repo(dir.path(), QUICK_LOCAL);
    let origin = GatedGit::start(dir.path(), "app.git");
    within(90, "hook recovery", async {
        let mut first = start_server(&data, "local", &[], &log);
        let store = open_store(&data).await;
        let new = NewRepo::new(
            "bin",
            "hooked",
            ForgeKind::Generic,
            &origin.url,
            HOOK_SECRET,
        );
        let repo = store.create_repo(&new).await.unwrap();
        let body = serde_json::json!({"event": "push", "repo": "bin/hooked",
            "clone_url": origin.url, "ref": "refs/heads/main", "after": sha})
        .to_string();
        let send = |base: String, body: String| async move {
            let signature = gantry_forge::gantry_signature(body.as_bytes(), HOOK_SECRET.as_bytes());
            reqwest::Client::new()
                .post(format!("{base}/hooks/generic"))
                .header("content-type", "application/json")
                .header("X-Gantry-Signature", signature)
                .header("X-Gantry-Delivery", "delivery-1")
                .body(body)
                .send()
                .await
                .unwrap()
        };
        let answer = send(first.base.clone(), body.clone()).await;
        assert_eq!(answer.status().as_u16(), 202, "hook accepted");
        // The build is recorded while the fetch hangs at the closed gate.
        let build = store
            .build_by_number(repo.id, 1)
            .await
            .unwrap()
            .expect("recorded");
        assert_eq!(build.build.status, RunStatus::Pending);
        assert!(build.workflows.is_empty(), "not prepared yet");

        first.child.kill().expect("kill -9");
        first.child.wait().expect("reaped");
        origin.open();

        let second = start_server(&data, "local", &[], &log);
        let done = wait_build(&store, build.build.id, |d| d.build.status.is_terminal()).await;
        assert_eq!(done.build.status, RunStatus::Success, "{done:#?}");
        assert_eq!(done.build.sha, sha);
        assert_eq!(done.workflows[0].steps[0].name, "quick");
        let replay = send(second.base.clone(), body).await;
        assert_eq!(replay.status().as_u16(), 200, "a replay creates nothing");
        assert!(store.build_by_number(repo.id, 2).await.unwrap().is_none());
    })
    .await;
}
