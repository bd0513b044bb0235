//! The runners connected to this server and their labels, so that work no runner can
//! take says why instead of a silent `pending`.
//!
//! Each replica keeps its own connections in memory (the fast path) and writes them to
//! the store's runners table: at once when one joins or leaves, and every few seconds to
//! refresh `last_seen`. A listing and a pending workflow's `waiting_for` read this
//! replica's memory and the other replicas' rows; a row not refreshed for two leases
//! belongs to a replica that is gone: it is ignored, and removed by the next write. A
//! row whose runner connected again (to any replica) after it was last seen is not listed
//! either: a replica's name differs per start, so a restarted replica's previous rows
//! would otherwise show its runners twice until they went stale.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use gantry_store::{
    BuildDetail, DatabaseKind, Millis, RunStatus, RunnerPresence, labels_fit, now_ms,
    repo_pattern_matches,
};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Notify;

use super::LEASE_MS;
use super::hello::describe_labels;
use crate::error::ApiError;
use crate::state::AppState;

type Labels = BTreeMap<String, String>;

/// How often a replica refreshes its runners' rows (`last_seen`).
const PRESENCE_INTERVAL: Duration = Duration::from_secs(3);
/// A row older than this belongs to a replica that stopped refreshing it.
const PRESENCE_STALE_MS: i64 = 2 * LEASE_MS;
/// With no runner connected, how many intervals pass between writes (which remove the
/// stale rows of replicas that are gone).
const IDLE_SYNC_EVERY: u32 = 10;

/// A runner connected to this replica.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectedRunner {
    /// `runner:<token id>`.
    pub runner_id: String,
    /// The name it gave.
    pub name: String,
    /// Its labels (its token's imposed ones included).
    pub labels: Labels,
    /// The repositories its token restricts it to (None: every one).
    pub repos: Option<Vec<String>>,
    /// Workflows at once.
    pub capacity: usize,
    /// Connected since (unix milliseconds).
    pub connected_at: Millis,
}

/// (the labels fit, the labels fit and the repository is allowed).
fn may_take(
    labels: &Labels,
    repos: Option<&[String]>,
    repo: &str,
    required: &Labels,
) -> (bool, bool) {
    let fits = labels_fit(required, labels);
    let allowed =
        repos.is_none_or(|patterns| patterns.iter().any(|p| repo_pattern_matches(p, repo)));
    (fits, fits && allowed)
}

/// Connected runners (of this server process), by connection.
#[derive(Debug, Clone)]
pub struct Registry {
    connected: Arc<Mutex<HashMap<u64, ConnectedRunner>>>,
    next: Arc<AtomicU64>,
    /// When a runner last disconnected.
    last_left: Arc<Mutex<Option<Instant>>>,
    /// This replica's name in the runners table.
    replica: Arc<str>,
    /// Woken when a runner joins or leaves, so the table follows at once.
    changed: Arc<Notify>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            connected: Arc::default(),
            next: Arc::default(),
            last_left: Arc::default(),
            replica: replica_name().into(),
            changed: Arc::default(),
        }
    }
}

/// `<host>:<pid>:<start time>`: unique to this process, readable by people.
fn replica_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "server".into());
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() & 0xff_ffff);
    format!("{host}:{}:{started:06x}", std::process::id())
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
        self.registry.changed.notify_one();
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
        self.changed.notify_one();
        Presence {
            registry: self.clone(),
            key,
        }
    }

    /// This replica's name, as listings show it.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Runners connected now.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// The runners connected to this replica now, longest connected first.
    pub fn list(&self) -> Vec<ConnectedRunner> {
        let mut runners: Vec<ConnectedRunner> = self.lock().values().cloned().collect();
        runners.sort_by(|a, b| (a.connected_at, &a.runner_id).cmp(&(b.connected_at, &b.runner_id)));
        runners
    }

    /// This replica's runners as rows of the runners table, seen `now`.
    fn rows(&self, now: Millis) -> Vec<RunnerPresence> {
        let mut rows: Vec<RunnerPresence> = (self.lock().iter())
            .map(|(key, runner)| RunnerPresence {
                connection: format!("{}/{key}", self.replica),
                runner_id: runner.runner_id.clone(),
                name: runner.name.clone(),
                labels: runner.labels.clone(),
                repos: runner.repos.clone(),
                capacity: i64::try_from(runner.capacity).unwrap_or(i64::MAX),
                replica: self.replica.to_string(),
                connected_at: runner.connected_at,
                last_seen: now,
            })
            .collect();
        rows.sort_by(|a, b| (a.connected_at, &a.connection).cmp(&(b.connected_at, &b.connection)));
        rows
    }

    /// True while a remote runner is connected, or a runner left less than `window` ago
    /// (its work may still need requeueing). The built-in runner, always connected, does
    /// not count: its leases are kept by its heartbeats like any runner's, and work it
    /// left behind is requeued by the lease keeper's slower rounds.
    pub fn recently_active(&self, window: std::time::Duration) -> bool {
        let left = *self
            .last_left
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let remote =
            (self.lock().values()).any(|r| !crate::run::backend::is_built_in_runner(&r.runner_id));
        remote || left.is_some_and(|at| at.elapsed() < window)
    }
}

