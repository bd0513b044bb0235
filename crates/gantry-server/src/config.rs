//! How a server is set up: where it listens, where it keeps its data, what runs builds.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Which backend the built-in runner uses.
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

/// Workflows the built-in runner runs at once unless configured otherwise.
pub const DEFAULT_RUNNER_CAPACITY: usize = 4;

/// Everything `launch` needs to know.
#[derive(Clone)]
pub struct ServerConfig {
    /// Address to listen on (informational when `launch` is given a bound listener).
    pub listen: SocketAddr,
    /// Directory for the SQLite database, the secret key and the git cache.
    pub data_dir: PathBuf,
    /// Database URL; `None` means SQLite in the data directory.
    pub database_url: Option<String>,
    /// Backend of the built-in runner.
    pub backend: BackendChoice,
    /// Image of the clone step.
    pub clone_image: String,
    /// Admin token to adopt (else `GANTRY_ADMIN_TOKEN`, else one generated on first start).
    pub admin_token: Option<String>,
    /// URL forges and people reach the server at, for hook URLs and build links.
    pub public_url: String,
    /// Largest stored log per step.
    pub log_cap: gantry_store::LogCap,
    /// Do not start the built-in runner (builds stay queued for external runners).
    pub no_local_runner: bool,
    /// Largest JSON body the API accepts, in bytes.
    pub api_body_limit: usize,
    /// Workflows the built-in runner runs at once (at least 1).
    pub runner_capacity: usize,
    /// Labels added to every Docker object the runner makes (tests set `gantry.test=<id>`
    /// so they can reap what a server they started left).
    pub docker_labels: BTreeMap<String, String>,
    /// Image of each workflow's sandbox container on Docker; `None`: the built-in
    /// `gantry/pause`, imported into the engine on first use.
    pub sandbox_image: Option<String>,
    /// Builds may pull images from registries on loopback, link-local, cloud metadata or
    /// unspecified addresses (security rule 16); off by default, when such an image is a
    /// compile error (E034 `private-registry`).
    pub allow_private_registries: bool,
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
            .field("api_body_limit", &self.api_body_limit)
            .field("runner_capacity", &self.runner_capacity)
            .field("docker_labels", &self.docker_labels)
            .field("sandbox_image", &self.sandbox_image)
            .field("allow_private_registries", &self.allow_private_registries)
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
            runner_capacity: DEFAULT_RUNNER_CAPACITY,
            docker_labels: BTreeMap::new(),
            sandbox_image: None,
            allow_private_registries: false,
        }
    }

    /// Checks the settings `launch` cannot work with, so a bad one stops the start with a
    /// message naming it instead of failing every build later.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.runner_capacity == 0 {
            anyhow::bail!(
                "the runner capacity must be at least 1 workflow (--runner-capacity / \
                 GANTRY_RUNNER_CAPACITY); use --no-local-runner to run no builds here"
            );
        }
        let most = crate::runners::MAX_CAPACITY as usize;
        if self.runner_capacity > most {
            anyhow::bail!(
                "the runner capacity {} is more than a runner may take ({most} workflows; \
                 --runner-capacity / GANTRY_RUNNER_CAPACITY); add runners for more",
                self.runner_capacity
            );
        }
        if let Some(image) = &self.sandbox_image
            && (image.is_empty() || image.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            anyhow::bail!(
                "sandbox image `{image}` is not an image reference (--sandbox-image / \
                 GANTRY_SANDBOX_IMAGE); give one like `registry.k8s.io/pause:3.10`, or leave \
                 it unset for the built-in one"
            );
        }
        for (key, value) in &self.docker_labels {
            check_docker_label(key, value)
                .map_err(|e| anyhow::anyhow!("Docker label `{key}={value}`: {e}"))?;
        }
        Ok(())
    }

    /// The database URL in force: the configured one, or SQLite in the data directory.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| gantry_store::default_database_url(&self.data_dir))
    }
}

/// Parses Docker labels written `key=value`, several separated by commas (the form of
/// `--docker-label` and `GANTRY_DOCKER_LABELS`); empty entries are skipped.
pub fn parse_docker_labels(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("`{pair}` is not `key=value`"))?;
            let (key, value) = (key.trim(), value.trim());
            check_docker_label(key, value).map_err(|e| format!("`{pair}`: {e}"))?;
            Ok((key.to_string(), value.to_string()))
        })
        .collect()
}

fn check_docker_label(key: &str, value: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("the key is empty; write `key=value`".into());
    }
    // Gantry's own labels say which workflow and which server an object belongs to;
    // overriding them would make cleanup remove the wrong objects or none.
    if key.starts_with("gantry.") && key != "gantry.test" {
        return Err(format!(
            "`{key}` is reserved for Gantry's own labels; pick a key outside `gantry.`"
        ));
    }
    if key.chars().chain(value.chars()).any(char::is_control) {
        return Err("keys and values cannot hold control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_labels_parse_and_bad_pairs_are_named() {
        let labels = parse_docker_labels("gantry.test=abc, team=ci,").unwrap();
        assert_eq!(
            labels,
            [
                ("gantry.test".to_string(), "abc".to_string()),
                ("team".to_string(), "ci".to_string())
            ]
        );
        assert!(
            parse_docker_labels("novalue")
                .unwrap_err()
                .contains("novalue")
        );
        assert!(
            parse_docker_labels("=x")
                .unwrap_err()
                .contains("key is empty")
        );
        let reserved = parse_docker_labels("gantry.owner=me").unwrap_err();
        assert!(reserved.contains("reserved"), "{reserved}");
    }

    #[test]
    fn a_runner_without_capacity_is_refused_at_start() {
        let mut config = ServerConfig::new("/tmp/unused");
        assert!(config.check().is_ok());
        config.runner_capacity = 0;
        let error = config.check().unwrap_err().to_string();
        assert!(error.contains("--runner-capacity"), "{error}");
        config.runner_capacity = 257;
        let error = config.check().unwrap_err().to_string();
        assert!(error.contains("256 workflows"), "{error}");
        config.runner_capacity = 1;
        config
            .docker_labels
            .insert("gantry.workflow".into(), "x".into());
        assert!(config.check().unwrap_err().to_string().contains("reserved"));
        config.docker_labels.clear();
        config.sandbox_image = Some("pause 3.10".into());
        let error = config.check().unwrap_err().to_string();
        assert!(error.contains("--sandbox-image"), "{error}");
    }
}
