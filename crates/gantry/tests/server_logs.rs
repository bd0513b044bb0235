//! Rule 10: the real `gantry server`, logging at trace level through a whole build (API
//! calls, a signed webhook, a clone, a step printing a secret), never writes a token, a
//! webhook secret or a secret value to its log.

mod server_common;

use std::path::Path;
use std::process::Command;

use gantry_store::RunStatus;
use server_common::{ADMIN, open_store, start_server, wait_build, within};

const HOOK_SECRET: &str = "sec10-webhook-secret-0f3a9c";
const SECRET_VALUE: &str = "sec10-deploy-key-77c2e1";
const PIPELINE: &str = "steps:\n  - name: use\n    image: busybox\n    environment:\n      KEY:\n        from_secret: deploy_key\n    commands:\n      - echo \"key=$KEY\"\n";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=T", "-c", "user.email=t@gantry.invalid"])
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
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec_10_the_server_never_logs_a_secret_even_at_trace() {
    let root = tempfile::tempdir().unwrap();
    let (work, bare) = (root.path().join("work"), root.path().join("app.git"));
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "-q", "--bare"]);
    git(&work, &["init", "-q"]);
    std::fs::write(work.join(".pipeline.yml"), PIPELINE).unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "pipeline"]);
    git(
        &work,
        &["push", "-q", bare.to_str().unwrap(), "HEAD:refs/heads/main"],
    );
    let sha = git(&work, &["rev-parse", "HEAD"]);
    let clone_url = format!("file://{}", bare.display());
    let data = root.path().join("data");
    let log = root.path().join("server.log");

    within(120, "sec_10", async {
        let server = start_server(&data, "local", &[("GANTRY_LOG", "trace")], &log);
        let http = reqwest::Client::new();
        let created = http
            .post(format!("{}/api/repos", server.base))
            .bearer_auth(ADMIN)
            .json(
                &serde_json::json!({"owner": "s", "name": "app", "forge": "generic",
                "clone_url": clone_url, "webhook_secret": HOOK_SECRET}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(created.status().as_u16(), 201);
        let set = http
            .put(format!(
                "{}/api/repos/s/app/secrets/deploy_key",
                server.base
            ))
            .bearer_auth(ADMIN)
            .json(&serde_json::json!({"value": SECRET_VALUE}))
            .send()
            .await
            .unwrap();
        assert!(set.status().is_success(), "secret set: {}", set.status());
        let body = serde_json::json!({"event": "push", "repo": "s/app", "clone_url": clone_url,
            "ref": "refs/heads/main", "after": sha})
        .to_string();
        let signature = gantry_forge::gantry_signature(body.as_bytes(), HOOK_SECRET.as_bytes());
        let hook = http
            .post(format!("{}/hooks/generic", server.base))
            .header("content-type", "application/json")
            .header("X-Gantry-Signature", &signature)
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(hook.status().is_success(), "hook: {}", hook.status());
        let store = open_store(&data).await;
        let repo = store.repo_by_name("s", "app").await.unwrap().unwrap();
        let build = loop {
            if let Some(b) = store.build_by_number(repo.id, 1).await.unwrap() {
                break b;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        let done = wait_build(&store, build.build.id, |d| d.build.status.is_terminal()).await;
        assert_eq!(done.build.status, RunStatus::Success, "{done:#?}");
        let logs = http
            .get(format!(
                "{}/api/repos/s/app/builds/1/steps/use/logs",
                server.base
            ))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            logs.contains("key=") && !logs.contains(SECRET_VALUE),
            "{logs}"
        );
        drop(server);
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.len() > 1000, "the server logged at trace level");
        for secret in [ADMIN, HOOK_SECRET, SECRET_VALUE] {
            assert!(!text.contains(secret), "the log holds `{secret}`");
        }
    })
    .await;
}
