//! Finding and reaching the Docker engine.

use bollard::{API_DEFAULT_VERSION, Docker};
use gantry_runner::BackendError;

/// Where the engine listens when neither the config nor `DOCKER_HOST` says otherwise.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// The engine address to use: the configured one, else `DOCKER_HOST`, else the local socket.
pub fn resolve_host(configured: Option<&str>) -> String {
    configured
        .map(str::to_string)
        .or_else(|| std::env::var("DOCKER_HOST").ok())
        .filter(|h| !h.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_HOST.to_string())
}

/// Connects to `host` and agrees on an API version the engine speaks (older engines, such
/// as 20.10, refuse requests newer than they know). `timeout_secs` bounds only the wait for
/// response headers (bollard's timeout): streamed bodies such as a step's log or its exit
/// are not cut by it.
pub async fn connect(host: &str, timeout_secs: u64) -> Result<Docker, BackendError> {
    let docker = client_for(host, timeout_secs.max(1))?;
    docker
        .negotiate_version()
        .await
        .map_err(|e| unreachable(host, &e))
}

/// "cannot reach the Docker engine at <host>: <why> (is Docker running?)".
pub fn unreachable(host: &str, err: &bollard::errors::Error) -> BackendError {
    BackendError::Unavailable(format!(
        "cannot reach the Docker engine at {host}: {err} (is Docker running? set DOCKER_HOST \
         if it listens elsewhere)"
    ))
}

fn client_for(host: &str, timeout_secs: u64) -> Result<Docker, BackendError> {
    let client = if host.starts_with("unix://") {
        Docker::connect_with_unix(host, timeout_secs, API_DEFAULT_VERSION)
    } else if host.starts_with("tcp://") || host.starts_with("http://") {
        Docker::connect_with_http(host, timeout_secs, API_DEFAULT_VERSION)
    } else {
        return Err(BackendError::Unavailable(format!(
            "cannot use the Docker engine address `{host}`: only unix:// and tcp:// (http://) \
             addresses are supported; fix DOCKER_HOST or the configured host"
        )));
    };
    client.map_err(|e| unreachable(host, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_host_wins() {
        assert_eq!(resolve_host(Some("tcp://x:2375")), "tcp://x:2375");
    }

    #[tokio::test]
    async fn unsupported_scheme_is_a_clear_error() {
        let err = connect("ssh://example", 5)
            .await
            .err()
            .map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(err.contains("`ssh://example`"), "{err}");
        assert!(err.contains("unix://"), "{err}");
    }

    #[tokio::test]
    async fn missing_socket_says_is_docker_running() {
        let err = connect("unix:///nonexistent/docker.sock", 5).await.err();
        let err = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            err.starts_with("cannot reach the Docker engine at unix:///nonexistent/docker.sock:"),
            "{err}"
        );
        assert!(err.contains("is Docker running?"), "{err}");
    }
}
