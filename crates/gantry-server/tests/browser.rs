//! The web UI in a real, headless Chromium driven over WebDriver (Debian's chromium and
//! chromedriver, thirtyfour), checked through the ids, classes and data attributes the
//! pages promise (docs/ui.md); the server runs steps as host processes, so no Docker is
//! needed.
//!
//! Skipped with a message when Chromium is not installed, except under `CI=true`.
//! `GANTRY_SCREENSHOTS=1` also saves the screenshots in docs/screenshots/.

#[allow(unused_imports)] // the git helpers only
mod api_support;
#[path = "browser/mod.rs"]
mod harness;
mod run_common;

use harness::chrome::Browser;
use harness::site::Site;
use run_common::within;

/// Every browser test gives up after this long.
const TEST_SECS: u64 = 180;

const GREETING: &str =
    "steps:\n  - name: greet\n    image: busybox\n    commands:\n      - echo hello from gantry\n";

/// A compile step that fails after 300 lines, with its first error on the way.
const FAILING: &str = "steps:\n  - name: compile\n    image: busybox\n    commands:\n      - for i in $(seq 1 300); do echo \"compiling unit $i\"; done\n      - \"echo 'error[E0308]: mismatched types'; echo '  --> src/main.rs:4:18'; exit 1\"\n";

/// Prints a line, waits for the file GATE, prints another; a step before and one after
/// give the graph three nodes.
const GATED: &str = "steps:\n  - name: prepare\n    image: busybox\n    commands: [echo ready]\n  - name: test\n    image: busybox\n    commands:\n      - echo 'first line, before the wait'\n      - for i in $(seq 1 3000); do [ -f GATE ] && break; sleep 0.1; done\n      - echo 'last line, after the wait'\n    depends_on: [prepare]\n  - name: report\n    image: busybox\n    commands: [echo reported]\n    depends_on: [test]\n";

