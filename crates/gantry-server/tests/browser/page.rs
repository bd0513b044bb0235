//! What the tests do with a page: open it, wait for a condition the DOM contract names,
//! read text, type, click, and save a screenshot when asked to.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use thirtyfour::prelude::*;

use super::chrome::Browser;

/// How long one wait for the page may take before the test fails with what it waited for
/// (the whole test has its own, longer timeout).
const WAIT: Duration = Duration::from_secs(30);

impl Browser {
    /// Opens `url` and waits until the document has loaded.
    pub async fn open_url(&self, url: &str) {
        self.driver
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
        self.wait_js(
            "the page loaded",
            "return document.readyState === 'complete';",
        )
        .await;
    }

    /// Runs `script` (a function body) with `args` and returns its JSON result.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.driver
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("running script `{script}`: {e}"))
            .json()
            .clone()
    }

    /// Polls `script` until it returns something truthy; that value.
    pub async fn wait_js(&self, what: &str, script: &str) -> Value {
        self.wait_js_within(WAIT, what, script).await
    }

    /// [`Browser::wait_js`] with its own limit.
    pub async fn wait_js_within(&self, limit: Duration, what: &str, script: &str) -> Value {
        let start = Instant::now();
        loop {
            // A page that is navigating answers with an error for a moment: poll on.
            let value = match self.driver.execute(script, Vec::new()).await {
                Ok(answer) => answer.json().clone(),
                Err(_) => Value::Null,
            };
            if truthy(&value) {
                return value;
            }
            if start.elapsed() > limit {
                panic!("waited {limit:?} for {what}; {}", self.whereabouts().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The first element matching `css`, once there is one.
    pub async fn wait_css(&self, css: &str) -> WebElement {
        let what = format!("an element `{css}`");
        let script = format!("return document.querySelector({});", js_string(css));
        self.wait_js(&what, &script).await;
        self.find(css).await
    }

    /// Waits until a log line reads exactly `text`.
    pub async fn wait_line(&self, text: &str) {
        let script = format!(
            "return Array.from(document.querySelectorAll('#log span.line-text'))
                 .some(l => l.textContent === {});",
            js_string(text)
        );
        self.wait_js(&format!("the log line `{text}`"), &script)
            .await;
    }

    /// The first element matching `css` now.
    pub async fn find(&self, css: &str) -> WebElement {
        match self.driver.find(By::Css(css)).await {
            Ok(element) => element,
            Err(e) => panic!("no element `{css}`: {e}; {}", self.whereabouts().await),
        }
    }

    /// The text of every element matching `css`, in document order.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let script = format!(
            "return Array.from(document.querySelectorAll({})).map(e => e.textContent);",
            js_string(css)
        );
        let value = self.js(&script, Vec::new()).await;
        serde_json::from_value(value).unwrap_or_default()
    }

    /// Types `text` into the field `css` (after clearing it).
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.wait_css(css).await;
        field.clear().await.expect("clear the field");
        field.send_keys(text).await.expect("type into the field");
    }

    /// Clicks the element `css` once it is there.
    pub async fn click(&self, css: &str) {
        let element = self.wait_css(css).await;
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking `{css}`: {e}"));
    }

    /// Saves a PNG of the window to `docs/screenshots/<name>.png` when
    /// `GANTRY_SCREENSHOTS=1` (so ordinary runs leave the tree alone).
    pub async fn screenshot(&self, name: &str) {
        if std::env::var("GANTRY_SCREENSHOTS").as_deref() != Ok("1") {
            return;
        }
        let png = self.driver.screenshot_as_png().await.expect("a screenshot");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
        std::fs::create_dir_all(&dir).expect("docs/screenshots");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        eprintln!("screenshot saved: {}", path.display());
    }

    /// The page's URL and the start of its body text, for failure messages.
    async fn whereabouts(&self) -> String {
        let url = self
            .driver
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        let script = "return document.body ? document.body.innerText.slice(0, 600) : '';";
        let text = match self.driver.execute(script, Vec::new()).await {
            Ok(answer) => answer.json().as_str().unwrap_or_default().to_string(),
            Err(e) => format!("(page unreadable: {e})"),
        };
        format!("the page at {url} shows:\n{text}")
    }
}

/// A JavaScript string literal of `text`.
pub fn js_string(text: &str) -> String {
    Value::String(text.to_string()).to_string()
}

/// JavaScript's truthiness for a JSON value.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}
