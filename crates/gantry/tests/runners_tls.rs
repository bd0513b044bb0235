//! Runners and client commands over TLS (docs/runners.md, *TLS*; security rule 15).
//!
//! A TLS front in the test terminates TLS with a certificate that a throwaway CA signed
//! (rcgen) and passes the decrypted bytes to the real `gantry server` on loopback. The front
//! keeps every byte a client sent it, raw and decrypted, so the tests can tell what went
//! over the wire. `gantry runner` and `gantry repo` run as real processes.

mod server_common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use gantry_store::RunStatus;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use server_common::runners::{RunnerProcess, runner_command, runner_token, spawn_runner};
use server_common::{
    ADMIN, ServerProcess, create_repo, open_store, queue_build, start_remote_only_server,
    wait_build, within,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// A test CA and what it signs.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Gantry test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `names` and its key.
    fn server_cert(&self, names: &[&str]) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "gantry test server");
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (cert.der().clone(), key)
    }
}

/// What a front saw.
#[derive(Default)]
struct Seen {
    /// Bytes clients sent, as they came over TCP.
    raw: Mutex<Vec<u8>>,
    /// Bytes clients sent, decrypted (what went on to the server).
    plaintext: Mutex<Vec<u8>>,
    handshakes: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

impl Seen {
    fn raw_holds(&self, needle: &str) -> bool {
        holds(&self.raw.lock().unwrap(), needle)
    }

