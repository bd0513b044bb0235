//! The API smoke test on Postgres: the same routes and hook path as on SQLite.

mod api_support;

use api_support::{ADMIN, TestServer, git_repo, postgres, push_body, signed, timed};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn api_smoke_on_postgres() {
    let admin_url = match postgres::admin_url() {
        Ok(url) => url,
        Err(reason) => {
            eprintln!("SKIPPED api_smoke_on_postgres: {reason}");
            return;
        }
    };
    timed(async {
        let server = TestServer::start_with(Some(admin_url)).await;
        let (status, ready) = server.get("/readyz", None).await;
        assert_eq!(
            (status, ready["database"].as_str()),
            (StatusCode::OK, Some("postgres"))
        );
        let git = tempfile::tempdir().unwrap();
        let pipeline = "steps:\n  - name: test\n    image: busybox\n    commands: [echo hi]\n";
        let (url, sha) = git_repo(git.path(), &[(".pipeline.yml", pipeline)]);
        let secret = server.add_repo("acme", "app", &url, true).await["webhook_secret"]
            .as_str()
            .unwrap()
            .to_string();
        let body = push_body("acme/app", &url, &sha);
        let (status, _) = server
            .raw(
                "/hooks/generic",
                &signed(&body, "wrong-secret-wrong", "x"),
                body.clone(),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = server
            .raw(
                "/hooks/generic",
                &signed(&body, &secret, "d-1"),
                body.clone(),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let build = server.wait_for_build("acme/app", 1).await;
        assert_eq!(build["status"], "pending", "{build}");
        let (_, replay) = server
            .raw("/hooks/generic", &signed(&body, &secret, "d-1"), body)
            .await;
        assert_eq!(replay["status"], "replayed");

        let outsider = server.user_token("otto", None).await;
        let (status, _) = server
            .get("/api/repos/acme/app/builds/1", Some(&outsider))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, cancelled) = server
            .post(
                "/api/repos/acme/app/builds/1/cancel",
                Some(ADMIN),
                json!({}),
            )
            .await;
        assert_eq!(
            (status, cancelled["status"].as_str()),
            (StatusCode::OK, Some("killed"))
        );
        server.stop().await;
    })
    .await;
}