/// The runners of every replica: this one's from memory, the others' from the store
/// (rows refreshed within two leases, less those superseded), longest connected first.
pub async fn everywhere(state: &AppState) -> Result<Vec<RunnerPresence>, ApiError> {
    let now = now_ms();
    let mine = state.runners.replica();
    let mut all = state.runners.rows(now);
    let others = state.store.list_presence(now - PRESENCE_STALE_MS).await?;
    all.extend(others.into_iter().filter(|row| row.replica != mine));
    let mut all = without_superseded(all);
    all.sort_by(|a, b| {
        (a.connected_at, &a.runner_id, &a.connection).cmp(&(
            b.connected_at,
            &b.runner_id,
            &b.connection,
        ))
    });
    Ok(all)
}

/// Leaves out a row whose runner connected again (anywhere) after the row was last seen:
/// a replica's name differs per start, so the rows of a replica that restarted (or died)
/// would otherwise be listed beside its runners' new connections until they go stale.
/// Two connections of one runner that are both kept current are both listed.
fn without_superseded(rows: Vec<RunnerPresence>) -> Vec<RunnerPresence> {
    let mut latest: HashMap<&str, Millis> = HashMap::new();
    for row in &rows {
        let at = latest
            .entry(row.runner_id.as_str())
            .or_insert(row.connected_at);
        *at = (*at).max(row.connected_at);
    }
    let superseded: Vec<bool> = (rows.iter())
        .map(|row| {
            latest
                .get(row.runner_id.as_str())
                .is_some_and(|&at| at > row.last_seen)
        })
        .collect();
    (rows.into_iter().zip(superseded))
        .filter(|(_, superseded)| !superseded)
        .map(|(row, _)| row)
        .collect()
}

/// Keeps this replica's rows of the runners table current until shutdown, then removes
/// them. On SQLite (one server process) the rows a previous process left are removed at
/// once.
pub fn spawn_presence_keeper(state: AppState) {
    tokio::spawn(async move {
        let registry = state.runners.clone();
        let single = state.store.kind() == DatabaseKind::Sqlite;
        let mut written_empty = false;
        let mut idle = 0u32;
        let mut first = true;
        loop {
            let now = now_ms();
            let rows = registry.rows(now);
            idle = if rows.is_empty() && written_empty {
                idle + 1
            } else {
                0
            };
            if idle == 0 || idle >= IDLE_SYNC_EVERY {
                idle = 0;
                let stale_before = if first && single {
                    now
                } else {
                    now - PRESENCE_STALE_MS
                };
                match state
                    .store
                    .sync_presence(registry.replica(), &rows, now, stale_before)
                    .await
                {
                    Ok(()) => written_empty = rows.is_empty(),
                    Err(error) => {
                        tracing::warn!(error = %error, "recording the connected runners failed")
                    }
                }
                first = false;
            }
            tokio::select! {
                () = tokio::time::sleep(PRESENCE_INTERVAL) => {}
                () = registry.changed.notified() => {}
                () = state.shutdown.cancelled() => break,
            }
        }
        let now = now_ms();
        let _ = (state.store)
            .sync_presence(registry.replica(), &[], now, now - PRESENCE_STALE_MS)
            .await;
    });
}

/// What the runners of every replica (and the built-in runner) may take: labels and
/// allowed repositories of each, read once for a build's workflows.
struct Offers(Vec<(Labels, Option<Vec<String>>)>);

impl Offers {
    /// None when the store cannot be read (saying "no runner fits" then would mislead).
    async fn gather(state: &AppState) -> Option<Offers> {
        let mut offers = Vec::new();
        if !state.config.no_local_runner {
            offers.push((crate::run::backend::runner_labels(&state.config), None));
        }
        match everywhere(state).await {
            Ok(rows) => offers.extend(rows.into_iter().map(|row| (row.labels, row.repos))),
            // The store error is logged where it was converted.
            Err(_) => return None,
        }
        Some(Offers(offers))
    }

