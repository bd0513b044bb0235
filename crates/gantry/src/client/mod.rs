//! Client commands: talk to a running `gantry server` over its HTTP API (docs/api.md).

mod build;
mod logs;
mod repo;
mod runner_token;
mod secret;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub use build::BuildCommand;
pub use logs::LogsArgs;
pub use repo::RepoCommand;
pub use runner_token::RunnerTokenCommand;
pub use secret::SecretCommand;

/// Where the server is and who we are.
#[derive(Args, Clone, Debug)]
pub struct Connection {
    /// Server URL.
    #[arg(
        long,
        env = "GANTRY_SERVER",
        default_value = "http://127.0.0.1:8000",
        global = true
    )]
    server: String,
    /// API token (printed by the server on first start, or from `POST /api/tokens`).
    #[arg(long, env = "GANTRY_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// A CA certificate (PEM) to trust for an https:// server, on top of the public roots:
    /// for a server whose certificate a private CA signed.
    #[arg(long, env = "GANTRY_CA_CERT", value_name = "FILE", global = true)]
    ca_cert: Option<PathBuf>,
}

impl Connection {
    /// The server URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The token, when one was given.
    pub fn token(&self) -> Option<String> {
        self.token.clone().filter(|t| !t.is_empty())
    }

    /// The `--ca-cert` file, when one was given.
    pub fn ca_cert(&self) -> Option<&Path> {
        self.ca_cert
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty())
    }
}

/// The client subcommands.
#[derive(Subcommand)]
pub enum ClientCommand {
    /// Repositories: add, list.
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Repository secrets: set, rm, ls (values are never shown).
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Builds: list, show, trigger, cancel, restart.
    #[command(subcommand)]
    Build(BuildCommand),
    /// A build's logs (all steps, or one), optionally following them live.
    Logs(LogsArgs),
    /// Runner tokens (admin): create, list, revoke.
    #[command(subcommand)]
    RunnerToken(RunnerTokenCommand),
}

/// Runs a client command.
pub fn run(connection: Connection, command: ClientCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let client = Client::new(connection)?;
    runtime.block_on(async {
        match command {
            ClientCommand::Repo(c) => repo::run(&client, c).await,
            ClientCommand::Secret(c) => secret::run(&client, c).await,
            ClientCommand::Build(c) => build::run(&client, c).await,
            ClientCommand::Logs(a) => logs::run(&client, a).await,
            ClientCommand::RunnerToken(c) => runner_token::run(&client, c).await,
        }
    })
}

/// A thin JSON client for the API.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    fn new(connection: Connection) -> anyhow::Result<Self> {
        let Some(token) = connection.token() else {
            bail!("no API token: pass --token or set GANTRY_TOKEN");
        };
        let base = crate::tls::server_url(&connection.server, "API token")?;
        if !matches!(base.scheme(), "http" | "https") {
            bail!(
                "--server `{}` must start with https:// (or http:// on this host)",
                connection.server
            );
        }
        let tls = crate::tls::client_config(connection.ca_cert())?;
        // A redirect must not carry the token to a plain connection elsewhere either.
        let redirects = reqwest::redirect::Policy::custom(|attempt| {
            if attempt.previous().len() >= 10 {
                return attempt.error("too many redirects");
            }
            match crate::tls::check_transport(attempt.url(), "API token") {
                Ok(()) => attempt.follow(),
                Err(error) => attempt.error(error.to_string()),
            }
        });
        let http = reqwest::Client::builder()
            .user_agent(concat!("gantry-cli/", env!("CARGO_PKG_VERSION")))
            .use_preconfigured_tls(rustls::ClientConfig::clone(&tls))
            .redirect(redirects)
            // The environment's proxies (HTTP_PROXY, ALL_PROXY...) would see a plain
            // request, token included: plain http:// goes straight to the server, always.
            .no_proxy();
        let http = match https_proxy()? {
            Some(proxy) => http.proxy(proxy),
            None => http,
        };
        let http = http.build().context("building the HTTP client")?;
        Ok(Self {
            http,
            base: base.as_str().trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// The error of a request that got no answer, with what to do about it.
    fn unreachable(&self, error: reqwest::Error) -> anyhow::Error {
        match crate::tls::tls_problem(&error) {
            Some(tls) => anyhow::anyhow!("cannot connect to {}: {}", self.base, tls.message),
            None => anyhow::Error::new(error).context(format!(
                "cannot reach the server at {} (is it running?)",
                self.base
            )),
        }
    }

    /// Sends a request and returns the JSON body (Null for an empty body), or the server's
    /// error message.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .context("reading the server's answer")?;
        if !status.is_success() {
            bail!("{}", error_message(status, &text));
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text)
            .with_context(|| format!("the server's answer to {path} is not JSON"))
    }

    /// Sends a GET and returns the body as text.
    pub async fn text(&self, path: &str) -> anyhow::Result<String> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .context("reading the server's answer")?;
        if !status.is_success() {
            bail!("{}", error_message(status, &text));
        }
        Ok(text)
    }
}

/// The proxy for https:// requests from `HTTPS_PROXY` / `https_proxy`, else `ALL_PROXY` /
/// `all_proxy`, minus the hosts in `NO_PROXY` / `no_proxy`. The proxy only relays the
/// encrypted connection (CONNECT): TLS runs end to end with the server, whose certificate is
/// verified as without a proxy, so the proxy never sees the token. Plain http:// requests
/// never use a proxy.
fn https_proxy() -> anyhow::Result<Option<reqwest::Proxy>> {
    let Some((name, value)) = ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
        .into_iter()
        .find_map(|name| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(|v| (name, v))
        })
    else {
        return Ok(None);
    };
    let proxy = reqwest::Proxy::https(value.trim())
        .map_err(|e| anyhow::anyhow!("{name} is not a proxy URL: {e}"))?;
    Ok(Some(proxy.no_proxy(reqwest::NoProxy::from_env())))
}

fn error_message(status: StatusCode, body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| v["error"]["message"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| body.trim().chars().take(300).collect());
    format!("server answered {status}: {message}")
}

/// Splits `owner/name`.
pub fn repo_path(full: &str) -> anyhow::Result<String> {
    match full.split_once('/') {
        Some((owner, name)) if !owner.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(format!("/api/repos/{owner}/{name}"))
        }
        _ => bail!("repository `{full}` must be written OWNER/NAME"),
    }
}

/// A JSON string field, or `-`.
pub fn field<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or("-")
}

/// Prints rows as an aligned table.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        line(row.clone());
    }
}
