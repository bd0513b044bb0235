//! Scoped runner tokens against a real server and real `gantry runner` processes: a
//! token's `--repos` keep another repository's work from its runner (that work stays
//! queued and says why), and a runner declaring a label its token contradicts is refused
//! at hello.

mod server_common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use gantry_store::RunStatus;
use server_common::runners::{RunnerProcess, runner_command, start_runner_with};
use server_common::{
    ServerProcess, create_repo, gantry_as_admin as gantry, get_json, open_store, queue_build,
    start_remote_only_server, wait_build, within,
};

/// A local `gantry runner` of capacity 1 declaring `labels`.
fn start_runner(
    server: &ServerProcess,
    token: &str,
    labels: &str,
    dir: &Path,
    name: &str,
) -> RunnerProcess {
    let args = ["--backend", "local", "--labels", labels];
    start_runner_with(server, token, name, 1, dir, &args, &[])
}

const YAML: &str = "clone:\n  disable: true\nsteps:\n  - name: hi\n    image: busybox\n    commands: [\"echo hi\"]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec_13_a_scoped_runner_takes_only_its_repositories_work_and_cannot_contradict_its_labels()
{
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start_remote_only_server(dir.path());
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
        let refused = runner_command(&server.base, linux_token.trim(), "liar", dir.path())
            .args(["--backend", "local", "--labels", "os=windows"])
            .stderr(Stdio::piped())
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
