//! The container a step becomes: a pure translation of a [`Step`] into bollard's create
//! body, so it can be checked without an engine.
//!
//! Only what the [`Step`] says reaches the spec: the compiler has already refused
//! `privileged` and host volumes for untrusted repositories, and nothing else from the YAML
//! (devices, host network, capabilities) has a way in.
//!
//! Every container joins the network namespace of the workflow's sandbox
//! (`network_mode: container:<sandbox>`), so it sets none of what Docker refuses or ignores
//! in that mode: host name, extra hosts, DNS, published or exposed ports, network aliases,
//! endpoint settings. The sandbox carries those for the whole workflow.

use std::collections::BTreeMap;

use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use gantry_pipeline::plan::{Step, StepKind};
use gantry_runner::{BackendError, WorkflowId};

use crate::names;

/// Where the shared workspace comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkspaceSource {
    /// The workflow's workspace volume.
    Volume(String),
    /// A host directory bound in its place (`gantry exec`).
    HostDir(String),
}

/// The workspace as every container of a workflow mounts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceMount {
    /// Path inside the container (`Plan::workspace`).
    pub target: String,
    /// What is mounted there.
    pub source: WorkspaceSource,
}

/// Everything about the workflow a step's container needs besides the step itself.
#[derive(Debug, Clone)]
pub struct WorkflowContext {
    /// The workflow.
    pub id: WorkflowId,
    /// Its bridge network.
    pub network: String,
    /// Its sandbox container, whose network namespace every step and service joins.
    pub sandbox: String,
    /// Its workspace.
    pub workspace: WorkspaceMount,
    /// `gantry.owner` of its objects.
    pub owner: String,
    /// Labels added to every object.
    pub extra_labels: BTreeMap<String, String>,
    /// [`DockerConfig::pids_limit`](crate::DockerConfig::pids_limit).
    pub pids_limit: Option<u32>,
}

/// Keeps setuid binaries and file capabilities from raising a step's privileges.
pub const NO_NEW_PRIVILEGES: &str = "no-new-privileges";

/// The shell a commands step's script runs in.
const SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// The create body for `step`, with `secrets` added to its environment.
pub fn container_body(
    ctx: &WorkflowContext,
    step: &Step,
    secrets: &[(String, String)],
) -> Result<ContainerCreateBody, BackendError> {
    if step.kind == StepKind::Approval {
        return Err(BackendError::Other(format!(
            "step `{}` is an approval step: it runs no container",
            step.name
        )));
    }
    if step.image.trim().is_empty() {
        return Err(BackendError::Other(format!(
            "step `{}` has no image: set `image:` on it",
            step.name
        )));
    }
    let (entrypoint, cmd) = entrypoint_and_cmd(step);
    Ok(ContainerCreateBody {
        image: Some(step.image.clone()),
        entrypoint,
        cmd,
        env: Some(environment(step, secrets)?),
        working_dir: Some(step.workdir.clone()).filter(|w| !w.is_empty()),
        labels: Some(names::step_labels(
            &ctx.id,
            &step.name,
            &ctx.owner,
            &ctx.extra_labels,
        )),
        host_config: Some(host_config(ctx, step)?),
        ..Default::default()
    })
}

/// Commands run as `/bin/sh -c <script>` (or the step's own entrypoint with the script as
/// its argument); plugins and services without commands keep the image's entrypoint
/// unless the step overrides it.
fn entrypoint_and_cmd(step: &Step) -> (Option<Vec<String>>, Option<Vec<String>>) {
    if step.commands.is_empty() {
        return (step.entrypoint.clone(), None);
    }
    let entrypoint = step
        .entrypoint
        .clone()
        .unwrap_or_else(|| SHELL.iter().map(|s| s.to_string()).collect());
    (Some(entrypoint), Some(vec![step.script()]))
}

