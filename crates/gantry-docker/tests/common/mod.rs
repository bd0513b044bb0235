//! What every Docker test shares: an engine check that skips (or fails in CI), the test
//! image, a backend whose objects carry `gantry.test=<unique id>`, plan builders, and the
//! final "nothing left behind" check.

#![allow(dead_code)] // each test binary uses a different part of this

pub mod gated;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::query_parameters::{ListContainersOptions, ListNetworksOptions, ListVolumesOptions};
use gantry_docker::{DockerBackend, DockerConfig};
use gantry_pipeline::plan::{Plan, PullPolicy, Resources, RunOn, Step, StepKind};
use gantry_runner::{Backend, RunConfig, RunEvent, RunOutcome, Runtime, WorkflowId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The image every test step runs (built by `.ci/images.sh`, never pulled).
pub const IMAGE: &str = "gantry-test/busybox:latest";
/// Upper bound for any one test.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Workspace path inside the containers.
pub const WORKSPACE: &str = "/workspace";

/// A backend labelled for one test, and the id to find its objects by.
pub struct TestEnv {
    pub test_id: String,
    pub backend: Arc<DockerBackend>,
}

/// Runs `body` under [`TEST_TIMEOUT`], failing loudly when it takes longer.
pub async fn within_timeout<F: Future<Output = ()>>(body: F) {
    if tokio::time::timeout(TEST_TIMEOUT, body).await.is_err() {
        panic!("test did not finish within {TEST_TIMEOUT:?}");
    }
}

impl TestEnv {
    /// A backend for test `name`, or `None` (with the reason on stderr) when no Docker
    /// engine answers outside CI. In CI (`CI=true`) an unreachable engine fails the test.
    pub async fn new(name: &str) -> Option<Self> {
        Self::with_config(name, DockerConfig::default()).await
    }

    /// Like [`TestEnv::new`] with a base config (the test label is added to it).
    pub async fn with_config(name: &str, mut config: DockerConfig) -> Option<Self> {
        let test_id = unique_id(name);
        config
            .extra_labels
            .insert("gantry.test".to_string(), test_id.clone());
        let backend = match DockerBackend::connect(config).await {
            Ok(backend) => backend,
            Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("CI=true but the Docker engine is unreachable: {e}")
            }
            Err(e) => {
                eprintln!("SKIPPED {name}: no Docker engine ({e})");
                return None;
            }
        };
        ensure_test_image(&backend).await;
        Some(Self {
            test_id,
            backend: Arc::new(backend),
        })
    }

    /// A workflow id unique to this test.
    pub fn workflow(&self, suffix: &str) -> WorkflowId {
        WorkflowId(format!("{}-{suffix}", self.test_id))
    }

    /// Runs `plan` through the real [`Runtime`], collecting every event.
    pub async fn run(&self, id: &WorkflowId, plan: &Plan) -> (RunOutcome, Vec<RunEvent>) {
        self.run_with(id, plan, RunConfig::default(), CancellationToken::new())
            .await
    }

    /// [`TestEnv::run`] with a run config and a cancel token.
    pub async fn run_with(
        &self,
        id: &WorkflowId,
        plan: &Plan,
        config: RunConfig,
        cancel: CancellationToken,
    ) -> (RunOutcome, Vec<RunEvent>) {
        run_plan(self.backend.clone(), id, plan, config, cancel).await
    }

    /// Asserts that no container, network or volume carries this test's label, after
    /// removing any that do (so a failing test still leaves the engine clean).
    pub async fn assert_nothing_left(&self) {
        let left = self.leftovers().await;
        if !left.is_empty() {
            force_remove(&self.backend, &left).await;
        }
        assert!(left.is_empty(), "objects left behind: {left:?}");
    }

    /// `kind:name` of every object labelled with this test's id.
    pub async fn leftovers(&self) -> Vec<String> {
        leftovers_labelled(&self.backend, &format!("gantry.test={}", self.test_id)).await
    }
}

/// Runs `plan` through the real [`Runtime`] on `backend`, collecting every event.
pub async fn run_plan(
    backend: Arc<dyn Backend>,
    id: &WorkflowId,
    plan: &Plan,
    config: RunConfig,
    cancel: CancellationToken,
) -> (RunOutcome, Vec<RunEvent>) {
    let runtime = Runtime::new(backend, config);
    let (tx, mut rx) = mpsc::channel(256);
    let collected = Arc::new(Mutex::new(Vec::new()));
    let sink = collected.clone();
    let reader = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            sink.lock().unwrap_or_else(|e| e.into_inner()).push(event);
        }
    });
    let outcome = runtime.run(id, plan, tx, cancel).await;
    drop(runtime);
    let _ = reader.await;
    let events = std::mem::take(&mut *collected.lock().unwrap_or_else(|e| e.into_inner()));
    (outcome, events)
}

