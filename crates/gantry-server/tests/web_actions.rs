//! The web UI's actions over real HTTP: the build buttons, secrets, and the log stream
//! opened with the session.

mod api_support;
mod web_support;

use api_support::timed;
use gantry_store::RunStatus;
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use web_support::{
    admin_browser, finished_build, page_socket, queued_build, with_a_passing_build, with_public_app,
};

#[tokio::test]
async fn a_step_stream_opens_with_the_session_only_from_our_own_pages() {
    use futures_util::StreamExt as _;
    timed(async {
        let server = with_public_app().await;
        let lines = ["one", "two", "three"];
        finished_build(
            &server,
            "acme/app",
            "refs/heads/main",
            RunStatus::Success,
            &lines,
        )
        .await;
        let (browser, origin) = admin_browser(&server).await;
        let path = "/acme/app/builds/1/steps/test/stream?after=1";
        let refused = page_socket(&server, &browser, path, "http://evil.invalid").await;
        assert!(refused.is_err(), "a socket from another site must not open");

        let mut socket = page_socket(&server, &browser, path, &origin).await.unwrap();
        let mut texts = Vec::new();
        while let Some(Ok(message)) = socket.next().await {
            let Ok(text) = message.into_text() else {
                continue;
            };
            let Ok(frame) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            if frame["end"] == true {
                assert_eq!(frame["status"], "success");
                break;
            }
            texts.push(frame["text"].as_str().unwrap().to_string());
        }
        assert_eq!(texts, ["two", "three"], "lines after 1, each once");

        let (status, _, body) = browser
            .get("/acme/app/builds/1/steps/test/lines?after=2")
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.lines().count(), 1, "{body}");
        assert!(body.contains("\"three\""));
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_build_buttons_restart_cancel_and_promote_through_the_api() {
    timed(async {
        let server = with_a_passing_build().await;
        let (browser, origin) = admin_browser(&server).await;
        let csrf = browser.csrf("/acme/app/builds/1").await;
        let (_, _, page) = browser.get("/acme/app/builds/1").await;
        for id in ["restart", "promote-form", "promote-target"] {
            assert!(
                page.contains(&format!("id=\"{id}\"")),
                "{id} on a successful build"
            );
        }
        assert!(!page.contains("id=\"cancel\""), "nothing to cancel");

        let form = [("csrf", csrf.as_str())];
        let (status, headers, _) = browser
            .post("/acme/app/builds/1/restart", Some(&origin), &[], &form)
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(headers[LOCATION], "/acme/app/builds/2");
        let (_, _, page) = browser.get("/acme/app/builds/2").await;
        assert!(page.contains(r#"<section id="build" class="panel" data-status="pending""#));
        assert!(page.contains("id=\"cancel\""));
        let (status, headers, _) = browser
            .post("/acme/app/builds/2/cancel", Some(&origin), &[], &form)
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(headers[LOCATION], "/acme/app/builds/2");
        let (_, _, page) = browser.get("/acme/app/builds/2").await;
        assert!(
            page.contains(r#"id="build-status" data-status="killed""#),
            "{page}"
        );

        let (status, _, page) = browser
            .post(
                "/acme/app/builds/2/promote",
                Some(&origin),
                &[],
                &[("csrf", &csrf), ("target", "production")],
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "only a success is promoted");
        assert!(
            page.contains("only a successful build can be promoted"),
            "{page}"
        );
        let (status, headers, _) = browser
            .post(
                "/acme/app/builds/1/promote",
                Some(&origin),
                &[],
                &[("csrf", &csrf), ("target", "production")],
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(headers[LOCATION], "/acme/app/builds/3");
        let (_, _, page) = browser.get("/acme/app/builds/3").await;
        assert!(page.contains("promote → production"), "{page}");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn secrets_are_added_and_deleted_and_their_values_never_shown() {
    timed(async {
        let server = with_public_app().await;
        let (browser, origin) = admin_browser(&server).await;
        let csrf = browser.csrf("/acme/app/settings").await;
        let value = "hunter2-never-shown";
        let form = [
            ("csrf", csrf.as_str()),
            ("name", "deploy_key"),
            ("value", value),
        ];
        let (status, _, _) = browser
            .post("/acme/app/secrets", Some(&origin), &[], &form)
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (_, _, page) = browser.get("/acme/app/settings").await;
        assert!(page.contains(r#"<tr class="secret-row" data-name="deploy_key">"#));
        assert!(!page.contains(value));
        let bad = [
            ("csrf", csrf.as_str()),
            ("name", "no spaces"),
            ("value", "x"),
        ];
        let (status, _, _) = browser
            .post("/acme/app/secrets", Some(&origin), &[], &bad)
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

        let form = [("csrf", csrf.as_str())];
        let path = "/acme/app/secrets/deploy_key/delete";
        let (status, _, _) = browser.post(path, Some(&origin), &[], &form).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (_, _, page) = browser.get("/acme/app/settings").await;
        assert!(!page.contains("data-name=\"deploy_key\""));
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_approval_step_is_approved_from_the_build_page() {
    timed(async {
        let server = with_public_app().await;
        let store = &server.state().store;
        let detail = queued_build(
            &server,
            "acme/app",
            "refs/heads/main",
            ("ship it?", "approval"),
        )
        .await;
        let step_id = detail.workflows[0].steps[0].id;
        let blocked = gantry_store::StepChange {
            status: RunStatus::Blocked,
            at: gantry_store::now_ms(),
            exit_code: None,
            error: None,
            runner_id: None,
        };
        assert!(store.update_step(step_id, &blocked).await.unwrap());

        let (browser, origin) = admin_browser(&server).await;
        let (_, _, page) = browser.get("/acme/app/builds/1").await;
        assert!(page.contains("id=\"approve\"") && page.contains("id=\"reject\""));
        let action = "/acme/app/builds/1/steps/ship%20it%3F/approve";
        assert!(page.contains(action), "{page}");
        let csrf = browser.csrf("/acme/app/builds/1").await;
        let (status, headers, _) = browser
            .post(action, Some(&origin), &[], &[("csrf", &csrf)])
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(headers[LOCATION], "/acme/app/builds/1");
        let after = store.build_by_id(detail.build.id).await.unwrap().unwrap();
        let step = &after.workflows[0].steps[0];
        assert_eq!(step.status, RunStatus::Success);
        assert_eq!(step.approval.as_ref().unwrap().by, "admin");
        server.stop().await;
    })
    .await;
}
