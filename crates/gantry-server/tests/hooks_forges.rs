//! Real forge payloads (the forge crate's GitHub and GitLab fixtures, pointed at a local
//! repository) through the server's hook routes, signed the way each forge signs.

mod api_support;

use api_support::{ADMIN, TestServer, git_repo, timed};
use reqwest::StatusCode;
use serde_json::{Value, json};

const PIPELINE: &str = "steps:\n  - name: test\n    image: busybox\n    commands: [echo hi]\n";

fn fixture(path: &str) -> Value {
    let file = format!(
        "{}/../gantry-forge/tests/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
}

async fn add_repo(server: &TestServer, forge: &str, url: &str) -> String {
    let body = json!({"owner": "acme", "name": "app", "forge": forge, "clone_url": url});
    let (status, created) = server.post("/api/repos", Some(ADMIN), body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["webhook_secret"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_github_push_builds_with_the_pushers_login() {
    timed(async {
        let server = TestServer::start().await;
        let git = tempfile::tempdir().unwrap();
        let (url, sha) = git_repo(git.path(), &[(".pipeline.yml", PIPELINE)]);
        let secret = add_repo(&server, "github", &url).await;
        let mut push = fixture("github/push.json");
        push["after"] = json!(sha);
        push["head_commit"]["id"] = json!(sha);
        push["repository"]["full_name"] = json!("acme/app");
        let body = serde_json::to_vec(&push).unwrap();
        let signature = format!(
            "sha256={}",
            gantry_forge::hmac_hex(&body, secret.as_bytes())
        );
        let headers = vec![
            ("content-type", "application/json".to_string()),
            ("x-github-event", "push".to_string()),
            ("x-github-delivery", "gh-1".to_string()),
            ("x-hub-signature-256", signature),
        ];
        let (status, answer) = server.raw("/hooks/github", &headers, body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        let build = server.wait_for_build("acme/app", 1).await;
        assert_eq!(
            (build["status"].as_str(), build["sha"].as_str()),
            (Some("pending"), Some(sha.as_str()))
        );
        assert_eq!(
            build["sender"], "octocat",
            "identity from the forge, not the commit author"
        );
        assert!(!build.to_string().contains("ceo@example.com"));
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_gitlab_push_builds_and_a_wrong_token_is_refused() {
    timed(async {
        let server = TestServer::start().await;
        let git = tempfile::tempdir().unwrap();
        let (url, sha) = git_repo(git.path(), &[(".pipeline.yml", PIPELINE)]);
        let secret = add_repo(&server, "gitlab", &url).await;
        let mut push = fixture("gitlab/push.json");
        push["after"] = json!(sha);
        push["checkout_sha"] = json!(sha);
        push["project"]["path_with_namespace"] = json!("acme/app");
        let body = serde_json::to_vec(&push).unwrap();
        let headers = |token: &str| {
            vec![
                ("content-type", "application/json".to_string()),
                ("x-gitlab-event", "Push Hook".to_string()),
                ("x-gitlab-event-uuid", "gl-1".to_string()),
                ("x-gitlab-token", token.to_string()),
            ]
        };
        let (status, _) = server
            .raw(
                "/hooks/gitlab",
                &headers("wrong-token-wrong-token"),
                body.clone(),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, answer) = server.raw("/hooks/gitlab", &headers(&secret), body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        let build = server.wait_for_build("acme/app", 1).await;
        assert_eq!(build["status"], "pending", "{build}");
        assert_eq!(build["sender"], "jsmith");
        server.stop().await;
    })
    .await;
}
