//! Benchmark, run by `bash bench/ui.sh` (ignored by `cargo test`): how soon a build page
//! paints the first line of a 100,000-line log and when its last line is in the DOM, next
//! to two baselines measured in the same run and the same browser: a plain static HTML
//! page holding the same 100,000 lines (served from this process by axum, with the UI's
//! stylesheet), and the build page of a 1,000-line log.
//!
//! Times are milliseconds from navigation start, the median of `GANTRY_BENCH_ROUNDS`
//! rounds (default 5); the pages are opened in a rotating order each round.

#[allow(unused_imports)] // the git helpers only
mod api_support;
#[path = "browser/mod.rs"]
mod harness;
mod run_common;

use std::time::Duration;

use axum::response::Html;
use harness::chrome::Browser;
use harness::site::Site;
use run_common::{ADMIN, within};
use serde_json::Value;

/// Lines of the large log.
const LINES: usize = 100_000;
/// Lines of the small log.
const SMALL_LINES: usize = 1_000;
/// What each log line says after its number.
const LINE_TEXT: &str = "of a long build log, compiling and linking and testing";

/// Set before any page script runs: notes when log lines enter the DOM (a mutation
/// observer on the whole document, parser insertions included) and, two animation frames
/// after the first one, when it has been painted.
const OBSERVER: &str = r#"(function () {
  var marks = window.__logMarks = { first: 0, painted: 0, last: 0, lines: 0 };
  new MutationObserver(function (records) {
    var added = 0;
    for (var r = 0; r < records.length; r++) {
      var nodes = records[r].addedNodes;
      for (var i = 0; i < nodes.length; i++) {
        if (nodes[i].nodeType === 1 && nodes[i].classList.contains("log-line")) added++;
      }
    }
    if (!added) return;
    var now = performance.now();
    marks.lines += added;
    marks.last = now;
    if (!marks.first) {
      marks.first = now;
      requestAnimationFrame(function () {
        requestAnimationFrame(function () { marks.painted = performance.now(); });
      });
    }
  }).observe(document, { childList: true, subtree: true });
})();"#;

