//! Scoped runner tokens against a real server and real `gantry runner` processes: a
//! token's `--repos` keep another repository's work from its runner (that work stays
//! queued and says why), and a runner declaring a label its token contradicts is refused
//! at hello.

mod server_common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use gantry_store::RunStatus;
use server_common::{
    ADMIN, ServerProcess, create_repo, open_store, queue_build, start_server, wait_build, within,
};

/// `gantry <args> --server <base> --token <admin>`: (success, stdout, stderr).
fn gantry(base: &str, args: &[&str]) -> (bool, String, String) {
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

/// A `gantry runner` child process, killed when dropped.
struct RunnerProcess(std::process::Child);

impl Drop for RunnerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_runner(
    server: &ServerProcess,
    token: &str,
    labels: &str,
    dir: &Path,
    name: &str,
) -> RunnerProcess {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("runner log");
    let child = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args([
            "runner",
            "--name",
            name,
            "--backend",
            "local",
            "--capacity",
            "1",
        ])
        .args(["--labels", labels])
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

const YAML: &str = "clone:\n  disable: true\nsteps:\n  - name: hi\n    image: busybox\n    commands: [\"echo hi\"]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec_13_a_scoped_runner_takes_only_its_repositories_work_and_cannot_contradict_its_labels()
{
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start_server(
        &data,
        "local",
        &[("GANTRY_NO_LOCAL_RUNNER", "true")],
        &dir.path().join("server.log"),
    );
    within(120, "scoped runner tokens", async {
        let store = open_store(&data).await;
        let mine = create_repo(&store, "mine").await;
        let theirs = create_repo(&store, "theirs").await;

        let (ok, token, said) = gantry(
            &server.base,
            &[
                "runner-token",
                "create",
                "gpu-box",
                "--labels",
                "gpu=true,zone=eu",
                "--repos",
                "bin/mine",
            ],
        );
        assert!(ok, "{said}");
        assert!(
            said.contains("(labels gpu=true,zone=eu; repositories bin/mine)"),
            "{said}"
        );
        let (ok, list, said) = gantry(&server.base, &["runner-token", "list"]);
        assert!(ok, "{said}");
        assert!(
            list.contains("LABELS")
                && list.contains("gpu=true,zone=eu")
                && list.contains("bin/mine"),
            "{list}"
        );
        let (ok, _, said) = gantry(
            &server.base,
            &["runner-token", "create", "x", "--repos", "not-a-repo"],
        );
        assert!(
            !ok && said.contains("owner/name"),
            "a bad scope is refused: {said}"
        );

        // Declares zone=eu as its token does, and nothing against it: accepted, and
        // routed with the token's gpu=true it did not declare.
        let _runner = start_runner(&server, token.trim(), "zone=eu", dir.path(), "scoped");
        let other = queue_build(&store, &theirs, YAML).await;
        let own = queue_build(
            &store,
            &mine,
            &("labels:\n  gpu: \"true\"\n".to_owned() + YAML),
        )
        .await;
        let done = wait_build(&store, own.build.id, |d| d.build.status.is_terminal()).await;
        assert_eq!(
            done.build.status,
            RunStatus::Success,
            "{:?}",
            done.build.error
        );

        let runners = get_json(&server, "/api/runners").await;
        let runner = &runners[0];
        assert_eq!(runner["labels"]["gpu"], "true", "{runners}");
        assert_eq!(
            runner["repos"],
            serde_json::json!(["bin/mine"]),
            "{runners}"
        );

        // The other repository's build was never handed to it, and says why it waits.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let waiting = store.build_by_id(other.build.id).await.unwrap().unwrap();
        assert_eq!(waiting.workflows[0].workflow.status, RunStatus::Pending);
        assert!(
            waiting.workflows[0]
                .steps
                .iter()
                .all(|s| s.runner_id.is_none())
        );
        let json = get_json(
            &server,
            &format!("/api/repos/bin/theirs/builds/{}", other.build.number),
        )
        .await;
        let reason = json["workflows"][0]["waiting_for"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            reason.contains("allowed to build bin/theirs")
                && reason.contains("restricted to other repositories"),
            "{json}"
        );

        // A runner declaring os=windows with a token that sets os=linux is refused.
        let (ok, linux_token, said) = gantry(
            &server.base,
            &[
                "runner-token",
                "create",
                "linux-box",
                "--labels",
                "os=linux",
            ],
        );
        assert!(ok, "{said}");
        let refused = Command::new(env!("CARGO_BIN_EXE_gantry"))
            .args([
                "runner",
                "--name",
                "liar",
                "--backend",
                "local",
                "--labels",
                "os=windows",
            ])
            .arg("--workspaces")
            .arg(dir.path().join("liar-workspaces"))
            .args(["--server", &server.base, "--token", linux_token.trim()])
            .stdin(Stdio::null())
            .output()
            .expect("gantry runner runs");
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "{said}");
        assert!(
            said.contains("`os=windows`") && said.contains("token sets `os=linux`"),
            "{said}"
        );
        let runners = get_json(&server, "/api/runners").await;
        assert_eq!(
            runners.as_array().map(Vec::len),
            Some(1),
            "only the scoped runner: {runners}"
        );
        let still = store.build_by_id(other.build.id).await.unwrap().unwrap();
        assert_eq!(still.workflows[0].workflow.status, RunStatus::Pending);
    })
    .await;
}
