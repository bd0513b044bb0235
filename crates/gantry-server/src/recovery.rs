//! Crash recovery at start: nothing stays `running` forever.
//!
//! After the previous server process died (even by `kill -9`), the work its built-in
//! runner had claimed is lost: unstarted workflows go back to the queue, builds that had
//! started end in `error` with a message saying why, and what their steps left on the
//! backend (containers, networks, volumes, local workspaces) is removed. Hook builds
//! recorded but not prepared yet (commit fetched, pipeline compiled) are prepared again.
//!
//! Only this server's own built-in runner (same host, same data directory) is taken for
//! dead at once. Work held by remote runners, or by another replica on the same Postgres,
//! is lost only once its lease ended: a replica starting leaves the others' builds alone.

use gantry_store::{RecoveryRequest, now_ms};

use crate::run::backend;
use crate::state::AppState;

/// The message interrupted builds, workflows and steps get.
pub const INTERRUPTED_MESSAGE: &str = "the server stopped while this build ran (crash or \
     kill); its steps were stopped and their containers removed: restart the build";

/// Requeues unstarted work and ends interrupted builds, before the runner starts.
pub async fn recover(state: &AppState) -> anyhow::Result<()> {
    let request = RecoveryRequest {
        now: now_ms(),
        dead_runners: vec![backend::runner_id(&state.config.data_dir)],
        message: INTERRUPTED_MESSAGE.into(),
    };
    let recovered = state.store.recover_interrupted(&request).await?;
    let preparing = crate::builds::resume_preparations(state)
        .await
        .map_err(|e| anyhow::anyhow!("resuming hook builds not prepared yet: {e}"))?;
    if preparing > 0 {
        tracing::info!(
            recovery.preparing = preparing,
            "preparing again hook builds the last stop left unprepared"
        );
    }
    if !recovered.requeued_items.is_empty() {
        tracing::info!(
            recovery.requeued = recovered.requeued_items.len(),
            "put unstarted work back in the queue"
        );
        state.live.announce_work();
    }
    if recovered.interrupted.is_empty() {
        return Ok(());
    }
    tracing::warn!(
        recovery.interrupted = recovered.interrupted.len(),
        "builds interrupted by the last stop end in error"
    );
    if state.config.no_local_runner {
        return Ok(()); // nothing of theirs ran here
    }
    let backend = match backend::open(&state.config).await {
        Ok(backend) => backend,
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "cannot reach the backend to remove what interrupted builds left");
            return Ok(());
        }
    };
    for build in &recovered.interrupted {
        for workflow in &build.workflow_ids {
            let id = backend::workflow_id(build.build_id, *workflow);
            if let Err(error) = backend.destroy_workflow(&id).await {
                tracing::warn!(workflow = %id, error = %error, "removing an interrupted workflow's objects failed");
            }
            let dir = backend::workspaces_dir(&state.config).join(format!("gantry-{id}"));
            if dir.exists() {
                kill_processes_in(&dir);
                let _ = tokio::fs::remove_dir_all(&dir).await;
            }
        }
    }
    // Local workspaces whose owner process is gone (also those of never-recorded runs).
    if let Err(error) = backend.reap_leftovers().await {
        tracing::warn!(error = %error, "removing leftovers failed");
    }
    Ok(())
}

/// Kills the processes whose working directory is inside `dir`: local-backend steps
/// that outlived the killed server (they run in their own process groups).
fn kill_processes_in(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let inside =
            std::fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(dir));
        if inside {
            let pid = nix::unistd::Pid::from_raw(pid);
            if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).is_ok() {
                tracing::info!(
                    process.pid = pid.as_raw(),
                    "killed a step process left by the last stop"
                );
            }
        }
    }
}
