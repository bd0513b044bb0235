//! Debian's chromedriver on a free port, one per test binary, and a headless Chromium
//! session per test.
//!
//! chromedriver is started through a small shell watchdog that stops it (SIGTERM, so it
//! closes the browsers it started) as soon as the test binary is gone, however it ended:
//! a passing run, a panic, a timeout or a kill. Each session is quit at the end of its test
//! and, on a panic, by thirtyfour's drop.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Request, Response};
use thirtyfour::prelude::*;
use thirtyfour::session::http::{Body, HttpClient};

/// Width and height of every browser window (the screenshots' size).
pub const WINDOW: (u32, u32) = (1280, 900);

/// Sessions take turns: two Chromiums on a small shared machine only slow each other down.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The chromedriver of this test binary: its URL, or why it could not start.
static DRIVER: OnceLock<Result<String, String>> = OnceLock::new();

/// A headless Chromium session; quit it with [`Browser::close`].
pub struct Browser {
    /// The WebDriver session.
    pub driver: WebDriver,
    // chromedriver's URL, for the commands thirtyfour does not wrap.
    driver_url: String,
    // Dropped after the session: the browser's profile.
    _profile: tempfile::TempDir,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Browser {
    /// A new session, or `None` (with the reason on stderr) when Chromium or chromedriver is
    /// not installed and this is not CI. Under `CI=true` a missing browser fails the test.
    pub async fn open() -> Option<Browser> {
        let (Some(chromium), Some(_)) = (on_path("chromium"), on_path("chromedriver")) else {
            let why = "`chromium` and `chromedriver` are not on PATH \
                       (apt-get install chromium chromium-driver; .ci/run installs them)";
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "browser test cannot run: {why}, and CI=true requires them"
            );
            eprintln!("browser test skipped: {why}");
            return None;
        };
        let turn = TURN.lock().await;
        let url = match DRIVER.get_or_init(start_chromedriver) {
            Ok(url) => url.clone(),
            Err(why) => panic!("{why}"),
        };
        let profile = tempfile::tempdir().expect("a temporary browser profile");
        let mut caps = DesiredCapabilities::chrome();
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".to_string(),
            "--disable-dev-shm-usage".to_string(),
            "--disable-gpu".to_string(),
            "--no-first-run".to_string(),
            format!("--user-data-dir={}", profile.path().display()),
            format!("--window-size={},{}", WINDOW.0, WINDOW.1),
        ];
        for arg in &args {
            caps.add_arg(arg).expect("a Chromium argument");
        }
        caps.set_binary(chromium.to_str().expect("a UTF-8 path"))
            .expect("the Chromium binary");
        let driver = WebDriver::builder(url.clone(), caps)
            .client(DriverHttp::default())
            .connect()
            .await
            .unwrap_or_else(|e| panic!("starting a Chromium session through chromedriver: {e}"));
        driver
            .set_window_rect(0, 0, WINDOW.0, WINDOW.1)
            .await
            .expect("window size");
        Some(Browser {
            driver,
            driver_url: url,
            _profile: profile,
            _turn: turn,
        })
    }

    /// Runs `script` in every page this session opens from now on, before the page's own
    /// scripts (Chrome DevTools' `Page.addScriptToEvaluateOnNewDocument`, sent through
    /// chromedriver), e.g. to observe the DOM from the first node on.
    pub async fn run_before_each_page(&self, script: &str) {
        let url = format!(
            "{}/session/{}/goog/cdp/execute",
            self.driver_url,
            self.driver.session_id()
        );
        let command = serde_json::json!({
            "cmd": "Page.addScriptToEvaluateOnNewDocument",
            "params": {"source": script},
        });
        let answer = reqwest::Client::new()
            .post(url)
            .json(&command)
            .send()
            .await
            .expect("a DevTools command through chromedriver");
        assert!(
            answer.status().is_success(),
            "chromedriver refused the DevTools command: {}",
            answer.text().await.unwrap_or_default()
        );
    }

    /// Ends the session (closes the browser).
    pub async fn close(self) {
        let Browser { driver, .. } = self;
        if let Err(e) = driver.quit().await {
            eprintln!("closing the browser session: {e}");
        }
    }
}

/// The full path of `program` when it is on PATH.
fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Starts chromedriver on a free port under a watchdog; its URL once it answers.
fn start_chromedriver() -> Result<String, String> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("finding a free port for chromedriver: {e}"))?
        .port();
    // $1 port, $2 the test binary's pid: chromedriver lives as long as that process.
    let watchdog = r#"chromedriver --port="$1" --allowed-ips=127.0.0.1 & d=$!
        trap 'kill $d 2>/dev/null' EXIT INT TERM
        while kill -0 "$2" 2>/dev/null && kill -0 $d 2>/dev/null; do sleep 0.5; done"#;
    Command::new("sh")
        .args(["-c", watchdog, "chromedriver-watchdog"])
        .arg(port.to_string())
        .arg(std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting chromedriver: {e}"))?;
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if driver_ready(port) {
            return Ok(url);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "chromedriver did not answer on {url} within 10s; run `chromedriver --port={port}` \
         by hand to see why"
    ))
}

/// True once chromedriver answers its status route.
fn driver_ready(port: u16) -> bool {
    use std::io::{Read as _, Write as _};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200") && answer.contains("\"ready\":true")
}

/// thirtyfour's transport over the workspace's reqwest (plain HTTP to 127.0.0.1), so the
/// tests need neither thirtyfour's own reqwest nor a TLS stack.
#[derive(Clone, Default)]
struct DriverHttp(reqwest::Client);

#[async_trait::async_trait]
impl HttpClient for DriverHttp {
    async fn send(&self, request: Request<Body<'_>>) -> WebDriverResult<Response<Bytes>> {
        let (parts, body) = request.into_parts();
        let mut outgoing = self
            .0
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .timeout(Duration::from_secs(120));
        if let Body::Json(json) = body {
            outgoing = outgoing.json(json);
        }
        let failed = |e: reqwest::Error| WebDriverError::RequestFailed(e.to_string());
        let answer = outgoing.send().await.map_err(failed)?;
        let status = answer.status();
        let mut response = Response::builder().status(status);
        for (name, value) in answer.headers() {
            response = response.header(name, value);
        }
        let body = answer.bytes().await.map_err(failed)?;
        response
            .body(body)
            .map_err(|e| WebDriverError::RequestFailed(format!("chromedriver's answer: {e}")))
    }

    async fn new(&self) -> Arc<dyn HttpClient> {
        Arc::new(DriverHttp::default())
    }
}
