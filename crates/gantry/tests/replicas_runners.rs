//! Runners across replicas: two `gantry server` processes on one throwaway Postgres, a
//! `gantry runner` connected to replica b. Replica a lists it, counts it when it says
//! what a pending workflow waits for, and stops listing it once b is gone (its rows are
//! no longer refreshed).

mod server_common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use gantry_store::{RunStatus, SecretKey, Store, StoreOptions};
use server_common::{
    ADMIN, ServerProcess, create_repo, queue_build, start_server, wait_build, within,
};

/// The key both replicas encrypt secrets with (they must share it).
const KEY: &str = "5f1c0e9a7b3d2c4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e";

/// A fresh database on the test binary's throwaway cluster; None (said) without Postgres.
fn fresh_database(name: &str) -> Option<String> {
    let admin = match gantry_testsupport::postgres::admin_url() {
        Ok(url) => url,
        Err(reason) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("Postgres is required under CI=true: {reason}");
            }
            eprintln!("skipped: Postgres is not available: {reason}");
            return None;
        }
    };
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let name = format!(
        "{name}_{}_{}",
        std::process::id(),
        since.map_or(0, |d| d.as_nanos())
    );
    let created = Command::new("psql")
        .arg(&admin)
        .args(["-q", "-c", &format!("CREATE DATABASE {name}")])
        .output()
        .expect("psql runs");
    assert!(created.status.success(), "{created:?}");
    let (server, _) = admin.rsplit_once('/').expect("a database part");
    Some(format!("{server}/{name}"))
}

fn start_replica(dir: &Path, name: &str, url: &str) -> ServerProcess {
    let env = [
        ("GANTRY_DATABASE_URL", url),
        ("GANTRY_SECRET_KEY", KEY),
        ("GANTRY_NO_LOCAL_RUNNER", "true"),
    ];
    start_server(
        &dir.join(name),
        "local",
        &env,
        &dir.join(format!("{name}.log")),
    )
}

/// A `gantry runner` child process, killed when dropped.
struct RunnerProcess(std::process::Child);

impl Drop for RunnerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn get_json(server: &ServerProcess, path: &str) -> serde_json::Value {
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
    let Some(url) = fresh_database("gantry_replicas_runners") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let a = start_replica(dir.path(), "a", &url);
    let mut b = start_replica(dir.path(), "b", &url);
    let gate = dir.path().join("gate");
    within(150, "runners across replicas", async {
        let options = StoreOptions::new(SecretKey::parse(KEY).unwrap());
        let store: Arc<dyn Store> = gantry_store::connect(&url, options).await.expect("store");
        let repo = create_repo(&store, "spread").await;
        let new = gantry_store::NewToken {
            name: "gpu-01".into(),
            subject: "gpu-01".into(),
            role: gantry_store::TokenRole::Runner,
            scope: None,
        };
        let (_, token) = store.create_token(&new, gantry_store::now_ms()).await.expect("token");
        let log = std::fs::File::create(dir.path().join("runner.log")).expect("runner log");
        let _runner = RunnerProcess(
            Command::new(env!("CARGO_BIN_EXE_gantry"))
                .args(["runner", "--name", "gpu-01", "--backend", "local", "--capacity", "1"])
                .args(["--labels", "gpu=true"])
                .arg("--workspaces")
                .arg(dir.path().join("runner-workspaces"))
                .args(["--server", &b.base, "--token", token.expose()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("gantry runner starts"),
        );

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
