//! Crash recovery with a real process kill: `kill -9` of `gantry server` mid-build, then
//! a restart: the interrupted build ends in `error` saying why, its containers are gone,
//! and work that had not started runs.

mod server_common;

use std::collections::BTreeMap;

use gantry_store::{RunStatus, now_ms};
use server_common::{
    create_repo, docker_ready, labelled_objects, open_store, queue_build, start_server, wait_build,
    within,
};

const LONG: &str = "steps:\n  - name: long\n    image: gantry-test/busybox:latest\n    commands: [echo started, sleep 300]\n";
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
        let runner = format!(
            "server:{}",
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .unwrap()
                .trim()
        );
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