    /// Why work of `repo` (`owner/name`) with these labels waits, or None when a runner
    /// could take it.
    fn waiting_for(&self, repo: &str, required: &Labels) -> Option<String> {
        let (mut fits, mut takes) = (false, false);
        for (labels, repos) in &self.0 {
            let (f, t) = may_take(labels, repos.as_deref(), repo, required);
            (fits, takes) = (fits || f, takes || t);
        }
        if takes {
            return None;
        }
        let wanted = if required.is_empty() {
            "waiting for a runner".to_string()
        } else {
            format!("waiting for a runner with {}", describe_labels(required))
        };
        Some(if fits {
            format!(
                "{wanted} allowed to build {repo}: the connected runners that fit are \
                 restricted to other repositories by their tokens"
            )
        } else if required.is_empty() {
            "waiting for a runner: none is connected".to_string()
        } else {
            wanted
        })
    }
}

/// Why work of `repo` (`owner/name`) with these labels waits, or None when a runner
/// connected to any replica (or the built-in one) could take it.
pub async fn waiting_for(state: &AppState, repo: &str, required: &Labels) -> Option<String> {
    Offers::gather(state).await?.waiting_for(repo, required)
}

/// Adds `waiting_for` to each pending workflow of a build's JSON that no runner can take.
pub async fn annotate_waiting(state: &AppState, detail: &BuildDetail, json: &mut Value) {
    let pending = detail
        .workflows
        .iter()
        .any(|w| w.workflow.status == RunStatus::Pending);
    if !pending {
        return;
    }
    let repo = match state.store.repo_by_id(detail.build.repo_id).await {
        Ok(Some(repo)) => repo.full_name(),
        _ => return,
    };
    let Some(offers) = Offers::gather(state).await else {
        return;
    };
    let Some(workflows) = json.get_mut("workflows").and_then(Value::as_array_mut) else {
        return;
    };
    for (value, workflow) in workflows.iter_mut().zip(&detail.workflows) {
        if workflow.workflow.status != RunStatus::Pending {
            continue;
        }
        if let Some(reason) = offers.waiting_for(&repo, &workflow.workflow.labels) {
            value["waiting_for"] = Value::String(reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn runner(runner_id: &str) -> ConnectedRunner {
        ConnectedRunner {
            runner_id: runner_id.into(),
            name: "r".into(),
            labels: Labels::new(),
            repos: None,
            capacity: 1,
            connected_at: 0,
        }
    }

    #[test]
    fn only_remote_runners_keep_the_lease_keeper_busy() {
        let registry = Registry::default();
        let window = Duration::from_secs(60);
        assert!(!registry.recently_active(window));
        let _built_in = registry.join(runner(&crate::run::backend::runner_id(
            std::path::Path::new("/tmp"),
        )));
        assert!(!registry.recently_active(window), "the built-in runner");
        let remote = registry.join(runner("runner:7"));
        assert!(registry.recently_active(window));
        drop(remote);
        assert!(registry.recently_active(window), "one left just now");
        assert!(!registry.recently_active(Duration::ZERO));
    }

    #[test]
    fn a_runner_takes_work_its_labels_fit_of_repositories_its_token_allows() {
        let gpu = labels(&[("gpu", "true"), ("os", "linux")]);
        let app = ["acme/app".to_string()];
        assert_eq!(
            may_take(&gpu, None, "x/y", &labels(&[("gpu", "true")])),
            (true, true)
        );
        assert_eq!(
            may_take(&gpu, Some(&app), "acme/app", &labels(&[])),
            (true, true)
        );
        assert_eq!(
            may_take(&gpu, Some(&app), "acme/web", &labels(&[])),
            (true, false)
        );
        assert_eq!(
            may_take(&gpu, Some(&app), "acme/app", &labels(&[("os", "windows")])),
            (false, false)
        );
    }

    #[test]
    fn rows_of_a_runner_that_connected_again_since_are_left_out() {
        let row = |connection: &str, runner: &str, connected_at, last_seen| RunnerPresence {
            connection: connection.into(),
            runner_id: runner.into(),
            name: "r".into(),
            labels: Labels::new(),
            repos: None,
            capacity: 1,
            replica: connection.split('/').next().unwrap_or_default().into(),
            connected_at,
            last_seen,
        };
        let rows = vec![
            // The previous incarnation of a restarted replica: last seen at 1_000, and
            // its runner connected to the new one at 2_000.
            row("old/1", "runner:1", 100, 1_000),
            row("new/1", "runner:1", 2_000, 5_000),
            // One runner connected twice, both kept current: both listed.
            row("a/1", "runner:2", 100, 5_000),
            row("b/1", "runner:2", 3_000, 5_000),
            row("old/2", "runner:3", 100, 1_000),
        ];
        let kept: Vec<String> = (without_superseded(rows).into_iter())
            .map(|r| r.connection)
            .collect();
        assert_eq!(kept, ["new/1", "a/1", "b/1", "old/2"]);
    }

    #[test]
    fn replica_names_differ_per_registry_start() {
        let name = replica_name();
        assert!(
            name.contains(&format!(":{}:", std::process::id())),
            "{name}"
        );
    }
}
