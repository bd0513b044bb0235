//! The backend the built-in runner uses, and the names it gives what it creates.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use gantry_docker::{DockerBackend, DockerConfig};
use gantry_runner::{Backend, LocalBackend, WorkflowId};

use crate::config::{BackendChoice, ServerConfig};

/// The built-in runner's id, `server:<host>:<data-dir digest>`: stable across restarts
/// of this server (same host, same data directory), so recovery knows which claimed work
/// died with the previous process, and distinct for every replica sharing a database
/// (each has its own data directory), so none takes another's work for dead.
pub fn runner_id(data_dir: &Path) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    let dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    // FNV-1a: the digest must not change between releases (std's hasher may).
    let digest = dir
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, &byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("server:{host}:{:08x}", digest >> 32)
}

/// True for the id of a server's built-in runner (see [`runner_id`]); a remote runner's
/// is `runner:<token id>`.
pub fn is_built_in_runner(runner_id: &str) -> bool {
    runner_id.starts_with("server:")
}

/// The labels the built-in runner offers: `os`, `arch` (Go/Docker names: `amd64`,
/// `arm64`) and `backend`; a pipeline's `labels:` must be a subset of them.
pub fn runner_labels(config: &ServerConfig) -> BTreeMap<String, String> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let backend = match config.backend {
        BackendChoice::Docker => "docker",
        BackendChoice::Local => "local",
    };
    [
        ("os", std::env::consts::OS),
        ("arch", arch),
        ("backend", backend),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The backend-side id of a workflow: unique per server database.
pub fn workflow_id(build_id: i64, workflow_id: i64) -> WorkflowId {
    WorkflowId(format!("b{build_id}-w{workflow_id}"))
}

/// Where the local backend makes workflow directories.
pub fn workspaces_dir(config: &ServerConfig) -> PathBuf {
    config.data_dir.join("workspaces")
}

/// Connects the configured backend (Docker must answer; the local one needs its
/// workspace directory).
pub async fn open(config: &ServerConfig) -> anyhow::Result<Arc<dyn Backend>> {
    match config.backend {
        BackendChoice::Docker => {
            let docker = DockerConfig {
                extra_labels: config.docker_labels.clone(),
                sandbox_image: config.sandbox_image.clone(),
                owner: runner_id(&config.data_dir),
                ..DockerConfig::default()
            };
            let backend = DockerBackend::connect(docker).await.context(
                "the docker backend needs a Docker engine; start one or use `--backend local`",
            )?;
            Ok(Arc::new(backend))
        }
        BackendChoice::Local => {
            let dir = workspaces_dir(config);
            std::fs::create_dir_all(&dir).with_context(|| {
                format!(
                    "creating the workspace directory {}; check it is writable",
                    dir.display()
                )
            })?;
            Ok(Arc::new(LocalBackend::with_temp_workspaces(dir)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_ids_name_build_and_workflow() {
        assert_eq!(workflow_id(12, 3).0, "b12-w3");
    }

    #[test]
    fn each_data_directory_gives_its_own_runner_id() {
        let a = runner_id(Path::new("/var/lib/gantry-a"));
        assert_eq!(a, runner_id(Path::new("/var/lib/gantry-a")));
        assert_ne!(a, runner_id(Path::new("/var/lib/gantry-b")));
        assert!(a.starts_with("server:"), "{a}");
    }
}