    fn plaintext(&self) -> String {
        String::from_utf8_lossy(&self.plaintext.lock().unwrap()).into_owned()
    }
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// A TLS front on 127.0.0.1 for the server at `upstream`.
struct Front {
    addr: SocketAddr,
    seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Front {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start_front(
    upstream: &str,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Front {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server config");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Seen::default());
    let upstream = upstream.to_string();
    let task = {
        let seen = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, upstream, seen) = (acceptor.clone(), upstream.clone(), seen.clone());
                tokio::spawn(serve_connection(tcp, acceptor, upstream, seen));
            }
        })
    };
    Front { addr, seen, task }
}

/// Which of a front's records a pump appends to.
#[derive(Clone, Copy)]
enum Record {
    Raw,
    Plaintext,
    Nothing,
}

/// Copies `from` to `to`, appending every byte to `record`.
async fn pump(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    seen: &Seen,
    record: Record,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        match record {
            Record::Raw => seen.raw.lock().unwrap().extend_from_slice(&buf[..n]),
            Record::Plaintext => seen.plaintext.lock().unwrap().extend_from_slice(&buf[..n]),
            Record::Nothing => {}
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// One client connection: its raw bytes go through an in-memory pipe to the TLS acceptor,
/// whose decrypted bytes go to the server.
async fn serve_connection(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    upstream: String,
    seen: Arc<Seen>,
) {
    let (outer, inner) = tokio::io::duplex(64 * 1024);
    let raw = {
        let seen = Arc::clone(&seen);
        async move {
            let (tcp_read, tcp_write) = tcp.into_split();
            let (outer_read, outer_write) = tokio::io::split(outer);
            tokio::join!(
                pump(tcp_read, outer_write, &seen, Record::Raw),
                pump(outer_read, tcp_write, &seen, Record::Nothing),
            );
        }
    };
    let decrypted = async {
        let tls = match acceptor.accept(inner).await {
            Ok(tls) => tls,
            Err(error) => {
                seen.failures.lock().unwrap().push(error.to_string());
                return;
            }
        };
        seen.handshakes.fetch_add(1, Ordering::SeqCst);
        let Ok(server) = TcpStream::connect(&upstream).await else {
            return;
        };
        let (server_read, server_write) = server.into_split();
        let (tls_read, tls_write) = tokio::io::split(tls);
        tokio::join!(
            pump(tls_read, server_write, &seen, Record::Plaintext),
            pump(server_read, tls_write, &seen, Record::Nothing),
        );
    };
    tokio::join!(raw, decrypted);
}

/// A local `gantry runner` for the server at `server` (a URL), `extra` added, trusting
/// no CA from the environment.
fn start_runner(
    server: &str,
    token: &str,
    name: &str,
    dir: &Path,
    extra: &[&str],
) -> RunnerProcess {
    let mut command = runner_command(server, token, name, dir);
    command
        .args(["--backend", "local"])
        .args(extra)
        .env_remove("GANTRY_CA_CERT");
    spawn_runner(command)
}

fn runner_log(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default()
}

/// Runs a client command to completion (in a blocking thread, the front serves meanwhile).
async fn client(args: Vec<String>, env: Vec<(String, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_gantry"))
            .args(&args)
            .env_remove("GANTRY_CA_CERT")
            .env_remove("GANTRY_SERVER")
            .env_remove("GANTRY_TOKEN")
            .envs(env)
            .stdin(Stdio::null())
            .output()
            .expect("gantry runs")
    })
    .await
    .expect("client thread")
}

struct Setup {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    data: std::path::PathBuf,
    server: ServerProcess,
    ca: Ca,
    ca_file: std::path::PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let data = path.join("data");
    let server = start_remote_only_server(&path);
    let ca = Ca::new();
    let ca_file = path.join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    Setup {
        _dir: dir,
        dir: path,
        data,
        server,
        ca,
        ca_file,
    }
}

impl Setup {
    async fn front(&self, names: &[&str]) -> Front {
        let (cert, key) = self.ca.server_cert(names);
        start_front(self.server.base.trim_start_matches("http://"), cert, key).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec_15_a_runner_trusting_the_ca_runs_a_build_over_wss() {
    let s = setup();
    within(120, "a build through a wss:// runner", async {
        let front = s.front(&["localhost", "127.0.0.1"]).await;
        let store = open_store(&s.data).await;
        let repo = create_repo(&store, "tls").await;
        let yaml = "clone:\n  disable: true\nsteps:\n  - name: hello\n    image: busybox\n    commands: [\"echo over-tls\"]\n";
        let build = queue_build(&store, &repo, yaml).await;
        let token = runner_token(&store, "secure").await;
        let ca = s.ca_file.to_str().unwrap();
        let server = format!("https://localhost:{}", front.addr.port());
        let _runner = start_runner(&server, &token, "secure", &s.dir, &["--ca-cert", ca]);
        let done = wait_build(&store, build.build.id, |d| d.build.status.is_terminal()).await;
        assert_eq!(
            done.build.status,
            RunStatus::Success,
            "{:?}; runner log:\n{}",
            done.build.error,
            runner_log(&s.dir, "secure")
        );
        let step = &done.workflows[0].steps[0];
        assert!(step.runner_id.as_deref().is_some_and(|r| r.starts_with("runner:")));
        let lines = store.read_logs(step.id, None, 0).await.unwrap();
        assert!(lines.iter().any(|l| l.text == "over-tls"), "{lines:?}");

        let log = runner_log(&s.dir, "secure");
        let expected = format!("connected to wss://localhost:{}/api/runners/connect", front.addr.port());
        assert!(log.contains(&expected), "{log}");
        assert!(front.seen.handshakes.load(Ordering::SeqCst) >= 1);
        let plaintext = front.seen.plaintext();
        assert!(plaintext.starts_with("GET /api/runners/connect HTTP/1.1"), "{plaintext}");
        assert!(holds(plaintext.as_bytes(), &token), "the token went through the tunnel");
        assert!(
            !front.seen.raw_holds(&token) && !front.seen.raw_holds("/api/runners/connect"),
            "the token and the request crossed the wire encrypted only"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec_15_a_runner_refuses_an_untrusted_certificate_and_sends_no_token() {
    let s = setup();
    within(120, "runners refusing certificates", async {
        let store = open_store(&s.data).await;
        let token = runner_token(&store, "wary").await;

        // A certificate from a CA the runner was not told to trust.
        let front = s.front(&["localhost", "127.0.0.1"]).await;
        let server = format!("https://localhost:{}", front.addr.port());
        let mut runner = start_runner(&server, &token, "wary", &s.dir, &[]);
        let status = runner.exited().await;
        let log = runner_log(&s.dir, "wary");
        assert!(!status.success(), "{log}");
        assert!(
            log.contains("certificate is not trusted") && log.contains("UnknownIssuer"),
            "{log}"
        );
        assert!(
            log.contains("--ca-cert FILE"),
            "the error names the fix: {log}"
        );
        assert_eq!(front.seen.handshakes.load(Ordering::SeqCst), 0);
        assert!(
            !front.seen.failures.lock().unwrap().is_empty(),
            "a handshake was tried"
        );
        assert!(
            front.seen.plaintext().is_empty(),
            "nothing reached the server"
        );
        assert!(
            !front.seen.raw_holds(&token),
            "the token never left the runner"
        );

        // The CA is trusted but the certificate names another host.
        let other = s.front(&["ci.example"]).await;
        let server = format!("https://localhost:{}", other.addr.port());
        let ca = s.ca_file.to_str().unwrap();
        let mut runner = start_runner(&server, &token, "named", &s.dir, &["--ca-cert", ca]);
        let status = runner.exited().await;
        let log = runner_log(&s.dir, "named");
        assert!(!status.success(), "{log}");
        assert!(
            log.contains("certificate is not trusted")
                && log.contains("not valid for name \"localhost\""),
            "{log}"
        );
        assert_eq!(other.seen.handshakes.load(Ordering::SeqCst), 0);
        assert!(other.seen.plaintext().is_empty());
        assert!(!other.seen.raw_holds(&token));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec_15_plain_http_to_another_host_is_refused_before_connecting() {
    // `.invalid` never resolves (RFC 6761): a runner that tried would only fail to reach it.
    let dir = tempfile::tempdir().unwrap();
    within(60, "refusing plain http", async {
        let mut runner = start_runner(
            "http://gantry-server.invalid:8000",
            "gantry_runner_token_value",
            "plain",
            dir.path(),
            &[],
        );
        let status = runner.exited().await;
        let log = runner_log(dir.path(), "plain");
        assert_eq!(status.code(), Some(2), "{log}");
        assert!(
            log.contains("refusing to send the runner token over plain http://")
                && log.contains("https://")
                && !log.contains("cannot reach"),
            "{log}"
        );
        assert!(
            !dir.path().join("plain-workspaces").exists(),
            "nothing was set up"
        );

        let out = client(
            [
                "repo",
                "list",
                "--server",
                "ws://gantry-server.invalid",
                "--token",
                "t",
            ]
            .map(String::from)
            .to_vec(),
            Vec::new(),
        )
        .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            stderr.contains("refusing to send the API token over plain ws://"),
            "{stderr}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_commands_reach_an_https_server_trusting_its_ca() {
    let s = setup();
    within(120, "client commands over https", async {
        let front = s.front(&["localhost"]).await;
        let server = format!("https://localhost:{}/", front.addr.port());
        let args = |more: &[&str]| -> Vec<String> {
            let mut args: Vec<String> = more.iter().map(|a| a.to_string()).collect();
            args.extend([
                "--server".into(),
                server.clone(),
                "--token".into(),
                ADMIN.into(),
            ]);
            args
        };
        let ca = (
            "GANTRY_CA_CERT".to_string(),
            s.ca_file.display().to_string(),
        );

        let out = client(
            args(&[
                "repo",
                "add",
                "acme/web",
                "--clone-url",
                "https://git.example/acme/web.git",
            ]),
            vec![ca.clone()],
        )
        .await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = client(args(&["repo", "list"]), vec![ca.clone()]).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("acme/web"));
        let out = client(args(&["runner-token", "create", "over-tls"]), vec![ca]).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(front.seen.handshakes.load(Ordering::SeqCst) >= 3);
        assert!(
            !front.seen.raw_holds(ADMIN),
            "the admin token crossed the wire encrypted"
        );

        // Without the CA the same command is refused with the fix, and sends nothing.
        let before = front.seen.plaintext.lock().unwrap().len();
        let out = client(args(&["repo", "list"]), Vec::new()).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            stderr.contains("certificate is not trusted") && stderr.contains("--ca-cert FILE"),
            "{stderr}"
        );
        assert_eq!(front.seen.plaintext.lock().unwrap().len(), before);
    })
    .await;
}
