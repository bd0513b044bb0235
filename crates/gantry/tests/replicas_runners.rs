//! Runners across replicas: two `gantry server` processes on one throwaway Postgres, a
//! `gantry runner` connected to replica b. Replica a lists it, counts it when it says
//! what a pending workflow waits for, and stops listing it once b is gone (its rows are
//! no longer refreshed).

mod server_common;

use std::path::Path;
use std::time::Duration;

use gantry_store::RunStatus;
use server_common::runners::{runner_token, start_runner_with};
use server_common::{
    ServerProcess, create_repo, get_json, postgres, queue_build, wait_build, within,
};

fn start_replica(dir: &Path, name: &str, url: &str) -> ServerProcess {
    postgres::start_replica(dir, name, url, &[("GANTRY_NO_LOCAL_RUNNER", "true")])
}

/// Polls `GET /api/runners` on `server` until `done` holds for the list.
async fn runners_until(
    server: &ServerProcess,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    loop {
        let list = get_json(server, "/api/runners").await;
        let list = list.as_array().cloned().unwrap_or_default();
        if done(&list) {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_on_one_replica_is_listed_and_counted_on_the_other() {
    let Some(url) = postgres::fresh_database("gantry_replicas_runners") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let a = start_replica(dir.path(), "a", &url);
    let mut b = start_replica(dir.path(), "b", &url);
    let gate = dir.path().join("gate");
    within(150, "runners across replicas", async {
        let store = postgres::open_store(&url).await;
        let repo = create_repo(&store, "spread").await;
        let token = runner_token(&store, "gpu-01").await;
        let args = ["--backend", "local", "--labels", "gpu=true"];
        let _runner = start_runner_with(&b, &token, "gpu-01", 1, dir.path(), &args, &[]);

        // Listed on both replicas, the same row: connected to b.
        let on_b = runners_until(&b, |l| l.len() == 1).await;
        let on_a = runners_until(&a, |l| l.len() == 1).await;
        // last_seen: now on b (its own runner), when b last wrote it on a.
        let without_seen = |list: &[serde_json::Value]| -> Vec<serde_json::Value> {
            (list.iter().cloned())
                .map(|mut r| {
                    r.as_object_mut().map(|o| o.remove("last_seen"));
                    r
                })
                .collect()
        };
        assert_eq!(without_seen(&on_a), without_seen(&on_b), "one runner, the same on both replicas");
        assert_eq!((on_a[0]["name"].as_str(), on_a[0]["labels"]["gpu"].as_str()), (Some("gpu-01"), Some("true")));
        let replica = on_a[0]["replica"].as_str().unwrap_or_default().to_owned();
        assert!(!replica.is_empty(), "{on_a:?}");

        // The runner is busy with a first gpu build; a second waits in the queue, and a
        // waits for b's runner rather than saying no runner fits.
        let busy_yaml = format!(
            "labels:\n  gpu: \"true\"\nclone:\n  disable: true\nsteps:\n  - name: hold\n    image: busybox\n    commands:\n      - \"while [ ! -e {g} ]; do sleep 0.1; done\"\n",
            g = gate.display()
        );
        let busy = queue_build(&store, &repo, &busy_yaml).await;
        wait_build(&store, busy.build.id, |d| d.workflows[0].steps[0].status == RunStatus::Running).await;
        let next = queue_build(&store, &repo, "labels:\n  gpu: \"true\"\nclone:\n  disable: true\nsteps:\n  - name: s\n    image: busybox\n    commands: [\"true\"]\n").await;
        let nobody = queue_build(&store, &repo, "labels:\n  tpu: \"true\"\nclone:\n  disable: true\nsteps:\n  - name: s\n    image: busybox\n    commands: [\"true\"]\n").await;
        for server in [&a, &b] {
            let json = get_json(server, &format!("/api/repos/bin/spread/builds/{}", next.build.number)).await;
            assert_eq!(json["workflows"][0]["status"], "pending", "{json}");
            assert!(json["workflows"][0].get("waiting_for").is_none(), "b's runner fits: {json}");
            let json = get_json(server, &format!("/api/repos/bin/spread/builds/{}", nobody.build.number)).await;
            assert_eq!(json["workflows"][0]["waiting_for"], "waiting for a runner with tpu=true", "{json}");
        }
        std::fs::write(&gate, b"open").unwrap();
        for build in [&busy, &next] {
            let done = wait_build(&store, build.build.id, |d| d.build.status.is_terminal()).await;
            assert_eq!(done.build.status, RunStatus::Success, "{:?}", done.build.error);
        }

        // Replica b dies without a word: its row is no longer refreshed, and a stops
        // listing (and counting) the runner within two leases.
        b.child.kill().expect("kill -9 of replica b");
        b.child.wait().expect("reaped");
        runners_until(&a, <[_]>::is_empty).await;
        let json = get_json(&a, &format!("/api/repos/bin/spread/builds/{}", nobody.build.number)).await;
        assert_eq!(json["workflows"][0]["waiting_for"], "waiting for a runner with tpu=true", "{json}");
        let again = queue_build(&store, &repo, "labels:\n  gpu: \"true\"\nclone:\n  disable: true\nsteps:\n  - name: s\n    image: busybox\n    commands: [\"true\"]\n").await;
        let json = get_json(&a, &format!("/api/repos/bin/spread/builds/{}", again.build.number)).await;
        assert_eq!(json["workflows"][0]["waiting_for"], "waiting for a runner with gpu=true", "{json}");
    })
    .await;
}
