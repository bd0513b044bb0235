//! What a build page and a repository page cost and carry, over real HTTP: the first
//! error found once per finished step, diagnostics' source lines read only from commits
//! already at hand, and the row a repository page fetches for a build added live.

mod api_support;
mod web_support;

use api_support::{TestServer, git_repo, timed};
use gantry_store::{LogLine, RunStatus};
use reqwest::StatusCode;
use serde_json::Value;
use web_support::{
    Browser, admin_browser, build_with_diagnostics, finished_build, queued_build,
    with_a_passing_build, with_public_app,
};

/// The `data-first-error` of the build page's log.
async fn first_error_of(browser: &Browser, page: &str) -> String {
    let (status, _, html) = browser.get(page).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let marker = "data-first-error=\"";
    let start = html.find(marker).expect("the log") + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn the_first_error_past_the_first_page_is_found_once_per_finished_step() {
    timed(async {
        let server = with_public_app().await;
        let mut lines: Vec<String> = (1..=1_500).map(|n| format!("step {n} ok")).collect();
        lines[1_199] = "Error: the disk is full".into();
        let texts: Vec<&str> = lines.iter().map(String::as_str).collect();
        finished_build(
            &server,
            "acme/app",
            "refs/heads/main",
            RunStatus::Failure,
            &texts,
        )
        .await;
        let quiet: Vec<&str> = texts.iter().map(|_| "all quiet").collect();
        let detail = finished_build(
            &server,
            "acme/app",
            "refs/heads/main",
            RunStatus::Failure,
            &quiet,
        )
        .await;
        let (browser, _) = admin_browser(&server).await;
        assert_eq!(first_error_of(&browser, "/acme/app/builds/1").await, "1200");
        assert_eq!(first_error_of(&browser, "/acme/app/builds/2").await, "1500");

        // The answer for a finished step is kept: a line stored after it (which a finished
        // step never gets) does not make the page read the log again.
        let late = LogLine {
            number: 1_501,
            stream: "stdout".into(),
            text: "error: stored late".into(),
            elapsed_ms: 0,
        };
        let step = detail.workflows[0].steps[0].id;
        server
            .state()
            .store
            .append_logs(step, &[late])
            .await
            .unwrap();
        assert_eq!(first_error_of(&browser, "/acme/app/builds/2").await, "1500");
    })
    .await;
}

const DIAGNOSTICS: &str = r#"[{"severity":"error","code":"unknown-key","message":"unknown key `imag`","file":".pipeline.yml","line":3,"column":5,"help":"did you mean `image`?"}]"#;
const PIPELINE: &str = "steps:\n  test:\n    imag: busybox\n";

#[tokio::test]
async fn diagnostics_show_source_lines_only_from_commits_at_hand() {
    timed(async {
        let repos = tempfile::tempdir().unwrap();
        let (url, sha) = git_repo(repos.path(), &[(".pipeline.yml", PIPELINE)]);
        let server = TestServer::start().await;
        server.add_repo("acme", "local", &url, false).await;
        server
            .add_repo("acme", "far", "https://example.invalid/acme/far.git", false)
            .await;
        build_with_diagnostics(&server, "acme/local", &sha, DIAGNOSTICS).await;
        build_with_diagnostics(&server, "acme/far", &sha, DIAGNOSTICS).await;
        let (browser, _) = admin_browser(&server).await;

        let (status, _, html) = browser.get("/acme/local/builds/1").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            html.contains("<span class=\"source-line\">    imag: busybox</span>"),
            "{html}"
        );

        let (status, _, html) = browser.get("/acme/far/builds/1").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("unknown key `imag`"), "the problem is listed");
        assert!(
            !html.contains("source-line"),
            "no source line without the commit"
        );
        // No fetch was even started: the cache holds no repository for the remote.
        let cached: Vec<_> = std::fs::read_dir(server.state().git.dir())
            .unwrap()
            .filter_map(Result::ok)
            .map(|entry| entry.file_name())
            .collect();
        assert!(cached.is_empty(), "{cached:?}");
    })
    .await;
}

#[tokio::test]
async fn a_build_row_carries_every_column_of_the_repository_page() {
    timed(async {
        let server = with_a_passing_build().await;
        queued_build(&server, "acme/app", "refs/heads/dev", ("test", "commands")).await;
        let (browser, _) = admin_browser(&server).await;
        let (status, _, text) = browser.get("/acme/app/builds/1/row").await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let row: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(row["number"], 1);
        assert_eq!(row["status"], "success");
        assert_eq!(row["event"], "push");
        assert_eq!(row["branch"], "main");
        assert_eq!(
            row["message"], "a <b>bold</b> message",
            "escaped by the script"
        );
        assert_eq!(row["author"], "ada");
        assert!(
            row["created"].as_str().is_some_and(|t| !t.is_empty()),
            "{row}"
        );
        assert!(row["duration"].is_string(), "{row}");
        let (_, _, text) = browser.get("/acme/app/builds/2/row").await;
        let row: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (row["branch"].as_str(), row["status"].as_str()),
            (Some("dev"), Some("pending"))
        );

        let (status, _, _) = browser.get("/acme/app/builds/9/row").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        server
            .add_repo(
                "acme",
                "secret",
                "https://example.invalid/acme/secret.git",
                true,
            )
            .await;
        queued_build(
            &server,
            "acme/secret",
            "refs/heads/main",
            ("test", "commands"),
        )
        .await;
        let token = server.user_token("eve", None).await;
        let mut eve = Browser::new(&server);
        eve.sign_in(&token).await;
        let (status, _, _) = eve.get("/acme/secret/builds/1/row").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "private means 404");
        let (_, _, script) = browser.get("/assets/builds.js").await;
        assert!(script.contains("/row"), "new rows fetch their columns");
    })
    .await;
}
