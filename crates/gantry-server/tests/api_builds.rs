//! Builds through the API: manual triggers, cancel, restart, promote and approvals, on a
//! real git repository and SQLite (the in-process runner is off, so nothing runs).

mod api_support;

use api_support::{ADMIN, TestServer, git_repo, timed};
use gantry_store::{RunStatus, StatusChange, now_ms};
use reqwest::StatusCode;
use serde_json::{Value, json};

const PIPELINE: &str = "\
steps:
  - name: test
    image: busybox
    commands: [echo hi]
  - name: approve
    approval: { timeout: 1h }
    depends_on: [test]
  - name: deploy
    image: busybox
    depends_on: [approve]
    commands: [echo \"to $CI_DEPLOY_TARGET\"]
    when: { event: promote }
";

async fn server_with_repo() -> (TestServer, tempfile::TempDir, String) {
    let server = TestServer::start().await;
    let git = tempfile::tempdir().unwrap();
    let (url, sha) = git_repo(git.path(), &[(".pipeline.yml", PIPELINE)]);
    server.add_repo("acme", "app", &url, false).await;
    (server, git, sha)
}

fn step_names(build: &Value) -> Vec<String> {
    build["workflows"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

async fn set_status(server: &TestServer, number: i64, status: RunStatus) {
    let store = &server.state().store;
    let repo = store.repo_by_name("acme", "app").await.unwrap().unwrap();
    let build = store
        .build_by_number(repo.id, number)
        .await
        .unwrap()
        .unwrap();
    let change = StatusChange {
        status,
        at: now_ms(),
        error: None,
    };
    for workflow in &build.workflows {
        store
            .update_workflow_status(workflow.workflow.id, &change)
            .await
            .unwrap();
    }
    store
        .update_build_status(build.build.id, &change)
        .await
        .unwrap();
}

#[tokio::test]
async fn manual_triggers_build_a_branch_head_or_a_given_commit() {
    timed(async {
        let (server, _git, sha) = server_with_repo().await;
        let (status, build) = server
            .post(
                "/api/repos/acme/app/builds",
                Some(ADMIN),
                json!({"branch": "main"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{build}");
        assert_eq!(
            (build["number"].as_i64(), build["sha"].as_str()),
            (Some(1), Some(sha.as_str()))
        );
        assert_eq!(
            (build["event"].as_str(), build["sender"].as_str()),
            (Some("manual"), Some("admin"))
        );
        assert_eq!(step_names(&build), ["clone", "test", "approve"]);

        let (status, build) = server
            .post(
                "/api/repos/acme/app/builds",
                Some(ADMIN),
                json!({"sha": sha}),
            )
            .await;
        assert_eq!(
            (status, build["number"].as_i64()),
            (StatusCode::CREATED, Some(2))
        );

        let (status, body) = server
            .post(
                "/api/repos/acme/app/builds",
                Some(ADMIN),
                json!({"branch": "nope"}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let (status, _) = server
            .post(
                "/api/repos/acme/app/builds",
                Some(ADMIN),
                json!({"branch": "--upload-pack=x"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (status, _) = server
            .post(
                "/api/repos/acme/app/builds",
                Some(ADMIN),
                json!({"sha": "abc"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (status, _) = server
            .post("/api/repos/acme/app/builds", Some(ADMIN), json!({}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

        let (_, list) = server
            .get("/api/repos/acme/app/builds?limit=1", Some(ADMIN))
            .await;
        assert_eq!(list.as_array().unwrap().len(), 1);
        assert_eq!(list[0]["number"], 2, "newest first");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn cancel_kills_a_queued_build_and_restart_makes_a_child_build() {
    timed(async {
        let (server, _git, _) = server_with_repo().await;
        server
            .post(
                "/api/repos/acme/app/builds",
                Some(ADMIN),
                json!({"branch": "main"}),
            )
            .await;
        let (status, build) = server
            .post(
                "/api/repos/acme/app/builds/1/cancel",
                Some(ADMIN),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{build}");
        assert_eq!(build["status"], "killed");
        assert!(
            build["workflows"][0]["steps"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["status"] == "killed")
        );
        assert!(
            server
                .state()
                .store
                .list_pending()
                .await
                .unwrap()
                .is_empty(),
            "queued work is dropped"
        );
        let (status, _) = server
            .post(
                "/api/repos/acme/app/builds/1/cancel",
                Some(ADMIN),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT);

        let (status, child) = server
            .post(
                "/api/repos/acme/app/builds/1/restart",
                Some(ADMIN),
                json!({"failed_only": true}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{child}");
        assert_eq!(
            (child["number"].as_i64(), child["status"].as_str()),
            (Some(2), Some("pending"))
        );
        assert_eq!(child["parent_id"], build["id"]);
        assert!(
            child["workflows"][0]["steps"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["status"] == "pending"),
            "approvals start over"
        );
        let (status, _) = server
            .post(
                "/api/repos/acme/app/builds/2/restart",
                Some(ADMIN),
                json!({}),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::CONFLICT,
            "a running build is not restarted"
        );

        set_status(&server, 2, RunStatus::Success).await;
        let (status, body) = server
            .post(
                "/api/repos/acme/app/builds/2/restart",
                Some(ADMIN),
                json!({"failed_only": true}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        let url = format!("{}/api/repos/acme/app/builds/2/restart", server.base);
        let response = server
            .client
            .post(url)
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "no body restarts everything"
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn promote_builds_the_same_commit_with_event_promote_and_a_target() {
    timed(async {
        let (server, _git, sha) = server_with_repo().await;
        server
            .post(
                "/api/repos/acme/app/builds",
                Some(ADMIN),
                json!({"branch": "main"}),
            )
            .await;
        let (status, _) = server
            .post(
                "/api/repos/acme/app/builds/1/promote",
                Some(ADMIN),
                json!({"target": "production"}),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::CONFLICT,
            "only successful builds are promoted"
        );
        set_status(&server, 1, RunStatus::Success).await;
        let (status, _) = server
            .post(
                "/api/repos/acme/app/builds/1/promote",
                Some(ADMIN),
                json!({"target": "../etc"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (status, promoted) = server
            .post(
                "/api/repos/acme/app/builds/1/promote",
                Some(ADMIN),
                json!({"target": "production"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{promoted}");
        assert_eq!(
            (
                promoted["event"].as_str(),
                promoted["deploy_target"].as_str()
            ),
            (Some("promote"), Some("production"))
        );
        assert_eq!(promoted["sha"], sha.as_str());
        assert_eq!(
            step_names(&promoted),
            ["clone", "test", "approve", "deploy"],
            "steps for promote events run"
        );
        let store = &server.state().store;
        let workflow = store
            .build_by_id(promoted["id"].as_i64().unwrap())
            .await
            .unwrap()
            .unwrap()
            .workflows
            .remove(0)
            .workflow;
        assert!(
            workflow.plan.contains("CI_DEPLOY_TARGET"),
            "the plan carries the target"
        );
        assert!(workflow.plan.contains("production"));
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn approvals_record_who_and_when_once() {
    timed(async {
        let (server, _git, _) = server_with_repo().await;
        server
            .post(
                "/api/repos/acme/app/builds",
                Some(ADMIN),
                json!({"branch": "main"}),
            )
            .await;
        let mut decisions = server.state().approvals.subscribe();
        let approver = server.user_token("ada", Some("repo:acme/app")).await;
        let reader = server.user_token("rob", Some("read:acme/app")).await;
        let path = "/api/repos/acme/app/builds/1/steps/approve";
        let (status, _) = server
            .post(&format!("{path}/approve"), Some(&reader), json!({}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, body) = server
            .post(
                "/api/repos/acme/app/builds/1/steps/test/approve",
                Some(&approver),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        let (status, body) = server
            .post(&format!("{path}/approve"), Some(&approver), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            (
                body["approval"]["by"].as_str(),
                body["approval"]["decision"].as_str()
            ),
            (Some("ada"), Some("approved"))
        );
        let announced = decisions.recv().await.unwrap();
        assert_eq!(announced.approval.by, "ada");

        let (_, build) = server
            .get("/api/repos/acme/app/builds/1", Some(ADMIN))
            .await;
        let step = build["workflows"][0]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "approve")
            .unwrap()
            .clone();
        assert_eq!(step["status"], "success", "{step}");
        assert_eq!(step["approval"]["by"], "ada");
        assert!(step["approval"]["at"].as_i64().unwrap() > 0);
        let (status, _) = server
            .post(&format!("{path}/reject"), Some(ADMIN), json!({}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "a decision is final");
        let (status, _) = server
            .post(
                "/api/repos/acme/app/builds/1/steps/nope/reject",
                Some(ADMIN),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn metrics_count_builds_by_status_and_the_queue() {
    timed(async {
        let (server, _git, _) = server_with_repo().await;
        server
            .post(
                "/api/repos/acme/app/builds",
                Some(ADMIN),
                json!({"branch": "main"}),
            )
            .await;
        server
            .post(
                "/api/repos/acme/app/builds",
                Some(ADMIN),
                json!({"branch": "main"}),
            )
            .await;
        let metrics = || async {
            let url = format!("{}/metrics", server.base);
            reqwest::get(url).await.unwrap().text().await.unwrap()
        };
        let text = metrics().await;
        assert!(
            text.contains("gantry_builds_created_total{status=\"pending\"} 2"),
            "{text}"
        );
        assert!(text.contains("gantry_queue_depth 2"), "{text}");
        server
            .post(
                "/api/repos/acme/app/builds/1/cancel",
                Some(ADMIN),
                json!({}),
            )
            .await;
        loop {
            let text = metrics().await;
            if text.contains("gantry_builds_finished_total{status=\"killed\"} 1") {
                assert!(text.contains("gantry_queue_depth 1"), "{text}");
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        server.stop().await;
    })
    .await;
}
