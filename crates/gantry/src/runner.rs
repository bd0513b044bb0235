//! `gantry runner`: runs the server's workflows on this host (docs/runners.md).
//!
//! One websocket to the server (docs/runner-protocol.md), served by the `gantry-agent`
//! crate, the same code as the server's built-in runner. Assignments run with the same
//! [`Runtime`](gantry_runner::Runtime) as `gantry exec`, so secrets are masked here
//! before a line leaves the host. Every message about an assignment is numbered and kept
//! until the server acknowledges it; after a lost connection the runner reconnects with
//! growing pauses, resumes its assignments and sends again what was not acknowledged.

mod websocket;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use gantry_agent::{Notices, RunnerSetup};
use gantry_docker::{DockerBackend, DockerConfig};
use gantry_runner::{Backend, LocalBackend};
use tokio_util::sync::CancellationToken;

use crate::BackendKind;
use crate::client::Connection;

/// How long a stopping runner waits to report the work it stopped.
const STOP_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Extra labels for every Docker object, `key=value,...` (tests mark theirs).
const DOCKER_LABELS_ENV: &str = "GANTRY_DOCKER_LABELS";

/// `gantry runner` options (`--server` and `--token` are the global ones).
#[derive(Args, Debug)]
pub struct RunnerArgs {
    /// Labels this runner offers, `key=value,...` (added to `os`, `arch` and `backend`);
    /// a pipeline's `labels:` must be a subset.
    #[arg(long, value_name = "KEY=VALUE,...", value_parser = parse_labels)]
    labels: Option<Labels>,
    /// Workflows run at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    capacity: u32,
    /// Where steps run.
    #[arg(long, value_enum, default_value = "docker")]
    backend: BackendKind,
    /// A name for people (default: the host name); the server knows the runner by its token.
    #[arg(long)]
    name: Option<String>,
    /// Directory for local-backend workspaces (default: a `gantry-runner` directory in
    /// the system's temporary directory).
    #[arg(long, value_name = "DIR")]
    workspaces: Option<PathBuf>,
}

/// Parsed `--labels`.
#[derive(Clone, Debug)]
struct Labels(BTreeMap<String, String>);

fn parse_labels(text: &str) -> Result<Labels, String> {
    parse_pairs(text).map(Labels)
}

/// `key=value,key2=value2` → map; a pair without `=` or key is named in the error.
fn parse_pairs(text: &str) -> Result<BTreeMap<String, String>, String> {
    text.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                Ok((key.trim().to_string(), value.trim().to_string()))
            }
            _ => Err(format!("`{pair}` is not `key=value`")),
        })
        .collect()
}

