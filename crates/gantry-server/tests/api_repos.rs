//! Repository administration over real HTTP: who may point a repository at the server's
//! own disk, and rotating its webhook secret.

mod api_support;

use api_support::{ADMIN, TestServer, push_body, signed, timed};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn local_clone_urls_need_an_admin_token() {
    timed(async {
        let server = TestServer::start().await;
        let https = "https://forge.invalid/acme/app.git";
        server.add_repo("acme", "app", https, false).await;
        let writer = server.user_token("wes", Some("repo:acme/*")).await;
        let patch = |token: &str, body: serde_json::Value| {
            let token = token.to_string();
            let server = &server;
            async move {
                server
                    .call(
                        Method::PATCH,
                        "/api/repos/acme/app",
                        Some(&token),
                        Some(body),
                    )
                    .await
            }
        };
        let moved = "https://forge.invalid/acme/moved.git";
        let (status, repo) = patch(&writer, json!({"clone_url": moved})).await;
        assert_eq!(
            (status, repo["clone_url"].as_str()),
            (StatusCode::OK, Some(moved))
        );
        for local in ["file:///etc", "/srv/git/other.git"] {
            let body = json!({"clone_url": local, "timeout_minutes": 7});
            let (status, answer) = patch(&writer, body).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{local}: {answer}");
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("admin") && message.contains(local),
                "{message}"
            );
        }
        let (_, repo) = server.get("/api/repos/acme/app", Some(ADMIN)).await;
        let unchanged = (repo["clone_url"].as_str(), repo["timeout_minutes"].as_i64());
        assert_eq!(
            unchanged,
            (Some(moved), Some(60)),
            "a refused change changes nothing"
        );
        let create = json!({"owner": "acme", "name": "lib", "forge": "generic",
                            "clone_url": "file:///srv/git/lib.git"});
        let (status, _) = server.post("/api/repos", Some(&writer), create).await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        let (status, answer) = patch(ADMIN, json!({"clone_url": " ", "timeout_minutes": 7})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        let (_, repo) = server.get("/api/repos/acme/app", Some(ADMIN)).await;
        assert_eq!(repo["timeout_minutes"], 60, "an empty URL changes nothing");

        let local = "file:///srv/git/app.git";
        let (status, repo) = patch(ADMIN, json!({"clone_url": local})).await;
        assert_eq!(
            (status, repo["clone_url"].as_str()),
            (StatusCode::OK, Some(local))
        );
        server
            .add_repo("acme", "lib", "file:///srv/git/lib.git", false)
            .await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_rotated_webhook_secret_refuses_hooks_signed_with_the_old_one() {
    timed(async {
        let server = TestServer::start().await;
        let url = "file:///nowhere.git";
        let created = server.add_repo("acme", "app", url, false).await;
        let old = created["webhook_secret"].as_str().unwrap().to_string();
        let rotate = "/api/repos/acme/app/webhook-secret";
        let reader = server.user_token("rita", Some("read:acme/app")).await;
        let (status, _) = server.post(rotate, Some(&reader), json!({})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "readers cannot rotate");
        let writer = server.user_token("wes", Some("repo:acme/app")).await;
        let (status, rotated) = server.post(rotate, Some(&writer), json!({})).await;
        assert_eq!(status, StatusCode::OK, "{rotated}");
        let new = rotated["webhook_secret"].as_str().unwrap().to_string();
        assert_eq!(new.len(), 64);
        assert_ne!(new, old);
        assert_eq!(rotated["hook_url"], created["hook_url"]);
        assert!(rotated["repo"].get("webhook_secret").is_none());

        let body = push_body("acme/app", url, &"a".repeat(40));
        let (status, _) = server
            .raw(
                "/hooks/generic",
                &signed(&body, &old, "d-old"),
                body.clone(),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "the old secret is refused"
        );
        let (status, answer) = server
            .raw("/hooks/generic", &signed(&body, &new, "d-new"), body)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        let (status, again) = server.post(rotate, Some(ADMIN), json!({})).await;
        assert_eq!(status, StatusCode::OK);
        assert_ne!(again["webhook_secret"].as_str(), Some(new.as_str()));
        server.stop().await;
    })
    .await;
}
