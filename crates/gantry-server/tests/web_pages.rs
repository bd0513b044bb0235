//! The web UI over real HTTP: sign-in and its cookie, CSRF refusals, escaping of log
//! lines, private repositories answering 404, and the status badge.

mod api_support;
mod web_support;

use api_support::{ADMIN, TestServer, timed};
use gantry_store::RunStatus;
use reqwest::StatusCode;
use reqwest::header::{LOCATION, SET_COOKIE};
use web_support::{Attempt, Browser, admin_browser, finished_build, with_public_app};

#[tokio::test]
async fn sign_in_sets_a_strict_session_cookie_and_sign_out_ends_it() {
    timed(async {
        let server = TestServer::start().await;
        let mut browser = Browser::new(&server);
        let (status, headers, _) = browser.get("/").await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(headers[LOCATION], "/login");
        let (status, headers, html) = browser.get("/login").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("id=\"login-form\""));
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));

        let origin = server.base.clone();
        let (status, _, _) = browser
            .post("/login", Some(&origin), &[], &[("token", "wrong")])
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _, _) = browser.post("/login", None, &[], &[("token", ADMIN)]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "no Origin: refused");

        let (status, headers, _) = browser
            .post("/login", Some(&origin), &[], &[("token", ADMIN)])
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let cookie = headers[SET_COOKIE].to_str().unwrap();
        assert!(cookie.starts_with("gantry_session="), "{cookie}");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
        assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
        let tls = [("x-forwarded-proto", "https")];
        let (_, headers, _) = browser
            .post("/login", Some(&origin), &tls, &[("token", ADMIN)])
            .await;
        assert!(headers[SET_COOKIE].to_str().unwrap().contains("; Secure"));

        let (_, headers, _) = browser.get("/acme/app?before=3").await;
        assert_eq!(headers[LOCATION], "/login?next=/acme/app%3Fbefore%3D3");
        for (next, back_to) in [
            ("/acme/app?before=3", "/acme/app?before=3"),
            ("//evil.invalid", "/"),
        ] {
            let form = [("token", ADMIN), ("next", next)];
            let (_, headers, _) = browser.post("/login", Some(&origin), &[], &form).await;
            assert_eq!(headers[LOCATION], back_to);
        }

        browser.sign_in(ADMIN).await;
        let (status, _, html) = browser.get("/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("id=\"logout\""));
        let csrf = browser.csrf("/").await;
        let (status, headers, _) = browser
            .post("/logout", Some(&origin), &[], &[("csrf", &csrf)])
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert!(headers[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
        let (status, _, _) = browser.get("/").await;
        assert_eq!(
            status,
            StatusCode::SEE_OTHER,
            "the old cookie no longer works"
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn form_posts_without_the_csrf_token_or_from_elsewhere_are_refused() {
    timed(async {
        let server = with_public_app().await;
        let (browser, origin) = admin_browser(&server).await;
        let csrf = browser.csrf("/acme/app/settings").await;
        let path = "/acme/app/settings";
        let cases: [Attempt; 4] = [
            (Some(&origin), &[("timeout", "5")]),
            (Some(&origin), &[("timeout", "5"), ("csrf", "0123")]),
            (
                Some("http://evil.invalid"),
                &[("timeout", "5"), ("csrf", &csrf)],
            ),
            (None, &[("timeout", "5"), ("csrf", &csrf)]),
        ];
        for (post_origin, form) in cases {
            let (status, _, _) = browser.post(path, post_origin, &[], form).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{post_origin:?} {form:?}");
        }
        let repo = server
            .state()
            .store
            .repo_by_name("acme", "app")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(repo.timeout_minutes, 60, "a refused post changes nothing");

        let form = [("timeout", "5"), ("csrf", csrf.as_str())];
        let (status, _, _) = browser.post(path, Some(&origin), &[], &form).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let repo = server
            .state()
            .store
            .repo_by_name("acme", "app")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(repo.timeout_minutes, 5);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn log_lines_and_commit_messages_come_back_escaped() {
    timed(async {
        let server = with_public_app().await;
        let lines = [
            "compiling",
            "<script>alert('xss')</script>",
            "\u{1b}[31merror\u{1b}[0m: it broke",
        ];
        let build = finished_build(
            &server,
            "acme/app",
            "refs/heads/main",
            RunStatus::Failure,
            &lines,
        )
        .await;
        let (browser, _) = admin_browser(&server).await;
        let (status, _, html) = browser
            .get(&format!("/acme/app/builds/{}", build.build.number))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert!(!html.contains("<script>alert"), "{html}");
        let escaped = "<span class=\"line-text\">&#60;script&#62;alert(&#39;xss&#39;)&#60;/script&#62;</span>";
        assert!(html.contains(escaped), "{html}");
        assert!(!html.contains("<b>bold</b>"));
        assert!(
            html.contains(r#"<div class="log-line first-error" id="L3">"#),
            "{html}"
        );
        assert!(html.contains(r#"<span class="c1">error</span>"#), "{html}");
        assert!(html.contains(r##"id="log-first-error" class="button" href="#L3""##));
        let (status, headers, raw) = browser.get("/acme/app/builds/1/steps/test/log").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        assert!(raw.contains("<script>alert('xss')</script>\n"));
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_private_repository_is_404_to_a_non_member_and_shown_to_a_member() {
    timed(async {
        let server = TestServer::start().await;
        server
            .add_repo(
                "acme",
                "secret",
                "https://example.invalid/acme/secret.git",
                true,
            )
            .await;
        finished_build(
            &server,
            "acme/secret",
            "refs/heads/main",
            RunStatus::Success,
            &["ok"],
        )
        .await;
        let outsider_token = server.user_token("eve", None).await;
        let member_token = server.user_token("bob", Some("read:acme/secret")).await;
        let mut outsider = Browser::new(&server);
        outsider.sign_in(&outsider_token).await;
        for path in [
            "/acme/secret",
            "/acme/secret/builds/1",
            "/acme/secret/settings",
            "/acme/secret/builds/1/steps/test/log",
            "/acme/secret/builds/1/steps/test/lines?after=0",
            "/api/badges/acme/secret.svg",
        ] {
            let (status, _, _) = outsider.get(path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
        let (_, _, home) = outsider.get("/").await;
        assert!(!home.contains("acme/secret"));
        let anonymous = Browser::new(&server);
        let (status, _, _) = anonymous.get("/api/badges/acme/secret.svg").await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let mut member = Browser::new(&server);
        member.sign_in(&member_token).await;
        let (status, _, html) = member.get("/acme/secret").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains(r#"<tr class="build-row" data-number="1" data-status="success">"#));
        assert!(
            !html.contains("id=\"run-form\""),
            "a reader cannot run pipelines"
        );
        let (status, _, _) = member.get("/acme/secret/settings").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _, _) = member.get("/api/badges/acme/secret.svg").await;
        assert_eq!(status, StatusCode::OK);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn badges_show_the_newest_finished_build_of_a_branch() {
    timed(async {
        let server = with_public_app().await;
        let anonymous = Browser::new(&server);
        let (status, headers, svg) = anonymous.get("/api/badges/acme/app.svg").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("image/svg+xml")
        );
        assert!(
            headers["cache-control"]
                .to_str()
                .unwrap()
                .contains("no-cache")
        );
        assert!(
            svg.contains(">unknown<") && svg.contains("#9e9e9e"),
            "{svg}"
        );

        finished_build(
            &server,
            "acme/app",
            "refs/heads/main",
            RunStatus::Success,
            &[],
        )
        .await;
        finished_build(
            &server,
            "acme/app",
            "refs/heads/dev",
            RunStatus::Failure,
            &[],
        )
        .await;
        let (_, _, svg) = anonymous.get("/api/badges/acme/app.svg").await;
        assert!(
            svg.contains(">failing<") && svg.contains("#c62828"),
            "{svg}"
        );
        let (_, _, svg) = anonymous.get("/api/badges/acme/app.svg?branch=main").await;
        assert!(
            svg.contains(">passing<") && svg.contains("#2e7d32"),
            "{svg}"
        );
        assert!(svg.contains("<title>acme/app: passing</title>"));
        let (status, _, _) = anonymous.get("/api/badges/acme/nope.svg").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        server.stop().await;
    })
    .await;
}
