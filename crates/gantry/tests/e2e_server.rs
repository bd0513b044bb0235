//! End to end: a bare git repository with a `.pipeline.yml`, a commit, a signed generic
//! webhook to the real `gantry server`, real containers (the clone step included), a
//! websocket follower seeing lines while the step runs, `success`; a failing pipeline ends
//! in `failure`; an unsigned hook gets 401 and starts nothing.
//!
//! The clone step runs the real clone image (`gantry-test/git` with deploy/clone/clone.sh).
//! No network reaches the host from a container here, so the test commits a copy of the
//! bare repository into a derived image at the same absolute path: the `file://` clone URL
//! then names the same repository for the server (config fetch) and the clone container.

mod server_common;

use std::path::Path;
use std::process::Command;

use futures_util::StreamExt as _;
use std::sync::Arc;

use gantry_store::{BuildDetail, RunStatus, Store};
use server_common::{ADMIN, docker, open_store, start_server, within};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

const SECRET: &str = "e2e-webhook-secret-abcdef";

const PASSING: &str = "steps:\n  - name: test\n    image: gantry-test/busybox:latest\n    commands:\n      - test -f README.md\n      - for i in 1 2 3 4 5 6 7 8; do echo tick $i; sleep 0.25; done\n";
const FAILING: &str = "steps:\n  - name: test\n    image: gantry-test/busybox:latest\n    commands:\n      - echo about to fail\n      - exit 1\n";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Gantry E2E",
            "-c",
            "user.email=e2e@gantry.invalid",
        ])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn commit(work: &Path, pipeline: &str) -> String {
    std::fs::write(work.join(".pipeline.yml"), pipeline).unwrap();
    std::fs::write(work.join("README.md"), format!("{}\n", pipeline.len())).unwrap();
    git(work, &["add", "-A"]);
    git(work, &["commit", "-q", "-m", "pipeline"]);
    git(work, &["push", "-q", "origin", "HEAD:refs/heads/main"]);
    git(work, &["rev-parse", "HEAD"])
}

/// `gantry-test/git` plus the tree under /tmp that holds the bare repository.
fn build_clone_image(root: &Path, image: &str, test_id: &str) {
    let container = docker(&[
        "create",
        "--label",
        &format!("gantry.test={test_id}"),
        "gantry-test/git:latest",
    ]);
    let container = container.trim();
    assert!(!container.is_empty(), "docker create failed");
    let copied = Command::new("docker")
        .args(["cp", root.to_str().unwrap(), &format!("{container}:/tmp/")])
        .status()
        .unwrap();
    assert!(copied.success(), "docker cp failed");
    let label = format!("LABEL gantry.test={test_id}");
    let committed = docker(&["commit", "--change", &label, container, image]);
    assert!(!committed.trim().is_empty(), "docker commit failed");
    docker(&["rm", "-f", container]);
}

fn ready() -> bool {
    let image = |name: &str| {
        Command::new("docker")
            .args(["image", "inspect", name])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    image("gantry-test/busybox:latest") && image("gantry-test/git:latest")
}

async fn send_hook(base: &str, body: &str, signed: bool) -> u16 {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/hooks/generic"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if signed {
        let signature = gantry_forge::gantry_signature(body.as_bytes(), SECRET.as_bytes());
        request = request.header("X-Gantry-Signature", signature);
    }
    request.send().await.expect("hook sent").status().as_u16()
}

fn push_payload(clone_url: &str, sha: &str) -> String {
    serde_json::json!({
        "event": "push", "repo": "e2e/app", "clone_url": clone_url,
        "ref": "refs/heads/main", "after": sha, "message": "e2e", "author": "tester"
    })
    .to_string()
}

/// A bare repository under /tmp and the clone image that carries a copy of it.
struct Forge {
    root: tempfile::TempDir,
    work: std::path::PathBuf,
    clone_url: String,
    image: String,
    test_id: String,
}

impl Forge {
    fn new(test_id: &str) -> Self {
        let root = tempfile::Builder::new()
            .prefix("gantry-e2e-")
            .tempdir_in("/tmp")
            .unwrap();
        let (work, bare) = (root.path().join("work"), root.path().join("srv/app.git"));
        std::fs::create_dir_all(&work).unwrap();
        std::fs::create_dir_all(&bare).unwrap();
        git(&bare, &["init", "-q", "--bare"]);
        git(&work, &["init", "-q"]);
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        Forge {
            clone_url: format!("file://{}", bare.display()),
            image: format!("gantry-test/e2e-clone-{}:latest", std::process::id()),
            test_id: test_id.to_string(),
            work,
            root,
        }
    }

    /// Commits `pipeline`, pushes it, refreshes the clone image; the signed hook body.
    fn push(&self, pipeline: &str) -> String {
        let sha = commit(&self.work, pipeline);
        build_clone_image(self.root.path(), &self.image, &self.test_id);
        push_payload(&self.clone_url, &sha)
    }
}