/// One page's figures, in milliseconds from navigation start.
#[derive(Debug, Clone, Copy, Default)]
struct Timing {
    first_painted: f64,
    last_in_dom: f64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: bash bench/ui.sh"]
async fn log_page_timings() {
    within(1800, "the UI benchmark", async {
        let Some(browser) = Browser::open().await else {
            return;
        };
        let rounds: usize = std::env::var("GANTRY_BENCH_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(5);
        let site = Site::start_with(|config| {
            config.log_cap.max_lines = 2 * LINES as i64;
            config.log_cap.max_bytes = 64 << 20;
        })
        .await;
        let big = log_build(&site, "big", LINES).await;
        let small = log_build(&site, "small", SMALL_LINES).await;
        let static_page = (serve_static_page(&site.url("/assets/app.css")).await, LINES);
        site.sign_in(&browser).await;
        browser.run_before_each_page(OBSERVER).await;

        let pages = [
            ("static HTML page, 100,000 lines", static_page),
            ("build page, 1,000-line log", small),
            ("build page, 100,000-line log", big),
        ];
        let mut timings = vec![Vec::new(); pages.len()];
        for round in 0..rounds {
            for k in 0..pages.len() {
                let at = (round + k) % pages.len();
                let (_, (url, lines)) = &pages[at];
                timings[at].push(measure(&browser, url, *lines).await);
            }
        }
        let medians: Vec<Timing> = timings.iter().map(|t| median(t)).collect();
        report(&pages.map(|(name, _)| name), &medians, rounds);
        browser.close().await;
        site.stop().await;
    })
    .await;
}

/// Adds `test/<name>` whose one step prints `lines` lines, builds it to the end; the URL
/// of that step's build page and how many lines its log holds (the printed ones and the
/// runner's own, such as the command trace).
async fn log_build(site: &Site, name: &str, lines: usize) -> (String, usize) {
    let pipeline = format!(
        "steps:\n  - name: print\n    image: busybox\n    commands:\n      - seq 1 {lines} | sed 's/.*/line & {LINE_TEXT}/'\n"
    );
    site.repo(name, &pipeline).await;
    let number = site.trigger(name).await;
    assert_eq!(site.finished(name, number).await, "success");
    let raw = format!("/api/repos/test/{name}/builds/{number}/steps/print/logs");
    let (status, log) = site.server.get(&raw, ADMIN).await;
    assert_eq!(status, 200, "{raw}: {log}");
    assert!(
        log.contains(&format!("line {lines} {LINE_TEXT}")),
        "{raw} is cut short"
    );
    let url = site.url(&format!("/test/{name}/builds/{number}?step=print"));
    (url, log.lines().count())
}

/// Serves the baseline page (the same lines, markup and stylesheet as the build page's log,
/// all in the HTML) on 127.0.0.1:0; its URL.
async fn serve_static_page(stylesheet: &str) -> String {
    let mut html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>static log</title>\
         <link rel=\"stylesheet\" href=\"{stylesheet}\"></head><body><div id=\"log\">"
    );
    for n in 1..=LINES {
        html.push_str(&format!(
            "<div class=\"log-line\" id=\"L{n}\"><a class=\"line-number\" href=\"#L{n}\">{n}</a>\
             <span class=\"line-text\">line {n} {LINE_TEXT}</span></div>"
        ));
    }
    html.push_str("</div></body></html>");
    let app = axum::Router::new().route("/", axum::routing::get(move || async move { Html(html) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the static page's port");
    let url = format!("http://{}/", listener.local_addr().expect("its address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Opens `url` and waits until its last log line is in the DOM and the first was painted.
async fn measure(browser: &Browser, url: &str, lines: usize) -> Timing {
    browser.open_url(url).await;
    let done = format!(
        "var m = window.__logMarks;
         return !!(m && m.painted > 0 && document.getElementById('L{lines}')) && m;"
    );
    let what = format!("line {lines} of {url}");
    let marks = browser
        .wait_js_within(Duration::from_secs(300), &what, &done)
        .await;
    let count = browser
        .js(
            "return document.querySelectorAll('#log .log-line').length;",
            Vec::new(),
        )
        .await;
    assert_eq!(
        count,
        Value::from(lines),
        "every line of {url} is in the DOM"
    );
    // Let the page settle before the next navigation.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ms = |key: &str| marks[key].as_f64().unwrap_or_default();
    Timing {
        first_painted: ms("painted"),
        last_in_dom: ms("last"),
    }
}

/// The median of each figure.
fn median(timings: &[Timing]) -> Timing {
    let pick = |figure: fn(&Timing) -> f64| {
        let mut values: Vec<f64> = timings.iter().map(figure).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    Timing {
        first_painted: pick(|t| t.first_painted),
        last_in_dom: pick(|t| t.last_in_dom),
    }
}

/// Prints the figures and the build page's ratios to both baselines.
fn report(names: &[&str], medians: &[Timing], rounds: usize) {
    println!("\nUI log timings: ms from navigation start, median of {rounds} rounds");
    println!(
        "{:<34} {:>18} {:>18}",
        "page", "first line painted", "last line in DOM"
    );
    for (name, t) in names.iter().zip(medians) {
        println!(
            "{name:<34} {:>18.0} {:>18.0}",
            t.first_painted, t.last_in_dom
        );
    }
    let (plain, small, big) = (medians[0], medians[1], medians[2]);
    println!(
        "100,000-line build page / static page: first paint x{:.2}, last line x{:.2}",
        big.first_painted / plain.first_painted,
        big.last_in_dom / plain.last_in_dom
    );
    println!(
        "100,000-line build page / 1,000-line build page: first paint x{:.2}, last line x{:.2}",
        big.first_painted / small.first_painted,
        big.last_in_dom / small.last_in_dom
    );
}
