//! `gantry`: the one binary (server, exec, lint, compile, schema, and API client commands).

mod client;
mod context;
mod exec;
mod lint;
mod output;
mod runner;
mod secrets;
mod server;
mod tls;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Gantry: a container-native CI/CD server.
#[derive(Parser)]
#[command(name = "gantry", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    connection: client::Connection,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline here, on the local Docker engine (or as host processes).
    Exec(ExecArgs),
    /// Check pipeline files and report every problem with its line and column.
    Lint(LintArgs),
    /// Print the compiled plan (the IR the runners execute) as JSON.
    Compile(CompileArgs),
    /// Print the JSON schema of `.pipeline.yml`, for editors.
    Schema,
    /// Run the Gantry server: webhooks, API, live logs and a built-in runner.
    Server(server::ServerArgs),
    /// Run the server's builds on this host (`--server`, `--token` with a runner token).
    Runner(runner::RunnerArgs),
    /// Talk to a server: repositories, secrets, builds, logs (`--server`, `--token`).
    #[command(flatten)]
    Client(client::ClientCommand),
}

/// Which backend runs the steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BackendKind {
    /// Containers on the local Docker engine.
    Docker,
    /// Host processes in the current directory.
    Local,
}

/// The event the pipeline is compiled for, and what it knows about the commit.
#[derive(Args, Clone, Debug)]
struct EventArgs {
    /// Event to simulate: push, pull_request, tag, manual, cron, promote.
    #[arg(long, default_value = "push")]
    event: String,
    /// Branch (default: the current git branch, else `main`).
    #[arg(long)]
    branch: Option<String>,
    /// Tag name (for `--event tag`).
    #[arg(long)]
    tag: Option<String>,
    /// Promote target (for `--event promote`).
    #[arg(long)]
    target: Option<String>,
    /// Cron job name (for `--event cron`).
    #[arg(long)]
    cron: Option<String>,
    /// Treat the repository as trusted (allows `privileged` and host volumes).
    #[arg(long)]
    trusted: bool,
}

#[derive(Args)]
struct ExecArgs {
    /// Pipeline file (default: `.pipeline.yml`, else `.drone.yml`).
    file: Option<PathBuf>,
    /// Run only this step (repeatable).
    #[arg(long = "step", value_name = "NAME")]
    steps: Vec<String>,
    /// With --step, also run the steps it depends on.
    #[arg(long)]
    with_deps: bool,
    /// Backend (default: docker if an engine answers, else local).
    #[arg(long, value_enum)]
    backend: Option<BackendKind>,
    /// Docker: image of the sandbox container whose network the steps and services share
    /// (default: the built-in `gantry/pause`, imported into the engine on first use).
    #[arg(long, env = "GANTRY_SANDBOX_IMAGE", value_name = "IMAGE")]
    sandbox_image: Option<String>,
    #[command(flatten)]
    event: EventArgs,
    /// A secret, `NAME=VALUE` (repeatable).
    #[arg(long = "secret", value_name = "NAME=VALUE")]
    secrets: Vec<String>,
    /// A file of secrets, one `NAME=VALUE` per line.
    #[arg(long, value_name = "FILE")]
    secrets_file: Option<PathBuf>,
    /// An extra environment variable for every step, `NAME=VALUE` (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    env: Vec<String>,
    /// Approve every approval step without asking.
    #[arg(long)]
    approve: bool,
    /// How many steps may run at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Args)]
struct LintArgs {
    /// Files to check (default: `.pipeline.yml`, else `.drone.yml`).
    files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Args)]
struct CompileArgs {
    /// Pipeline file (default: `.pipeline.yml`, else `.drone.yml`).
    file: Option<PathBuf>,
    #[command(flatten)]
    event: EventArgs,
    /// Compile without the implicit clone step.
    #[arg(long)]
    no_clone: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Exec(args) => exec::run(args),
        Command::Lint(args) => lint::lint(args),
        Command::Compile(args) => lint::compile(args),
        Command::Schema => lint::schema(),
        Command::Server(args) => server::run(args),
        Command::Runner(args) => runner::run(cli.connection, args),
        Command::Client(command) => client::run(cli.connection, command),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("gantry: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
