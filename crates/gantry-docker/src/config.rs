//! How a [`DockerBackend`](crate::DockerBackend) connects and labels what it creates.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Settings for [`DockerBackend::connect`](crate::DockerBackend::connect).
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// Engine address (`unix:///var/run/docker.sock`, `tcp://host:2375`); `None` reads
    /// `DOCKER_HOST` and falls back to the local socket.
    pub host: Option<String>,
    /// Bind this host directory as the workspace instead of creating a volume
    /// (`gantry exec` runs a pipeline on the current checkout).
    pub host_workspace: Option<PathBuf>,
    /// Labels added to every container, network and volume (e.g. `gantry.test=<id>`).
    pub extra_labels: BTreeMap<String, String>,
    /// Who runs this backend, stored as the `gantry.owner` label so leftovers of a dead
    /// owner can be reaped: `exec:<hostname>:<pid>` for `gantry exec`.
    pub owner: String,
    /// Seconds a step gets between SIGTERM and SIGKILL when it is stopped early.
    pub stop_grace_secs: u32,
    /// Seconds to wait for the engine to *begin* answering a request. Streamed answers
    /// (logs, waiting for a step, pulls) may then run as long as the step does.
    pub request_timeout_secs: u64,
    /// Image of each workflow's sandbox container, whose network namespace the steps and
    /// services join (e.g. `registry.k8s.io/pause:3.10`; pulled if missing). `None` uses
    /// the built-in `gantry/pause:<version>`, imported into the engine on first use.
    pub sandbox_image: Option<String>,
    /// Most processes (and threads) one step or service container may have at once, so a
    /// fork bomb stays inside its step; `None` leaves it to the engine's default.
    pub pids_limit: Option<u32>,
}

/// [`DockerConfig::pids_limit`] by default: far above what builds use (a parallel
/// compiler or test runner has a few hundred), far below what starves a host.
pub const DEFAULT_PIDS_LIMIT: u32 = 4096;

impl Default for DockerConfig {
    fn default() -> Self {
        Self {
            host: None,
            host_workspace: None,
            extra_labels: BTreeMap::new(),
            owner: crate::owner::exec_owner(),
            stop_grace_secs: 2,
            request_timeout_secs: 120,
            sandbox_image: None,
            pids_limit: Some(DEFAULT_PIDS_LIMIT),
        }
    }
}
