//! How a server is set up: where it listens, where it keeps its data, what runs builds.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Which backend the in-process runner uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// Containers on the local Docker engine.
    #[default]
    Docker,
    /// Processes on this machine (trusted code only).
    Local,
}

/// Environment variable holding the admin token to adopt instead of generating one.
pub const ADMIN_TOKEN_ENV: &str = "GANTRY_ADMIN_TOKEN";

/// Everything `launch` needs to know.
#[derive(Clone)]
pub struct ServerConfig {
    /// Address to listen on (informational when `launch` is given a bound listener).
    pub listen: SocketAddr,
    /// Directory for the SQLite database, the secret key and the git cache.
    pub data_dir: PathBuf,
    /// Database URL; `None` means SQLite in the data directory.
    pub database_url: Option<String>,
    /// Backend of the in-process runner.
    pub backend: BackendChoice,
    /// Image of the clone step.
    pub clone_image: String,
    /// Admin token to adopt (else `GANTRY_ADMIN_TOKEN`, else one generated on first start).
    pub admin_token: Option<String>,
    /// URL forges and people reach the server at, for hook URLs and build links.
    pub public_url: String,
    /// Largest stored log per step.
    pub log_cap: gantry_store::LogCap,
    /// Do not start the in-process runner (builds stay queued for external runners).
    pub no_local_runner: bool,
    /// Largest JSON body the API accepts, in bytes.
    pub api_body_limit: usize,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(gantry_store::redact_url),
            )
            .field("backend", &self.backend)
            .field("clone_image", &self.clone_image)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "********"),
            )
            .field("public_url", &self.public_url)
            .field("log_cap", &self.log_cap)
            .field("no_local_runner", &self.no_local_runner)
            .finish()
    }
}

impl ServerConfig {
    /// Defaults for a server keeping its data in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let listen = SocketAddr::from(([127, 0, 0, 1], 8000));
        ServerConfig {
            listen,
            data_dir: data_dir.into(),
            database_url: None,
            backend: BackendChoice::Docker,
            clone_image: gantry_pipeline::DEFAULT_CLONE_IMAGE.to_string(),
            admin_token: None,
            public_url: format!("http://{listen}"),
            log_cap: gantry_store::LogCap::default(),
            no_local_runner: false,
            api_body_limit: 1024 * 1024,
        }
    }

    /// The database URL in force: the configured one, or SQLite in the data directory.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| gantry_store::default_database_url(&self.data_dir))
    }
}
