//! Webhooks end to end inside the server: verification before any write, replays, and the
//! build a hook produces from a real git repository (file://).

mod api_support;

use api_support::{ADMIN, TestServer, git_repo, push_body, signed, table_counts, timed};
use reqwest::StatusCode;
use serde_json::json;

/// Headers of one hook attempt.
type Headers = Vec<(&'static str, String)>;

const PIPELINE: &str = "steps:\n  - name: test\n    image: busybox\n    commands: [echo hi]\n  - name: after\n    image: busybox\n    depends_on: [test]\n    commands: [echo done]\n";

#[tokio::test]
async fn sec_01_rejected_hooks_change_nothing() {
    timed(async {
        let server = TestServer::start().await;
        let git = tempfile::tempdir().unwrap();
        let (url, sha) = git_repo(git.path(), &[(".pipeline.yml", PIPELINE)]);
        let created = server.add_repo("acme", "app", &url, false).await;
        let secret = created["webhook_secret"].as_str().unwrap().to_string();
        let body = push_body("acme/app", &url, &sha);
        let before = table_counts(server.data_dir()).await;

        let mut tampered = body.clone();
        tampered[2] = b' ';
        let attempts: Vec<(Headers, Vec<u8>, StatusCode)> = vec![
            (
                vec![("content-type", "application/json".into())],
                body.clone(),
                StatusCode::UNAUTHORIZED,
            ),
            (
                signed(&body, "not-the-secret-at-all", "d1"),
                body.clone(),
                StatusCode::UNAUTHORIZED,
            ),
            (
                vec![("x-gantry-signature", "sha256=zz".into())],
                body.clone(),
                StatusCode::UNAUTHORIZED,
            ),
            (
                signed(&body, &secret, "d2"),
                tampered,
                StatusCode::UNAUTHORIZED,
            ),
            (
                signed(&body, &secret, "d3"),
                push_body("acme/other", &url, &sha),
                StatusCode::NOT_FOUND,
            ),
            (
                signed(b"{not json", &secret, "d4"),
                b"{not json".to_vec(),
                StatusCode::BAD_REQUEST,
            ),
        ];
        for (i, (headers, payload, expected)) in attempts.into_iter().enumerate() {
            let (status, answer) = server.raw("/hooks/generic", &headers, payload).await;
            assert_eq!(status, expected, "attempt {i}: {answer}");
            assert!(
                answer["error"]["message"].as_str().is_some(),
                "attempt {i}: {answer}"
            );
            assert!(
                !answer.to_string().contains(&secret),
                "the secret never appears in an answer"
            );
        }
        let github = br#"{"repository": {"full_name": "acme/app"}}"#.to_vec();
        let (status, _) = server
            .raw(
                "/hooks/github",
                &signed(&github, &secret, "d6"),
                github.clone(),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "a generic repository takes no GitHub hooks"
        );
        let (status, _) = server
            .raw("/hooks/svn", &signed(&body, &secret, "d5"), body.clone())
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(
            table_counts(server.data_dir()).await,
            before,
            "every table keeps its row count"
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_signed_push_gives_a_compiled_queued_build_and_a_replay_gives_none() {
    timed(async {
        let server = TestServer::start().await;
        let git = tempfile::tempdir().unwrap();
        let (url, sha) = git_repo(git.path(), &[(".pipeline.yml", PIPELINE)]);
        let secret = server.add_repo("acme", "app", &url, false).await["webhook_secret"]
            .as_str()
            .unwrap()
            .to_string();
        let body = push_body("acme/app", &url, &sha);

        let (status, answer) = server
            .raw(
                "/hooks/generic",
                &signed(&body, &secret, "delivery-1"),
                body.clone(),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        let build = server.wait_for_build("acme/app", 1).await;
        assert_eq!(build["status"], "pending", "{build}");
        assert_eq!(build["sha"], sha.as_str());
        assert_eq!(build["event"], "push");
        let steps: Vec<&str> = build["workflows"][0]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(steps, ["clone", "test", "after"]);
        let queued = server.state().store.list_pending().await.unwrap();
        assert_eq!(queued.len(), 1, "the workflow waits in the queue");

        let (status, answer) = server
            .raw(
                "/hooks/generic",
                &signed(&body, &secret, "delivery-1"),
                body.clone(),
            )
            .await;
        assert_eq!(
            (status, answer["status"].as_str()),
            (StatusCode::OK, Some("replayed"))
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let (_, builds) = server.get("/api/repos/acme/app/builds", Some(ADMIN)).await;
        assert_eq!(
            builds.as_array().unwrap().len(),
            1,
            "a replay starts no second build"
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_pipeline_that_does_not_compile_gives_an_error_build_with_positions() {
    timed(async {
        let server = TestServer::start().await;
        let git = tempfile::tempdir().unwrap();
        let broken = "steps:\n  - name: test\n    image: busybox\n    comands: [echo hi]\n";
        let (url, sha) = git_repo(git.path(), &[(".pipeline.yml", broken)]);
        let secret = server.add_repo("acme", "app", &url, false).await["webhook_secret"]
            .as_str()
            .unwrap()
            .to_string();
        let body = push_body("acme/app", &url, &sha);
        let (status, _) = server
            .raw("/hooks/generic", &signed(&body, &secret, "d"), body)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let build = server.wait_for_build("acme/app", 1).await;
        assert_eq!(build["status"], "error", "{build}");
        assert!(
            build["error"]
                .as_str()
                .unwrap()
                .contains("does not compile"),
            "{build}"
        );
        let first = &build["diagnostics"][0];
        assert_eq!(
            (first["line"].as_u64(), first["column"].as_u64()),
            (Some(4), Some(5)),
            "{build}"
        );
        assert!(
            first["message"].as_str().unwrap().contains("comands"),
            "{first}"
        );
        assert!(
            server
                .state()
                .store
                .list_pending()
                .await
                .unwrap()
                .is_empty()
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_build_no_pipeline_matches_is_skipped_with_the_reason() {
    timed(async {
        let server = TestServer::start().await;
        let git = tempfile::tempdir().unwrap();
        let tags_only = format!("when:\n  event: tag\n{PIPELINE}");
        let (url, sha) = git_repo(git.path(), &[(".pipeline.yml", &tags_only)]);
        let secret = server.add_repo("acme", "app", &url, false).await["webhook_secret"]
            .as_str()
            .unwrap()
            .to_string();
        let body = push_body("acme/app", &url, &sha);
        server
            .raw("/hooks/generic", &signed(&body, &secret, "d"), body)
            .await;
        let build = server.wait_for_build("acme/app", 1).await;
        assert_eq!(build["status"], "skipped", "{build}");
        assert!(build["error"].as_str().unwrap().contains("push"), "{build}");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn unknown_events_are_ignored_with_200_and_large_bodies_get_413() {
    timed(async {
        let server = TestServer::start().await;
        let created = server.post("/api/repos", Some(ADMIN), json!({
            "owner": "acme", "name": "app", "forge": "github", "clone_url": "file:///nowhere.git"
        })).await.1;
        let secret = created["webhook_secret"].as_str().unwrap();
        let body = serde_json::to_vec(
            &json!({"action": "opened", "repository": {"full_name": "acme/app"}}),
        )
        .unwrap();
        let headers = vec![
            ("content-type", "application/json".to_string()),
            ("x-github-event", "issues".to_string()),
            ("x-github-delivery", "g-1".to_string()),
            (
                "x-hub-signature-256",
                format!(
                    "sha256={}",
                    gantry_forge::hmac_hex(&body, secret.as_bytes())
                ),
            ),
        ];
        let (status, answer) = server.raw("/hooks/github", &headers, body).await;
        assert_eq!(
            (status, answer["status"].as_str()),
            (StatusCode::OK, Some("ignored")),
            "{answer}"
        );

        let huge = vec![b' '; gantry_forge::HOOK_BODY_LIMIT + 1];
        let (status, answer) = server.raw("/hooks/github", &headers, huge).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
        assert_eq!(answer["error"]["code"], "too_large");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn sec_02_a_forks_pull_request_gets_no_secrets() {
    timed(async {
        let server = TestServer::start().await;
        let git = tempfile::tempdir().unwrap();
        let pipeline = "steps:\n  - name: test\n    image: busybox\n    environment:\n      TOKEN: { from_secret: api_token }\n    commands: [echo hi]\n";
        let (url, sha) = git_repo(git.path(), &[(".pipeline.yml", pipeline)]);
        let secret = server.add_repo("acme", "app", &url, false).await["webhook_secret"]
            .as_str()
            .unwrap()
            .to_string();
        let path = "/api/repos/acme/app/secrets/api_token";
        let value = json!({"value": "s3cret-value"});
        server.call(reqwest::Method::PUT, path, Some(ADMIN), Some(value)).await;
        for (number, from_fork) in [(1, true), (2, false)] {
            let body = serde_json::to_vec(&json!({
                "event": "pull_request", "repo": "acme/app", "clone_url": url, "after": sha,
                "pull_request": {"number": number, "base_branch": "main", "from_fork": from_fork},
            }))
            .unwrap();
            let delivery = format!("pr-{number}");
            let (status, answer) = server.raw("/hooks/generic", &signed(&body, &secret, &delivery), body).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        }
        let fork = server.wait_for_build("acme/app", 1).await;
        let own = server.wait_for_build("acme/app", 2).await;
        let (fork, own) = if fork["git_ref"] == "refs/pull/1/head" { (fork, own) } else { (own, fork) };
        assert_eq!(fork["status"], "error", "{fork}");
        assert!(fork["diagnostics"].to_string().contains("api_token"), "{fork}");
        assert_eq!(own["status"], "pending", "{own}");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn path_conditions_see_the_files_a_push_changed() {
    timed(async {
        let server = TestServer::start().await;
        let git = tempfile::tempdir().unwrap();
        let pipeline = format!("when:\n  path:\n    include: [\"src/**\"]\n{PIPELINE}");
        let (url, first) = git_repo(
            git.path(),
            &[(".pipeline.yml", &pipeline), ("src/a.rs", "a")],
        );
        let work = git.path().join("work");
        let docs = api_support::commit(&work, &[("docs/readme.md", "hello")], "docs");
        let code = api_support::commit(&work, &[("src/b.rs", "b")], "code");
        api_support::git(
            &work,
            &["push", "-q", url.trim_start_matches("file://"), "main"],
        );
        let secret = server.add_repo("acme", "app", &url, false).await["webhook_secret"]
            .as_str()
            .unwrap()
            .to_string();
        for (number, before, after) in [(1, &first, &docs), (2, &docs, &code)] {
            let mut body: serde_json::Value =
                serde_json::from_slice(&push_body("acme/app", &url, after)).unwrap();
            body["before"] = json!(before);
            let body = serde_json::to_vec(&body).unwrap();
            let delivery = format!("push-{number}");
            let (status, _) = server
                .raw("/hooks/generic", &signed(&body, &secret, &delivery), body)
                .await;
            assert_eq!(status, StatusCode::ACCEPTED);
            // One at a time, so the build numbers follow the pushes.
            server.wait_for_build("acme/app", number).await;
        }
        let docs_build = server.wait_for_build("acme/app", 1).await;
        assert_eq!(docs_build["status"], "skipped", "{docs_build}");
        let code_build = server.wait_for_build("acme/app", 2).await;
        assert_eq!(code_build["status"], "pending", "{code_build}");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_commit_that_cannot_be_fetched_or_has_no_pipeline_gives_an_error_build() {
    timed(async {
        let server = TestServer::start().await;
        let git = tempfile::tempdir().unwrap();
        let (url, sha) = git_repo(git.path(), &[("README.md", "no pipeline here")]);
        let secret = server.add_repo("acme", "app", &url, false).await["webhook_secret"]
            .as_str()
            .unwrap()
            .to_string();
        let missing_commit = "1234567890abcdef1234567890abcdef12345678";
        for (number, after) in [(1, sha.as_str()), (2, missing_commit)] {
            let body = push_body("acme/app", &url, after);
            let delivery = format!("d-{number}");
            server
                .raw("/hooks/generic", &signed(&body, &secret, &delivery), body)
                .await;
            server.wait_for_build("acme/app", number).await;
        }
        let no_file = server.wait_for_build("acme/app", 1).await;
        assert_eq!(no_file["status"], "error", "{no_file}");
        assert!(
            no_file["error"].as_str().unwrap().contains(".pipeline.yml"),
            "{no_file}"
        );
        let no_commit = server.wait_for_build("acme/app", 2).await;
        assert_eq!(no_commit["status"], "error", "{no_commit}");
        assert!(
            no_commit["error"]
                .as_str()
                .unwrap()
                .contains("cannot fetch commit"),
            "{no_commit}"
        );
        server.stop().await;
    })
    .await;
}
