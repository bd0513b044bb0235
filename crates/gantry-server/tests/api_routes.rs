//! The API over real HTTP and a real SQLite file: each route family, auth failures, private
//! repositories, bad bodies.

mod api_support;

use api_support::{ADMIN, TestServer, timed};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn health_readiness_and_metrics_answer_without_a_token() {
    timed(async {
        let server = TestServer::start().await;
        let (status, body) = server.get("/healthz", None).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (StatusCode::OK, Some("ok"))
        );
        let (status, body) = server.get("/readyz", None).await;
        assert_eq!(
            (status, body["database"].as_str()),
            (StatusCode::OK, Some("sqlite"))
        );
        let text = reqwest::get(format!("{}/metrics", server.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text.contains("gantry_queue_depth 0"), "{text}");
        assert!(
            text.contains("# TYPE gantry_build_duration_seconds histogram"),
            "{text}"
        );
        let (status, body) = server.get("/no/such/route", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "not_found");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn repos_are_created_listed_read_updated_and_deleted() {
    timed(async {
        let server = TestServer::start().await;
        let created = server
            .add_repo("acme", "app", "file:///nowhere.git", false)
            .await;
        assert_eq!(created["repo"]["owner"], "acme");
        assert!(
            created["hook_url"]
                .as_str()
                .unwrap()
                .ends_with("/hooks/generic")
        );
        assert_eq!(created["webhook_secret"].as_str().unwrap().len(), 64);
        assert!(
            created["repo"].get("webhook_secret").is_none(),
            "the secret is never in a repo view"
        );

        let (status, list) = server.get("/api/repos", Some(ADMIN)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list.as_array().unwrap().len(), 1);

        let patch = json!({"timeout_minutes": 5, "private": true});
        let (status, repo) = server
            .call(
                Method::PATCH,
                "/api/repos/acme/app",
                Some(ADMIN),
                Some(patch),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{repo}");
        assert_eq!(
            (repo["timeout_minutes"].as_i64(), repo["private"].as_bool()),
            (Some(5), Some(true))
        );

        let (status, body) = server
            .post(
                "/api/repos",
                Some(ADMIN),
                json!({
                    "owner": "acme", "name": "app", "forge": "github", "clone_url": "file:///x.git"
                }),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("conflict"))
        );

        let (status, _) = server
            .call(Method::DELETE, "/api/repos/acme/app", Some(ADMIN), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = server.get("/api/repos/acme/app", Some(ADMIN)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn sec_13_every_route_family_checks_the_token_and_its_scope() {
    timed(async {
        let server = TestServer::start().await;
        server
            .add_repo("acme", "app", "file:///nowhere.git", false)
            .await;
        let reader = server.user_token("rita", Some("read:acme/app")).await;
        let (status, runner) = server
            .post(
                "/api/tokens",
                Some(ADMIN),
                json!({
                    "name": "r1", "subject": "runner-1", "role": "runner"
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let runner = runner["secret"].as_str().unwrap().to_string();
        let routes: [(Method, &str, Option<serde_json::Value>); 9] = [
            (Method::GET, "/api/repos", None),
            (Method::GET, "/api/repos/acme/app", None),
            (Method::GET, "/api/repos/acme/app/builds", None),
            (
                Method::POST,
                "/api/repos/acme/app/builds",
                Some(json!({"sha": "a".repeat(40)})),
            ),
            (Method::POST, "/api/repos/acme/app/builds/1/cancel", None),
            (Method::POST, "/api/repos/acme/app/webhook-secret", None),
            (Method::GET, "/api/repos/acme/app/secrets", None),
            (
                Method::PUT,
                "/api/repos/acme/app/secrets/s",
                Some(json!({"value": "v"})),
            ),
            (Method::GET, "/api/tokens", None),
        ];
        for (method, path, body) in &routes {
            let (status, answer) = server.call(method.clone(), path, None, body.clone()).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} without a token: {answer}"
            );
            assert_eq!(answer["error"]["code"], "unauthorized");
            let (status, _) = server
                .call(
                    method.clone(),
                    path,
                    Some("gantry_not_a_token"),
                    body.clone(),
                )
                .await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with a wrong token"
            );
            let (status, _) = server
                .call(method.clone(), path, Some(&runner), body.clone())
                .await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{method} {path} with a runner token"
            );
        }
        // A read-only token reads but cannot write, trigger, see secrets or manage tokens.
        let (status, _) = server
            .get("/api/repos/acme/app/builds", Some(&reader))
            .await;
        assert_eq!(status, StatusCode::OK);
        for (method, path, body) in &routes[3..] {
            let (status, answer) = server
                .call(method.clone(), path, Some(&reader), body.clone())
                .await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{method} {path} read-only: {answer}"
            );
        }
        let (status, _) = server
            .call(
                Method::PATCH,
                "/api/repos/acme/app",
                Some(&reader),
                Some(json!({"private": true})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        // A writer may change settings but only an admin marks a repository trusted.
        let writer = server.user_token("wes", Some("repo:acme/*")).await;
        let (status, _) = server
            .call(
                Method::PATCH,
                "/api/repos/acme/app",
                Some(&writer),
                Some(json!({"timeout_minutes": 9})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = server
            .call(
                Method::PATCH,
                "/api/repos/acme/app",
                Some(&writer),
                Some(json!({"trusted": true})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        // A revoked token stops working.
        let (_, tokens) = server.get("/api/tokens", Some(ADMIN)).await;
        let id = tokens
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["subject"] == "wes")
            .unwrap()["id"]
            .as_i64()
            .unwrap();
        let (status, _) = server
            .call(
                Method::DELETE,
                &format!("/api/tokens/{id}"),
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = server.get("/api/repos", Some(&writer)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn sec_12_private_repositories_answer_404_to_readers_without_access() {
    timed(async {
        let server = TestServer::start().await;
        server
            .add_repo("acme", "secret-app", "file:///nowhere.git", true)
            .await;
        let outsider = server.user_token("otto", None).await;
        let insider = server
            .user_token("ines", Some("read:acme/secret-app"))
            .await;
        let paths = [
            "/api/repos/acme/secret-app",
            "/api/repos/acme/secret-app/builds",
            "/api/repos/acme/secret-app/builds/1",
            "/api/repos/acme/secret-app/builds/1/steps/test/logs",
            "/api/repos/acme/secret-app/secrets",
        ];
        for path in paths {
            let (status, body) = server.get(path, Some(&outsider)).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
            let (missing, missing_body) = server
                .get(&path.replace("secret-app", "no-such-app"), Some(&outsider))
                .await;
            assert_eq!(missing, StatusCode::NOT_FOUND);
            assert_eq!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .replace("secret-app", "X"),
                missing_body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .replace("no-such-app", "X"),
                "a private repository looks exactly like a missing one"
            );
        }
        for (method, path) in [
            (Method::POST, "/api/repos/acme/secret-app/builds/1/cancel"),
            (Method::DELETE, "/api/repos/acme/secret-app"),
        ] {
            let (status, _) = server.call(method, path, Some(&outsider), None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
        let (_, list) = server.get("/api/repos", Some(&outsider)).await;
        assert_eq!(list, json!([]));
        let (status, _) = server
            .get("/api/repos/acme/secret-app/builds", Some(&insider))
            .await;
        assert_eq!(status, StatusCode::OK);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn bad_bodies_get_clear_errors_with_positions() {
    timed(async {
        let server = TestServer::start().await;
        let url = format!("{}/api/repos", server.base);
        let send = |body: &'static str| {
            server
                .client
                .post(&url)
                .bearer_auth(ADMIN)
                .header("content-type", "application/json")
                .body(body)
                .send()
        };
        let response = send("{\"owner\": \"acme\",\n \"name\": ").await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("line 2"),
            "{body}"
        );

        let response =
            send(r#"{"owner": "acme", "name": "app", "forge": "svn", "clone_url": "x"}"#)
                .await
                .unwrap();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(
            body["error"]["message"].as_str().unwrap().contains("svn"),
            "{body}"
        );

        let response =
            send(r#"{"owner": "a b", "name": "app", "forge": "github", "clone_url": "x"}"#)
                .await
                .unwrap();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);

        let big = "x".repeat(2 * 1024 * 1024);
        let response = server
            .client
            .post(&url)
            .bearer_auth(ADMIN)
            .header("content-type", "application/json")
            .body(big)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

        server
            .add_repo("acme", "app", "file:///nowhere.git", false)
            .await;
        let (status, body) = server
            .get("/api/repos/acme/app/builds?limit=many", Some(ADMIN))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], "bad_request", "{body}");
        let (status, _) = server
            .get("/api/repos/acme/app/builds/not-a-number", Some(ADMIN))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn secrets_are_set_listed_by_name_only_and_deleted() {
    timed(async {
        let server = TestServer::start().await;
        server
            .add_repo("acme", "app", "file:///nowhere.git", false)
            .await;
        let value = "hunter2-very-secret";
        let (status, _) = server
            .call(
                Method::PUT,
                "/api/repos/acme/app/secrets/api_token",
                Some(ADMIN),
                Some(json!({"value": value})),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, list) = server.get("/api/repos/acme/app/secrets", Some(ADMIN)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list[0]["name"], "api_token");
        assert!(!list.to_string().contains(value));
        let (status, _) = server
            .call(
                Method::PUT,
                "/api/repos/acme/app/secrets/bad%20name",
                Some(ADMIN),
                Some(json!({"value": "v"})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (status, _) = server
            .call(
                Method::DELETE,
                "/api/repos/acme/app/secrets/api_token",
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = server
            .call(
                Method::DELETE,
                "/api/repos/acme/app/secrets/api_token",
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_admin_token_is_generated_once_on_first_start() {
    timed(async {
        let dir = tempfile::tempdir().unwrap();
        let start = || async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let mut config = gantry_server::ServerConfig::new(dir.path());
            config.no_local_runner = true;
            gantry_server::launch(listener, config).await.unwrap()
        };
        let first = start().await;
        let token = first
            .admin_token()
            .expect("a first start makes an admin token")
            .to_string();
        assert!(token.starts_with("gantry_"));
        let url = format!("http://{}/api/tokens", first.addr());
        let client = reqwest::Client::new();
        let response = client.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        first.shutdown().await;

        let second = start().await;
        assert_eq!(second.admin_token(), None, "the token is shown only once");
        let url = format!("http://{}/api/tokens", second.addr());
        let response = client.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "the first token still works"
        );
        second.shutdown().await;
    })
    .await;
}