/// Runs `gantry runner` until it is interrupted or its token is refused.
pub fn run(connection: Connection, args: RunnerArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let setup = setup(&connection, args).await?;
        let stop = CancellationToken::new();
        let serving = gantry_agent::serve(setup, stop.clone());
        tokio::pin!(serving);
        tokio::select! {
            result = &mut serving => return result,
            () = stop_requested() => {}
        }
        eprintln!("gantry runner: stopping: running work is stopped, cleaned up and reported");
        stop.cancel();
        match tokio::time::timeout(STOP_LIMIT, serving).await {
            Ok(result) => result,
            Err(_) => {
                eprintln!("gantry runner: the server did not take the last reports in time");
                Ok(())
            }
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C or SIGTERM (what `docker stop` and systemd send).
async fn stop_requested() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

async fn setup(connection: &Connection, args: RunnerArgs) -> anyhow::Result<RunnerSetup> {
    let token = connection
        .token()
        .context("no runner token: pass --token or set GANTRY_TOKEN (an admin makes one with `gantry runner-token create`)")?;
    let url = connect_url(connection.server())?;
    let tls = crate::tls::client_config(connection.ca_cert())?;
    let name = args.name.unwrap_or_else(hostname);
    let (backend_name, backend) = open_backend(args.backend, &name, args.workspaces).await?;
    // Objects of an earlier run of this runner (killed mid-step) go first.
    match backend.reap_leftovers().await {
        Ok(0) => {}
        Ok(n) => eprintln!("gantry runner: removed {n} objects left by an earlier run"),
        Err(error) => eprintln!("gantry runner: removing leftovers failed: {error}"),
    }
    let mut labels = gantry_proto::host_labels(backend_name);
    labels.extend(args.labels.map(|l| l.0).unwrap_or_default());
    Ok(RunnerSetup {
        transport: Arc::new(websocket::WebSocket { url, tls, token }),
        stopped_message: format!(
            "the runner `{name}` was stopped while this ran; restart the build"
        ),
        name,
        labels,
        capacity: args.capacity,
        backend_name,
        backend,
        notices: Notices::Stderr,
    })
}

/// `https://host[:port][/prefix]` (or `wss://`; plain `http://`/`ws://` to this host only)
/// → the websocket URL of the runner protocol.
fn connect_url(server: &str) -> anyhow::Result<String> {
    let mut url = crate::tls::server_url(server, "runner token")?;
    let scheme = if matches!(url.scheme(), "https" | "wss") {
        "wss"
    } else {
        "ws"
    };
    url.set_scheme(scheme)
        .map_err(|()| anyhow::anyhow!("--server `{server}` cannot become a websocket URL"))?;
    let prefix = url.path().trim_end_matches('/').to_string();
    url.set_path(&format!("{prefix}{}", gantry_proto::CONNECT_PATH));
    Ok(url.to_string())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "runner".into())
}

async fn open_backend(
    kind: BackendKind,
    name: &str,
    workspaces: Option<PathBuf>,
) -> anyhow::Result<(&'static str, Arc<dyn Backend>)> {
    match kind {
        BackendKind::Docker => {
            let extra_labels = match std::env::var(DOCKER_LABELS_ENV) {
                Ok(text) => {
                    parse_pairs(&text).map_err(|e| anyhow::anyhow!("{DOCKER_LABELS_ENV}: {e}"))?
                }
                Err(_) => BTreeMap::new(),
            };
            // The default owner (`exec:<host>:<pid>`) lets the next runner or `gantry
            // exec` on this host remove what this process leaves if it is killed.
            let config = DockerConfig {
                extra_labels,
                ..DockerConfig::default()
            };
            let backend = DockerBackend::connect(config).await.context(
                "the docker backend needs a Docker engine; start one or use `--backend local`",
            )?;
            backend.probe().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(("docker", Arc::new(backend)))
        }
        BackendKind::Local => {
            let dir = workspaces
                .unwrap_or_else(|| std::env::temp_dir().join(format!("gantry-runner-{name}")));
            std::fs::create_dir_all(&dir).with_context(|| {
                format!(
                    "creating the workspace directory {}; check it is writable",
                    dir.display()
                )
            })?;
            Ok(("local", Arc::new(LocalBackend::with_temp_workspaces(dir))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_become_the_connect_url() {
        for (server, expected) in [
            (
                "https://ci.example/",
                "wss://ci.example/api/runners/connect",
            ),
            (
                "https://ci.example:8443/gantry/",
                "wss://ci.example:8443/gantry/api/runners/connect",
            ),
            ("wss://ci.example", "wss://ci.example/api/runners/connect"),
            (
                "http://127.0.0.1:8000",
                "ws://127.0.0.1:8000/api/runners/connect",
            ),
            ("http://localhost:80/", "ws://localhost/api/runners/connect"),
        ] {
            assert_eq!(connect_url(server).unwrap(), expected, "{server}");
        }
        assert!(
            connect_url("ftp://x")
                .unwrap_err()
                .to_string()
                .contains("https://")
        );
    }

    #[test]
    fn sec_15_the_runner_token_is_not_sent_in_clear_to_another_host() {
        for server in ["http://ci.example:8000", "ws://10.1.2.3:8000"] {
            let error = connect_url(server).unwrap_err().to_string();
            assert!(
                error.contains("refusing to send the runner token over plain"),
                "{server}: {error}"
            );
        }
    }

    #[test]
    fn labels_parse_and_bad_pairs_are_named() {
        let labels = parse_pairs("gpu=true, os=linux").unwrap();
        assert_eq!(labels["gpu"], "true");
        assert!(parse_pairs("gpu").unwrap_err().contains("`gpu`"));
    }
}
