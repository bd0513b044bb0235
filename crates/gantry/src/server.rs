//! `gantry server`: runs the Gantry server until Ctrl-C or SIGTERM.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use gantry_server::{BackendChoice, ServerConfig};

/// Longest a graceful stop waits for running builds to record their end.
const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(20);

/// Which backend the server's built-in runner uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ServerBackend {
    /// Containers on the local Docker engine.
    Docker,
    /// Processes on this host (trusted pipelines only).
    Local,
}

#[derive(Args, Debug)]
pub struct ServerArgs {
    /// Address to listen on (`127.0.0.1:0` picks a free port and prints it).
    #[arg(long, env = "GANTRY_LISTEN", default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// Directory for the SQLite database, the secret key, the git cache and workspaces.
    #[arg(long, env = "GANTRY_DATA_DIR", default_value = "gantry-data")]
    data_dir: PathBuf,
    /// Database URL (`sqlite://...` or `postgres://...`; default: SQLite in the data dir).
    #[arg(long, env = "GANTRY_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Backend of the built-in runner.
    #[arg(long, env = "GANTRY_BACKEND", value_enum, default_value = "docker")]
    backend: ServerBackend,
    /// Image of the clone step.
    #[arg(long, env = "GANTRY_CLONE_IMAGE", default_value = gantry_pipeline::DEFAULT_CLONE_IMAGE)]
    clone_image: String,
    /// URL forges and people reach this server at (default: http://<listen address>).
    #[arg(long, env = "GANTRY_PUBLIC_URL")]
    public_url: Option<String>,
    /// Run no builds here (they wait in the queue for external runners).
    #[arg(long, env = "GANTRY_NO_LOCAL_RUNNER")]
    no_local_runner: bool,
    /// Workflows the built-in runner runs at once.
    #[arg(long, env = "GANTRY_RUNNER_CAPACITY", value_name = "N",
          default_value_t = gantry_server::config::DEFAULT_RUNNER_CAPACITY,
          value_parser = parse_capacity)]
    runner_capacity: usize,
    /// A label for every Docker object the runner makes, `key=value` (repeatable; the
    /// environment variable takes `k=v,k2=v2`).
    #[arg(long = "docker-label", env = "GANTRY_DOCKER_LABELS", value_name = "KEY=VALUE",
          value_parser = parse_labels)]
    docker_labels: Vec<DockerLabels>,
    /// Docker: image of each workflow's sandbox container, whose network the steps and
    /// services share (default: the built-in `gantry/pause`, imported on first use).
    #[arg(long, env = "GANTRY_SANDBOX_IMAGE", value_name = "IMAGE")]
    sandbox_image: Option<String>,
    /// Let builds pull images from registries on loopback, link-local, cloud metadata or
    /// unspecified addresses (`localhost:5000/app`, `127.0.0.1:5000/app`); refused by
    /// default, as such a pull can reach services on the runner's own host.
    #[arg(long, env = "GANTRY_ALLOW_PRIVATE_REGISTRIES")]
    allow_private_registries: bool,
}

/// The labels of one `--docker-label` value.
#[derive(Clone, Debug)]
struct DockerLabels(Vec<(String, String)>);

/// A capacity of at least one workflow.
fn parse_capacity(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err(
            "it must be at least 1 (check GANTRY_RUNNER_CAPACITY if it is set); \
             use --no-local-runner to run no builds here"
                .into(),
        ),
        Ok(n) => Ok(n),
        Err(_) => Err(format!(
            "`{text}` is not a number of workflows; give 1 or more \
             (check GANTRY_RUNNER_CAPACITY if it is set)"
        )),
    }
}

/// One `--docker-label` value: `key=value`, or several separated by commas.
fn parse_labels(text: &str) -> Result<DockerLabels, String> {
    gantry_server::config::parse_docker_labels(text)
        .map(DockerLabels)
        .map_err(|e| format!("{e} (check GANTRY_DOCKER_LABELS if it is set)"))
}

/// Starts the server and serves until a stop signal.
pub fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args))
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GANTRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr; stdout carries only the address line and a first-start token.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn config_of(args: ServerArgs, listen: SocketAddr) -> ServerConfig {
    let mut config = ServerConfig::new(args.data_dir);
    config.listen = listen;
    config.database_url = args.database_url;
    config.backend = match args.backend {
        ServerBackend::Docker => BackendChoice::Docker,
        ServerBackend::Local => BackendChoice::Local,
    };
    config.clone_image = args.clone_image;
    config.public_url = args
        .public_url
        .unwrap_or_else(|| format!("http://{listen}"));
    config.no_local_runner = args.no_local_runner;
    config.runner_capacity = args.runner_capacity;
    config.docker_labels = args.docker_labels.into_iter().flat_map(|l| l.0).collect();
    config.sandbox_image = args.sandbox_image.filter(|image| !image.trim().is_empty());
    config.allow_private_registries = args.allow_private_registries;
    config
}

async fn serve(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}; is the port in use?", args.listen))?;
    let listen = listener
        .local_addr()
        .context("reading the listening address")?;
    let server = gantry_server::launch(listener, config_of(args, listen)).await?;
    println!("gantry: listening on http://{}", server.addr());
    stop_signal().await;
    tracing::info!("stopping: finishing requests, stopping builds");
    // Running builds are stopped and end in `error` saying the server stopped; wait for
    // them to record that before the database closes.
    server.state().shutdown.cancel();
    gantry_server::runners::local::drain(server.state(), DRAIN_LIMIT).await;
    server.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C or SIGTERM.
async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        server: ServerArgs,
    }

    fn config(flags: &[&str]) -> ServerConfig {
        let args = ["gantry", "--data-dir", "d"].iter().chain(flags);
        let cli = Cli::try_parse_from(args).expect("the flags parse");
        config_of(cli.server, SocketAddr::from(([127, 0, 0, 1], 8000)))
    }

    #[test]
    fn private_registries_are_refused_unless_the_flag_allows_them() {
        // The variable, if the environment sets it, would decide the default.
        if std::env::var_os("GANTRY_ALLOW_PRIVATE_REGISTRIES").is_none() {
            assert!(!config(&[]).allow_private_registries);
        }
        assert!(config(&["--allow-private-registries"]).allow_private_registries);
    }
}
