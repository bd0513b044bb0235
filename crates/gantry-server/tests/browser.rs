//! The web UI in a real, headless Chromium driven over WebDriver (Debian's chromium and
//! chromedriver, thirtyfour), checked through the ids, classes and data attributes the
//! pages promise; the server runs steps as host processes, so no Docker is needed.
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
