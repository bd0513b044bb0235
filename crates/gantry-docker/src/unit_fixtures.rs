//! Steps and workflow contexts for the unit tests of the spec, the sandbox and OOM checks.

use std::collections::BTreeMap;

use gantry_pipeline::plan::{PullPolicy, Resources, RunOn, Step, StepKind};
use gantry_runner::WorkflowId;

use crate::spec::{WorkflowContext, WorkspaceMount, WorkspaceSource};

/// A step of `kind` running `commands` in the test image, with `CI=true`.
pub fn step(name: &str, kind: StepKind, commands: &[&str]) -> Step {
    Step {
        name: name.to_string(),
        kind,
        image: "gantry-test/busybox:latest".to_string(),
        pull: PullPolicy::Never,
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
        workdir: "/workspace".to_string(),
        approval_timeout_secs: None,
    }
}

/// Workflow `w1` on network `gantry-w1` with sandbox `gantry-w1-sandbox`, a workspace
/// volume, a test label and a pids limit of 4096.
pub fn context() -> WorkflowContext {
    WorkflowContext {
        id: WorkflowId("w1".to_string()),
        network: "gantry-w1".to_string(),
        sandbox: "gantry-w1-sandbox".to_string(),
        workspace: WorkspaceMount {
            target: "/workspace".to_string(),
            source: WorkspaceSource::Volume("gantry-w1-workspace".to_string()),
        },
        owner: "exec:h:1".to_string(),
        extra_labels: BTreeMap::from([("gantry.test".to_string(), "t".to_string())]),
        pids_limit: Some(4096),
    }
}