/// Build `number` once `done` holds for it.
async fn wait_number(
    store: &Arc<dyn Store>,
    repo_id: i64,
    number: i64,
    done: impl Fn(&BuildDetail) -> bool,
) -> BuildDetail {
    loop {
        if let Some(build) = store.build_by_number(repo_id, number).await.unwrap()
            && done(&build)
        {
            return build;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Follows step `test` of build 1: tick lines seen, those seen while the step ran, and
/// the status of the end frame.
async fn follow_ticks(
    base: &str,
    store: &Arc<dyn Store>,
    build: &BuildDetail,
) -> (u32, u32, String) {
    let step_id = build.workflows[0]
        .steps
        .iter()
        .find(|s| s.name == "test")
        .expect("step")
        .id;
    let url = format!(
        "{}/api/repos/e2e/app/builds/1/steps/test/logs/stream",
        base.replacen("http", "ws", 1)
    );
    let mut request = url.into_client_request().unwrap();
    let bearer = format!("Bearer {ADMIN}").parse().unwrap();
    request.headers_mut().insert("authorization", bearer);
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("stream opens");
    let (mut ticks, mut live_ticks) = (0, 0);
    while let Some(Ok(message)) = ws.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let frame: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
        if frame["end"] == true {
            return (
                ticks,
                live_ticks,
                frame["status"].as_str().unwrap_or_default().into(),
            );
        }
        if frame["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("tick "))
        {
            ticks += 1;
            let now = store.build_by_id(build.build.id).await.unwrap().unwrap();
            let step = now.workflows[0]
                .steps
                .iter()
                .find(|s| s.id == step_id)
                .unwrap();
            live_ticks += u32::from(step.status == RunStatus::Running);
        }
    }
    panic!("the stream closed without an end frame");
}

async fn create_repo(base: &str, clone_url: &str) {
    let created = reqwest::Client::new()
        .post(format!("{base}/api/repos"))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({
            "owner": "e2e", "name": "app", "forge": "generic",
            "clone_url": clone_url, "webhook_secret": SECRET
        }))
        .send()
        .await
        .unwrap();
    let status = created.status().as_u16();
    assert_eq!(status, 201, "{}", created.text().await.unwrap_or_default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_push_builds_in_containers_and_streams_its_log_live() {
    if !ready() {
        eprintln!("skipped: no Docker engine or no gantry-test images (run .ci/images.sh)");
        return;
    }
    let test_id = format!("e2e-{}", std::process::id());
    let _reaper = server_common::Reaper(test_id.clone());
    let forge = Forge::new(&test_id);
    let server_dir = tempfile::tempdir().unwrap();
    let data = server_dir.path().join("data");
    let labels = format!("gantry.test={test_id}");
    let env = [
        ("GANTRY_DOCKER_LABELS", labels.as_str()),
        ("GANTRY_CLONE_IMAGE", forge.image.as_str()),
    ];
    within(240, "end to end", async {
        let server = start_server(&data, "docker", &env, &server_dir.path().join("server.log"));
        create_repo(&server.base, &forge.clone_url).await;
        let store = open_store(&data).await;
        let repo = store
            .repo_by_name("e2e", "app")
            .await
            .unwrap()
            .expect("repo");

        let payload = forge.push(PASSING);
        assert_eq!(
            send_hook(&server.base, &payload, false).await,
            401,
            "unsigned: 401"
        );
        let page = gantry_store::BuildPage {
            before_number: None,
            limit: 0,
        };
        assert!(
            store.list_builds(repo.id, page).await.unwrap().is_empty(),
            "nothing started"
        );
        let status = send_hook(&server.base, &payload, true).await;
        assert!(
            (200..300).contains(&status),
            "signed hook accepted: {status}"
        );
        let build = wait_number(&store, repo.id, 1, |b| !b.workflows.is_empty()).await;
        let (ticks, live_ticks, end) = follow_ticks(&server.base, &store, &build).await;
        assert_eq!((ticks, end.as_str()), (8, "success"));
        assert!(live_ticks > 0, "lines arrived while the step ran");
        let done = wait_number(&store, repo.id, 1, |b| b.build.status.is_terminal()).await;
        assert_eq!(done.build.status, RunStatus::Success, "{done:#?}");
        let clone = done.workflows[0].steps.iter().find(|s| s.kind == "clone");
        assert_eq!(clone.expect("a clone step").status, RunStatus::Success);

        let payload = forge.push(FAILING);
        assert!((200..300).contains(&send_hook(&server.base, &payload, true).await));
        let failed = wait_number(&store, repo.id, 2, |b| b.build.status.is_terminal()).await;
        assert_eq!(failed.build.status, RunStatus::Failure, "{failed:#?}");
        drop(server);
    })
    .await;
    docker(&["rmi", "-f", &forge.image]);
}
