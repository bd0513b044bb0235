//! Removing the containers of steps that already exited, in the background.
//!
//! Once a step's process has exited, removing its container (and its writable layer) is
//! pure cleanup: nothing runs any more. Doing it in the background lets the next step
//! start at once instead of waiting for the engine to delete files. A later start of the
//! same step waits for its removal first, and `destroy_workflow` waits for all of them
//! before it sweeps the workflow's objects by label, so nothing outlives the workflow.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use bollard::Docker;
use gantry_runner::WorkflowId;
use tokio::task::JoinHandle;

use crate::cleanup;

/// A step of a workflow.
pub type StepKey = (WorkflowId, String);

/// Container removals still under way, by step.
#[derive(Default)]
pub struct BackgroundRemovals {
    pending: Mutex<HashMap<StepKey, JoinHandle<()>>>,
}

impl BackgroundRemovals {
    /// Starts removing container `name` of `key`'s step.
    pub async fn spawn(&self, key: StepKey, docker: &Docker, name: String) {
        // At most one removal per step at a time.
        self.finish(&key).await;
        let docker = docker.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = cleanup::remove_container(&docker, &name).await {
                // The workflow's sweep by label removes it later.
                tracing::warn!(container = %name, error = %e, "removing an exited step failed");
            }
        });
        self.lock().insert(key, task);
    }

    /// Waits until the removal of `key`'s container (if any) is over.
    pub async fn finish(&self, key: &StepKey) {
        let task = self.lock().remove(key);
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Waits until every removal of workflow `id` is over.
    pub async fn finish_workflow(&self, id: &WorkflowId) {
        let tasks: Vec<JoinHandle<()>> = {
            let mut pending = self.lock();
            let keys: Vec<StepKey> = pending.keys().filter(|k| &k.0 == id).cloned().collect();
            keys.iter().filter_map(|k| pending.remove(k)).collect()
        };
        for task in tasks {
            let _ = task.await;
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<StepKey, JoinHandle<()>>> {
        // A panic elsewhere cannot leave this map half-written: keep using it.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}
