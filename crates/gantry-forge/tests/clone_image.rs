//! The clone step for real: `gantry-test/git` (host git + deploy/clone/clone.sh, built by
//! .ci/images.sh) checks out an exact commit from a bare repository mounted into the
//! container, as the Docker backend would run the compiled clone step.

mod common;

use std::path::Path;
use std::process::Output;

use common::{Repo, TEST_TIMEOUT, git};
use tokio::process::Command;

const IMAGE: &str = "gantry-test/git:latest";

async fn run(program: &str, args: &[&str]) -> std::io::Result<Output> {
    Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
}

/// Builds the image once per test binary (a no-op when it is current); `false` when Docker
/// is unreachable.
async fn image_ready() -> bool {
    static READY: tokio::sync::OnceCell<bool> = tokio::sync::OnceCell::const_new();
    *READY.get_or_init(build_image).await
}

async fn build_image() -> bool {
    if !run("docker", &["version"])
        .await
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("SKIPPED clone_image: the Docker engine is not reachable");
        return false;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/images.sh");
    let out = run("bash", &[script.to_str().unwrap()]).await.unwrap();
    assert!(
        out.status.success(),
        "images.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

/// Removes every container of this test, whatever happened.
struct Reaper(String);

impl Drop for Reaper {
    fn drop(&mut self) {
        let filter = format!("label=gantry.test={}", self.0);
        let ids = std::process::Command::new("docker")
            .args(["ps", "-aq", "--filter", &filter])
            .output();
        if let Ok(ids) = ids {
            for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
                let _ = std::process::Command::new("docker")
                    .args(["rm", "-f", id])
                    .output();
            }
        }
    }
}

async fn current_user() -> String {
    let id = |flag: &'static str| async move {
        String::from_utf8(run("id", &[flag]).await.unwrap().stdout)
            .unwrap()
            .trim()
            .to_owned()
    };
    format!("{}:{}", id("-u").await, id("-g").await)
}

/// Runs the clone image as the current user, as the Docker backend runs the clone step.
async fn run_clone(test_id: &str, repo: &Repo, workspace: &Path, sha: &str) -> Output {
    let label = format!("gantry.test={test_id}");
    let repo_mount = format!("{}:/srv/git/app.git:ro", repo.bare.display());
    let workspace_mount = format!("{}:/workspace", workspace.display());
    let sha_env = format!("CI_COMMIT_SHA={sha}");
    let user = current_user().await;
    let args = [
        "run",
        "--label",
        &label,
        "--network",
        "none",
        "--user",
        &user,
        "-v",
        &repo_mount,
        "-v",
        &workspace_mount,
        "-e",
        "CI_REPO_URL=file:///srv/git/app.git",
        "-e",
        &sha_env,
        "-e",
        "CI_COMMIT_REF=refs/heads/main",
        "-e",
        "CI_WORKSPACE=/workspace",
        "-e",
        "PLUGIN_DEPTH=1",
        IMAGE,
    ];
    run("docker", &args).await.unwrap()
}

#[tokio::test]
async fn clone_image_checks_out_the_exact_commit_into_the_workspace() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        if !image_ready().await {
            return;
        }
        let repo = Repo::new("app");
        repo.commit("first", &[("README.md", Some("one\n"))]);
        let wanted = repo.commit(
            "second",
            &[
                ("README.md", Some("two\n")),
                ("src/main.rs", Some("fn main() {}\n")),
            ],
        );
        // The branch moves on: the clone must still check out `wanted`, not the tip.
        repo.commit("third", &[("README.md", Some("three\n"))]);
        let workspace = tempfile::tempdir().unwrap();
        let test_id = format!("forge-clone-{}", std::process::id());
        let _reaper = Reaper(test_id.clone());

        let out = run_clone(&test_id, &repo, workspace.path(), &wanted).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "clone failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains(&format!("checked out {wanted}")),
            "{stdout}"
        );

        let ws = workspace.path();
        assert_eq!(git(ws, &["rev-parse", "HEAD"]), wanted);
        assert_eq!(
            std::fs::read_to_string(ws.join("README.md")).unwrap(),
            "two\n"
        );
        assert!(ws.join("src/main.rs").is_file());
        assert_eq!(
            git(ws, &["rev-list", "--count", "HEAD"]),
            "1",
            "PLUGIN_DEPTH=1 fetches one commit"
        );
        assert_eq!(git(ws, &["status", "--porcelain"]), "", "a clean checkout");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn clone_image_fails_clearly_for_a_missing_commit() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        if !image_ready().await {
            return;
        }
        let repo = Repo::new("app");
        repo.commit("only", &[("a", Some("a"))]);
        let test_id = format!("forge-clone-missing-{}", std::process::id());
        let _reaper = Reaper(test_id.clone());
        let label = format!("gantry.test={test_id}");
        let repo_mount = format!("{}:/srv/git/app.git:ro", repo.bare.display());
        let args = [
            "run", "--label", &label, "--network", "none", "-v", &repo_mount,
            "-e", "CI_REPO_URL=file:///srv/git/app.git",
            "-e", "CI_COMMIT_SHA=1234567890123456789012345678901234567890",
            "-e", "CI_WORKSPACE=/workspace", IMAGE,
        ];
        let out = run("docker", &args).await.unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("clone: error: commit 1234567890123456789012345678901234567890 is not in file:///srv/git/app.git"), "{stderr}");
    })
    .await
    .expect("test timed out");
}
