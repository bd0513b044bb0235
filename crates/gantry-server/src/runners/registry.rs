//! The runners connected to this server and their labels, so that work no runner can
//! take says why instead of a silent `pending`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use gantry_store::{BuildDetail, Millis, RunStatus, labels_fit};
use serde::Serialize;
use serde_json::Value;

use super::hello::describe_labels;
use crate::state::AppState;

type Labels = BTreeMap<String, String>;

/// A connected runner, as `GET /api/runners` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectedRunner {
    /// `runner:<token id>`.
    pub runner_id: String,
    /// The name it gave.
    pub name: String,
    /// Its labels.
    pub labels: Labels,
    /// Workflows at once.
    pub capacity: usize,
    /// Connected since (unix milliseconds).
    pub connected_at: Millis,
}

/// Connected runners (of this server process), by connection.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    connected: Arc<Mutex<HashMap<u64, ConnectedRunner>>>,
    next: Arc<AtomicU64>,
    /// When a runner last disconnected.
    last_left: Arc<Mutex<Option<Instant>>>,
}

/// A runner's place in the registry; it leaves when this is dropped.
pub struct Presence {
    registry: Registry,
    key: u64,
}

impl Drop for Presence {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.key);
        *(self.registry.last_left)
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, ConnectedRunner>> {
        self.connected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a connected runner until the returned presence is dropped.
    pub fn join(&self, runner: ConnectedRunner) -> Presence {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(key, runner);
        Presence {
            registry: self.clone(),
            key,
        }
    }

    /// Runners connected now.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// The runners connected now, longest connected first.
    pub fn list(&self) -> Vec<ConnectedRunner> {
        let mut runners: Vec<ConnectedRunner> = self.lock().values().cloned().collect();
        runners.sort_by(|a, b| (a.connected_at, &a.runner_id).cmp(&(b.connected_at, &b.runner_id)));
        runners
    }

    /// True while a runner is connected, or one left less than `window` ago (its work
    /// may still need requeueing).
    pub fn recently_active(&self, window: std::time::Duration) -> bool {
        let left = *self
            .last_left
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.count() > 0 || left.is_some_and(|at| at.elapsed() < window)
    }

    fn any_fits(&self, required: &Labels) -> bool {
        self.lock()
            .values()
            .any(|runner| labels_fit(required, &runner.labels))
    }
}

/// Why work with these labels waits, or None when a connected runner (or the
/// in-process one) could take it.
pub fn waiting_for(state: &AppState, required: &Labels) -> Option<String> {
    let local = !state.config.no_local_runner
        && labels_fit(required, &crate::run::backend::runner_labels(&state.config));
    if local || state.runners.any_fits(required) {
        return None;
    }
    Some(if required.is_empty() {
        "waiting for a runner: none is connected".to_string()
    } else {
        format!("waiting for a runner with {}", describe_labels(required))
    })
}

/// Adds `waiting_for` to each pending workflow of a build's JSON that no runner can take.
pub fn annotate_waiting(state: &AppState, detail: &BuildDetail, json: &mut Value) {
    let Some(workflows) = json.get_mut("workflows").and_then(Value::as_array_mut) else {
        return;
    };
    for (value, workflow) in workflows.iter_mut().zip(&detail.workflows) {
        if workflow.workflow.status != RunStatus::Pending {
            continue;
        }
        if let Some(reason) = waiting_for(state, &workflow.workflow.labels) {
            value["waiting_for"] = Value::String(reason);
        }
    }
}
