//! Client commands and the environment's proxies: plain http:// never goes through one (the
//! proxy would read the token), https:// goes through `HTTPS_PROXY` as a CONNECT tunnel that
//! carries only the encrypted connection.

mod server_common;

use std::io::Read as _;
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use server_common::{ADMIN, start_server, wait_within};

/// A TCP listener that records what every connection sends (up to the end of the request
/// head), then closes it without answering.
struct Recorder {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
}

impl Recorder {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, bytes, done) = (connections.clone(), received.clone(), stop.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        count.fetch_add(1, Ordering::SeqCst);
                        stream.set_nonblocking(false).ok();
                        stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
                        let mut head = Vec::new();
                        let mut buf = [0u8; 4096];
                        while let Ok(n @ 1..) = stream.read(&mut buf) {
                            head.extend_from_slice(&buf[..n]);
                            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                                break;
                            }
                        }
                        bytes.lock().unwrap().extend_from_slice(&head);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Self {
            addr,
            connections,
            received,
            stop,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn received(&self) -> String {
        String::from_utf8_lossy(&self.received.lock().unwrap()).into_owned()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Runs a client command with exactly the given proxy variables; killed and failed after 60 s.
fn client(args: &[&str], proxies: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gantry"));
    command
        .args(args)
        .env_remove("GANTRY_CA_CERT")
        .env_remove("GANTRY_SERVER")
        .env("GANTRY_TOKEN", ADMIN);
    for name in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        command.env_remove(name);
    }
    let child = command
        .envs(proxies.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gantry starts");
    wait_within(child, args)
}

#[test]
fn sec_15_plain_http_client_commands_ignore_the_environments_proxies() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start_server(
        &tmp.path().join("data"),
        "local",
        &[("GANTRY_NO_LOCAL_RUNNER", "true")],
        &tmp.path().join("server.log"),
    );
    let proxy = Recorder::start();
    let url = proxy.url();
    let all = [
        ("HTTP_PROXY", url.as_str()),
        ("http_proxy", url.as_str()),
        ("HTTPS_PROXY", url.as_str()),
        ("https_proxy", url.as_str()),
        ("ALL_PROXY", url.as_str()),
        ("all_proxy", url.as_str()),
    ];
    let out = client(&["repo", "list", "--server", &server.base], &all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The recorder is still accepting: a connection made by the command would be counted.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        proxy.connections.load(Ordering::SeqCst),
        0,
        "the proxy got: {}",
        proxy.received()
    );
}

#[test]
fn https_client_commands_tunnel_through_https_proxy_without_the_token() {
    let proxy = Recorder::start();
    let url = proxy.url();
    // The recorder answers no CONNECT, so the command fails after asking for the tunnel.
    let out = client(
        &["repo", "list", "--server", "https://gantry.example:8443"],
        &[
            ("HTTPS_PROXY", url.as_str()),
            ("HTTP_PROXY", "http://127.0.0.1:9"),
        ],
    );
    assert!(!out.status.success());
    let seen = proxy.received();
    assert!(seen.starts_with("CONNECT gantry.example:8443 "), "{seen}");
    assert!(!seen.contains(ADMIN), "{seen}");

    // A host in NO_PROXY is reached directly (`.invalid` never resolves: nothing is sent).
    let before = proxy.connections.load(Ordering::SeqCst);
    let out = client(
        &["repo", "list", "--server", "https://gantry.invalid:8443"],
        &[("ALL_PROXY", url.as_str()), ("NO_PROXY", "gantry.invalid")],
    );
    assert!(!out.status.success());
    assert_eq!(proxy.connections.load(Ordering::SeqCst), before);
}