/// `kind:name` of every container, network and volume matching `label`.
pub async fn leftovers_labelled(backend: &DockerBackend, label: &str) -> Vec<String> {
    let docker = backend.client();
    let filters = HashMap::from([("label".to_string(), vec![label.to_string()])]);
    let mut out = Vec::new();
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters.clone()),
            ..Default::default()
        }))
        .await
        .expect("list containers");
    for c in containers {
        out.push(format!(
            "container:{}",
            c.names.unwrap_or_default().join(",")
        ));
    }
    let networks = docker
        .list_networks(Some(ListNetworksOptions {
            filters: Some(filters.clone()),
        }))
        .await
        .expect("list networks");
    for n in networks {
        out.push(format!("network:{}", n.name.unwrap_or_default()));
    }
    let volumes = docker
        .list_volumes(Some(ListVolumesOptions {
            filters: Some(filters),
        }))
        .await
        .expect("list volumes");
    for v in volumes.volumes.unwrap_or_default() {
        out.push(format!("volume:{}", v.name));
    }
    out
}

async fn force_remove(backend: &DockerBackend, left: &[String]) {
    let docker = backend.client();
    for item in left {
        let (kind, name) = item.split_once(':').unwrap_or(("", ""));
        let name = name.split(',').next().unwrap_or("").trim_start_matches('/');
        let _ = match kind {
            "container" => {
                let options = bollard::query_parameters::RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..Default::default()
                };
                docker.remove_container(name, Some(options)).await
            }
            "network" => docker.remove_network(name).await,
            _ => {
                docker
                    .remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>)
                    .await
            }
        };
    }
}

/// `name-<pid>-<nanos>`: unique across concurrent test binaries and runs.
fn unique_id(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{name}-{}-{nanos:08x}", std::process::id())
}

/// Builds the test image with `.ci/images.sh` when it is missing (once per process).
async fn ensure_test_image(backend: &DockerBackend) {
    static BUILD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one_at_a_time = BUILD.lock().await;
    if backend.client().inspect_image(IMAGE).await.is_ok() {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/images.sh");
    eprintln!("{IMAGE} is missing: running {}", script.display());
    let status = std::process::Command::new("bash")
        .arg(&script)
        .status()
        .expect("run .ci/images.sh");
    assert!(status.success(), "{} failed: {status}", script.display());
}

/// A commands step running `commands` in the test image.
pub fn step(name: &str, commands: &[&str]) -> Step {
    Step {
        name: name.to_string(),
        kind: StepKind::Commands,
        image: IMAGE.to_string(),
        pull: PullPolicy::IfNotExists,
        entrypoint: None,
        commands: commands.iter().map(|c| c.to_string()).collect(),
        environment: BTreeMap::from([("CI".to_string(), "true".to_string())]),
        secrets: Vec::new(),
        needs: Vec::new(),
        run_on: RunOn::default(),
        failure: Default::default(),
        timeout_secs: None,
        retries: 0,
        detach: false,
        privileged: false,
        volumes: Vec::new(),
        resources: Resources::default(),
        workdir: WORKSPACE.to_string(),
        approval_timeout_secs: None,
    }
}

/// `step` that runs after `needs`.
pub fn step_after(name: &str, needs: &[&str], commands: &[&str]) -> Step {
    let mut s = step(name, commands);
    s.needs = needs.iter().map(|n| n.to_string()).collect();
    s
}

/// A service running `commands` in the test image.
pub fn service(name: &str, commands: &[&str]) -> Step {
    let mut s = step(name, commands);
    s.kind = StepKind::Service;
    s
}

/// A plan of `steps` (and `services`).
pub fn plan(services: Vec<Step>, steps: Vec<Step>) -> Plan {
    Plan {
        name: "default".to_string(),
        matrix: BTreeMap::new(),
        labels: BTreeMap::new(),
        workspace: WORKSPACE.to_string(),
        services,
        steps,
        depends_on: Vec::new(),
        run_on: RunOn::default(),
    }
}

/// Lines a step wrote, in order.
pub fn lines_of(events: &[RunEvent], step: &str) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            RunEvent::Logs(batch) if batch.step() == step => Some(batch.iter()),
            _ => None,
        })
        .flatten()
        .map(|line| line.text.to_string())
        .collect()
}