/// `NAME=value` pairs: the step's environment, then its secrets (a secret wins over a
/// plain variable of the same name).
fn environment(step: &Step, secrets: &[(String, String)]) -> Result<Vec<String>, BackendError> {
    let mut merged: BTreeMap<&str, &str> = step
        .environment
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for (k, v) in secrets {
        merged.insert(k, v);
    }
    merged
        .into_iter()
        .map(|(name, value)| {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                return Err(BackendError::Other(format!(
                    "step `{}`: environment variable name `{}` is not valid (it must be \
                     non-empty and contain neither `=` nor NUL)",
                    step.name,
                    name.escape_debug()
                )));
            }
            if value.contains('\0') {
                return Err(BackendError::Other(format!(
                    "step `{}`: the value of environment variable `{name}` contains a NUL \
                     byte, which a process environment cannot hold",
                    step.name
                )));
            }
            Ok(format!("{name}={value}"))
        })
        .collect()
}

fn host_config(ctx: &WorkflowContext, step: &Step) -> Result<HostConfig, BackendError> {
    let memory = limit(step, "memory", step.resources.memory)?;
    // An overflowing product saturates to u64::MAX, which `limit` then refuses.
    let nano_cpus = step
        .resources
        .millicpus
        .map(|m| m.saturating_mul(1_000_000));
    let nano_cpus = limit(step, "cpus", nano_cpus)?;
    Ok(HostConfig {
        network_mode: Some(format!("container:{}", ctx.sandbox)),
        mounts: Some(mounts(ctx, step)?),
        // Swap equal to memory: without it the kernel swaps instead of enforcing the limit.
        memory,
        memory_swap: memory,
        nano_cpus,
        privileged: Some(step.privileged),
        // A privileged step (admitted only for trusted repositories) already holds every
        // capability, so the flag would protect nothing there, while the tools such steps
        // run (sudo, newuidmap for rootless builders, mount helpers) rely on setuid.
        security_opt: (!step.privileged).then(|| vec![NO_NEW_PRIVILEGES.to_string()]),
        pids_limit: ctx.pids_limit.map(i64::from),
        ..Default::default()
    })
}

fn limit(step: &Step, what: &str, value: Option<u64>) -> Result<Option<i64>, BackendError> {
    value
        .map(|v| {
            i64::try_from(v).map_err(|_| {
                BackendError::Other(format!(
                    "step `{}`: the {what} limit is too large for the Docker engine",
                    step.name
                ))
            })
        })
        .transpose()
}

fn mounts(ctx: &WorkflowContext, step: &Step) -> Result<Vec<Mount>, BackendError> {
    let workspace = match &ctx.workspace.source {
        WorkspaceSource::Volume(name) => volume_mount(name, &ctx.workspace.target),
        WorkspaceSource::HostDir(dir) => bind_mount(dir, &ctx.workspace.target),
    };
    let mut out = vec![workspace];
    for m in &step.volumes {
        check_absolute(step, "volume target", &m.target)?;
        out.push(match &m.host_path {
            Some(host) => {
                check_absolute(step, "volume host path", host)?;
                bind_mount(host, &m.target)
            }
            None => volume_mount(&names::mount_volume(&ctx.id, &m.name), &m.target),
        });
    }
    Ok(out)
}

fn check_absolute(step: &Step, what: &str, path: &str) -> Result<(), BackendError> {
    let bad_part = path.split('/').any(|p| p == "..");
    if !path.starts_with('/') || bad_part || path.contains('\0') {
        return Err(BackendError::Other(format!(
            "step `{}`: {what} `{}` must be an absolute path without `..`",
            step.name,
            path.escape_debug()
        )));
    }
    Ok(())
}

fn volume_mount(name: &str, target: &str) -> Mount {
    Mount {
        typ: Some(MountType::VOLUME),
        source: Some(name.to_string()),
        target: Some(target.to_string()),
        ..Default::default()
    }
}

fn bind_mount(dir: &str, target: &str) -> Mount {
    Mount {
        typ: Some(MountType::BIND),
        source: Some(dir.to_string()),
        target: Some(target.to_string()),
        ..Default::default()
    }
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
