//! A workflow's shared objects: its bridge network, its sandbox container, its workspace
//! and its named volumes.

use std::collections::BTreeSet;
use std::path::Path;

use bollard::models::{NetworkCreateRequest, VolumeCreateRequest};
use futures_util::future::try_join_all;
use gantry_pipeline::plan::Plan;
use gantry_runner::{BackendError, WorkflowId};

use crate::cleanup::{self, Selection};
use crate::spec::{WorkflowContext, WorkspaceMount, WorkspaceSource};
use crate::{DockerBackend, errors, names};

impl DockerBackend {
    /// Creates the network, volumes and sandbox of `id`, after removing whatever an earlier
    /// run with the same id left behind.
    pub(crate) async fn setup(&self, id: &WorkflowId, plan: &Plan) -> Result<(), BackendError> {
        check_workspace(id, &plan.workspace)?;
        let source = match &self.config.host_workspace {
            Some(dir) => WorkspaceSource::HostDir(host_dir(dir)?),
            None => WorkspaceSource::Volume(names::workspace_volume(id)),
        };
        self.remove_workflow_objects(id).await?;
        let network = names::network_name(id);
        let mut volumes: Vec<String> = named_mounts(plan)
            .into_iter()
            .map(|m| names::mount_volume(id, m))
            .collect();
        if let WorkspaceSource::Volume(workspace) = &source {
            volumes.push(workspace.clone());
        }
        // Independent objects: create them at once.
        let (created_network, created_volumes) = tokio::join!(
            self.create_network(id, &network),
            try_join_all(volumes.iter().map(|v| self.create_volume(id, v))),
        );
        created_network?;
        created_volumes?;
        let context = WorkflowContext {
            id: id.clone(),
            network,
            sandbox: names::sandbox_name(id),
            workspace: WorkspaceMount {
                target: plan.workspace.clone(),
                source,
            },
            owner: self.config.owner.clone(),
            extra_labels: self.config.extra_labels.clone(),
            pids_limit: self.config.pids_limit,
        };
        self.start_sandbox(&context, plan).await?;
        self.lock_workflows().insert(id.clone(), context);
        Ok(())
    }

    /// Removes every container (the sandbox too, killed at once), network and volume
    /// labelled with `id`.
    pub(crate) async fn teardown(&self, id: &WorkflowId) -> Result<(), BackendError> {
        self.lock_exited().retain(|(workflow, _)| workflow != id);
        self.lock_prepared()
            .retain(|(workflow, _), _| workflow != id);
        self.removals.finish_workflow(id).await;
        let result = self.remove_workflow_objects(id).await.map(|_| ());
        self.lock_workflows().remove(id);
        result
    }

    /// What `setup` recorded for `id`, needed to start its steps.
    pub(crate) fn context(&self, id: &WorkflowId) -> Result<WorkflowContext, BackendError> {
        self.lock_workflows().get(id).cloned().ok_or_else(|| {
            BackendError::Other(format!(
                "workflow `{id}` was not set up on this Docker backend (setup_workflow must \
                 come before start_step)"
            ))
        })
    }

    async fn remove_workflow_objects(&self, id: &WorkflowId) -> Result<usize, BackendError> {
        let selection = Selection {
            label_filters: vec![format!("{}={}", names::LABEL_WORKFLOW, id.0)],
            remove_if: &|labels| labels.get(names::LABEL_WORKFLOW) == Some(&id.0),
        };
        cleanup::remove_selected(&self.docker, &selection).await
    }

    async fn create_network(&self, id: &WorkflowId, name: &str) -> Result<(), BackendError> {
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".to_string()),
            labels: Some(self.workflow_labels(id)),
            ..Default::default()
        };
        self.docker
            .create_network(request)
            .await
            .map(|_| ())
            .map_err(|e| errors::failed(format_args!("create network `{name}`"), &e))
    }

    async fn create_volume(&self, id: &WorkflowId, name: &str) -> Result<(), BackendError> {
        let request = VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(self.workflow_labels(id)),
            ..Default::default()
        };
        self.docker
            .create_volume(request)
            .await
            .map(|_| ())
            .map_err(|e| errors::failed(format_args!("create volume `{name}`"), &e))
    }

    fn workflow_labels(&self, id: &WorkflowId) -> std::collections::HashMap<String, String> {
        names::workflow_labels(id, &self.config.owner, &self.config.extra_labels)
    }
}

/// The workspace is mounted over whatever the image has at that path, so it must be an
/// absolute path that cannot hide the image's root (or, through `..`, anything else).
fn check_workspace(id: &WorkflowId, path: &str) -> Result<(), BackendError> {
    let escapes = path.split('/').any(|p| p == "..") || path.contains('\0');
    if !path.starts_with('/') || path.trim_end_matches('/').is_empty() || escapes {
        return Err(BackendError::Other(format!(
            "workflow `{id}`: the workspace path `{}` must be absolute, below `/`, and \
             without `..`",
            path.escape_debug()
        )));
    }
    Ok(())
}

/// Names of the workflow-scoped volumes the plan mounts (host paths excluded).
fn named_mounts(plan: &Plan) -> BTreeSet<&str> {
    plan.services
        .iter()
        .chain(&plan.steps)
        .flat_map(|s| &s.volumes)
        .filter(|m| m.host_path.is_none())
        .map(|m| m.name.as_str())
        .collect()
}

/// The host workspace as an absolute path the engine can bind.
fn host_dir(dir: &Path) -> Result<String, BackendError> {
    let absolute = std::fs::canonicalize(dir).map_err(|e| {
        BackendError::Other(format!(
            "cannot use `{}` as the workspace: {e} (pass an existing directory)",
            dir.display()
        ))
    })?;
    if !absolute.is_dir() {
        return Err(BackendError::Other(format!(
            "cannot use `{}` as the workspace: it is not a directory",
            dir.display()
        )));
    }
    absolute.to_str().map(str::to_string).ok_or_else(|| {
        BackendError::Other(format!(
            "cannot use `{}` as the workspace: the path is not valid UTF-8",
            dir.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_must_be_absolute_below_root_and_not_escape() {
        let id = WorkflowId("w".to_string());
        assert!(check_workspace(&id, "/workspace").is_ok());
        assert!(check_workspace(&id, "/go/src/example.com/app").is_ok());
        for bad in ["workspace", "/", "//", "/a/../bin", ""] {
            let err = check_workspace(&id, bad).err().map(|e| e.to_string());
            assert!(err.is_some_and(|e| e.contains("workspace path")), "{bad:?}");
        }
    }
}