/// Log lines a page must show as text, never as markup.
const XSS_LINES: [&str; 2] = [
    "<script>window.__xss=1</script>",
    "<img src=x onerror=\"window.__xss=2\">",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_reaches_the_server() {
    within(TEST_SECS, "the browser reaches the server", async {
        let Some(browser) = Browser::open().await else {
            return;
        };
        let site = Site::start().await;
        browser.open_url(&site.url("/healthz")).await;
        let text = browser.texts("body").await.concat();
        assert!(text.contains("ok"), "{text}");
        browser.close().await;
        site.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_with_the_admin_token_shows_the_repositories() {
    within(TEST_SECS, "sign in", async {
        let Some(browser) = Browser::open().await else {
            return;
        };
        let site = Site::start().await;
        for (name, pipeline) in [("web", GREETING), ("api", FAILING), ("docs", GREETING)] {
            site.repo(name, pipeline).await;
        }
        for name in ["web", "api"] {
            let number = site.trigger(name).await;
            site.finished(name, number).await;
        }

        browser.open_url(&site.url("/login")).await;
        browser.fill("input#token", "not-a-token").await;
        browser.click("button#login-submit").await;
        browser.wait_css("#login-error").await;

        site.sign_in(&browser).await;
        let rows = browser.texts("tr.repo-row a.repo-link").await;
        assert_eq!(rows.len(), 3, "{rows:?}");
        for (repo, status) in [("test/web", "success"), ("test/api", "failure")] {
            let css =
                format!("tr.repo-row[data-repo='{repo}'] span.status[data-status='{status}']");
            browser.wait_css(&css).await;
        }
        browser.screenshot("repositories").await;

        browser.click("button#logout").await;
        browser.wait_css("form#login-form").await;
        browser.open_url(&site.url("/")).await;
        browser.wait_css("form#login-form").await;
        browser.close().await;
        site.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_form_starts_a_build_that_runs_to_success() {
    within(TEST_SECS, "run form", async {
        let Some(browser) = Browser::open().await else {
            return;
        };
        let site = Site::start().await;
        site.repo("web", GREETING).await;
        site.sign_in(&browser).await;
        browser.open_url(&site.url("/test/web")).await;
        browser.wait_css("#no-builds").await;
        browser.fill("form#run-form input#run-branch", "main").await;
        browser.click("button#run-submit").await;

        browser.wait_css("#build[data-number='1']").await;
        browser.wait_css("#build[data-status='success']").await;
        browser
            .wait_css("g.node[data-step='greet'][data-status='success']")
            .await;
        assert_eq!(site.build_status("web", 1).await, "success");

        browser.open_url(&site.url("/test/web")).await;
        browser
            .wait_css("tr.build-row[data-number='1'][data-status='success'] a.build-link")
            .await;
        browser.close().await;
        site.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_appear_while_the_step_runs() {
    within(TEST_SECS, "live log", async {
        let gated = |site: &Site| GATED.replace("GATE", &site.scratch("gate"));
        let Some((browser, site, number)) = signed_in_with_build("live", gated).await else {
            return;
        };
        let gate = site.scratch("gate");
        browser
            .open_url(&site.url(&format!("/test/live/builds/{number}?step=test")))
            .await;

        browser.wait_line("first line, before the wait").await;
        // The step cannot end before the gate exists: the line arrived while it ran.
        assert_eq!(site.step_status("live", number, "test").await, "running");
        browser.wait_css("#log[data-state='following']").await;
        browser
            .wait_css("g.node[data-step='test'][data-status='running']")
            .await;
        browser
            .wait_css("g.node[data-step='prepare'][data-status='success']")
            .await;
        browser.screenshot("running-build").await;

        std::fs::write(&gate, "").expect("open the gate");
        browser.wait_line("last line, after the wait").await;
        browser.wait_css("#log[data-state='done']").await;
        browser.wait_css("#build[data-status='success']").await;
        let lines = browser.texts("#log div.log-line span.line-text").await;
        let first = lines.iter().position(|l| l.contains("first line"));
        let last = lines.iter().position(|l| l.contains("last line"));
        assert!(first < last && first.is_some(), "{lines:?}");
        browser.close().await;
        site.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_build_shows_it_killed() {
    within(TEST_SECS, "cancel", async {
        // The gate never opens: only the cancel ends this step.
        let gated = |site: &Site| GATED.replace("GATE", &site.scratch("never"));
        let Some((browser, site, number)) = signed_in_with_build("slow", gated).await else {
            return;
        };
        browser
            .open_url(&site.url(&format!("/test/slow/builds/{number}")))
            .await;
        browser.wait_line("first line, before the wait").await;
        browser.click("button#cancel").await;

        browser.wait_css("#build[data-status='killed']").await;
        browser
            .wait_css("#build-status[data-status='killed']")
            .await;
        assert_eq!(site.build_status("slow", number).await, "killed");
        browser.close().await;
        site.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_build_opens_at_its_first_error() {
    within(TEST_SECS, "first error", async {
        let failing = |_: &Site| FAILING.to_string();
        let Some((browser, site, number)) = signed_in_with_build("api", failing).await else {
            return;
        };
        assert_eq!(site.finished("api", number).await, "failure");
        browser
            .open_url(&site.url(&format!("/test/api/builds/{number}")))
            .await;

        browser
            .wait_css("#step[data-step='compile'][data-status='failure']")
            .await;
        let marked = browser.wait_css("#log div.log-line.first-error").await;
        let text = marked.text().await.expect("the marked line's text");
        assert!(text.contains("error[E0308]: mismatched types"), "{text}");
        let earlier = browser
            .js(
                "var lines = Array.from(document.querySelectorAll('#log div.log-line'));
                 var at = lines.indexOf(document.querySelector('.first-error'));
                 return lines.slice(0, at).filter(l => /error/i.test(l.textContent)).length;",
                Vec::new(),
            )
            .await;
        assert_eq!(
            earlier, 0,
            "a line before the first error mentions an error"
        );
        browser
            .wait_js("the first error scrolled into view", IN_VIEW)
            .await;
        browser.wait_css("a#log-first-error:not(.hidden)").await;
        browser.screenshot("failed-build").await;

        // Scrolled away, the First error link brings it back.
        browser
            .js(
                "window.scrollTo(0, 0); document.getElementById('log').scrollTop = 0;",
                Vec::new(),
            )
            .await;
        let in_view_now = format!("return (function () {{ {IN_VIEW} }})();");
        let away = browser.js(&in_view_now, Vec::new()).await;
        assert_eq!(away, false, "the first error is still in view at the top");
        browser.click("a#log-first-error").await;
        browser
            .wait_js("the First error link scrolled to it", IN_VIEW)
            .await;
        browser.close().await;
        site.stop().await;
    })
    .await;
}

/// True when the first-error line lies inside both the log box and the window.
const IN_VIEW: &str = "var line = document.querySelector('#log .first-error');
    if (!line) return false;
    var box = line.getBoundingClientRect(), log = document.getElementById('log').getBoundingClientRect();
    return box.top >= Math.max(0, log.top) && box.bottom <= Math.min(window.innerHeight, log.bottom);";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_in_a_log_line_stays_text() {
    within(TEST_SECS, "log lines stay text", async {
        let printing = |site: &Site| {
            format!(
                "steps:\n  - name: print\n    image: busybox\n    commands:\n      - echo '{}'\n      - echo '{}'\n      - for i in $(seq 1 3000); do [ -f {} ] && break; sleep 0.1; done\n",
                XSS_LINES[0],
                XSS_LINES[1],
                site.scratch("gate")
            )
        };
        let Some((browser, site, number)) = signed_in_with_build("xss", printing).await else {
            return;
        };
        let gate = site.scratch("gate");
        let page = site.url(&format!("/test/xss/builds/{number}?step=print"));

        // Once as the live stream delivers the lines, once as the server renders them.
        browser.open_url(&page).await;
        browser.wait_line(XSS_LINES[1]).await;
        assert_text_only(&browser).await;
        std::fs::write(&gate, "").expect("open the gate");
        assert_eq!(site.finished("xss", number).await, "success");
        browser.open_url(&page).await;
        browser.wait_css("#log[data-state='done']").await;
        assert_text_only(&browser).await;
        browser.close().await;
        site.stop().await;
    })
    .await;
}

/// A browser signed in as admin, and a server where `test/<name>` runs the pipeline
/// `pipeline` makes as build `number`; `None` when browser tests are skipped here.
async fn signed_in_with_build(
    name: &str,
    pipeline: impl FnOnce(&Site) -> String,
) -> Option<(Browser, Site, i64)> {
    let browser = Browser::open().await?;
    let site = Site::start().await;
    site.repo(name, &pipeline(&site)).await;
    let number = site.trigger(name).await;
    site.sign_in(&browser).await;
    Some((browser, site, number))
}

/// The XSS lines are in the log as text, no element came out of them, and no script ran.
async fn assert_text_only(browser: &Browser) {
    let texts = browser.texts("#log span.line-text").await;
    for line in XSS_LINES {
        assert!(
            texts.iter().any(|t| t == line),
            "{line} not shown as text in {texts:?}"
        );
    }
    let injected = browser
        .js(
            "return document.querySelectorAll('#log script, #log img').length;",
            Vec::new(),
        )
        .await;
    assert_eq!(injected, 0, "a log line became an element");
    let ran = browser.js("return typeof window.__xss;", Vec::new()).await;
    assert_eq!(ran, "undefined", "a log line ran a script");
}
