//! Removing what dead owners left behind.

use gantry_runner::BackendError;

use crate::cleanup::{self, Selection};
use crate::{DockerBackend, names, owner};

impl DockerBackend {
    /// Removes containers, networks and volumes that carry `gantry.workflow` and this
    /// backend's extra labels and whose `gantry.owner` is a dead `exec:` owner on this
    /// host. Objects of live owners and of owners of any other form (servers, remote
    /// runners) are left alone: their lifetime is not ours to judge.
    pub(crate) async fn reap(&self) -> Result<usize, BackendError> {
        let this_host = owner::local_hostname();
        let mut label_filters = vec![names::LABEL_WORKFLOW.to_string()];
        label_filters.extend(
            self.config
                .extra_labels
                .iter()
                .map(|(k, v)| format!("{k}={v}")),
        );
        let selection = Selection {
            label_filters,
            remove_if: &|labels| {
                labels
                    .get(names::LABEL_OWNER)
                    .is_some_and(|o| owner::is_dead_exec_owner(o, &this_host))
            },
        };
        let removed = cleanup::remove_selected(&self.docker, &selection).await?;
        if removed > 0 {
            tracing::info!(docker.reaped = removed, "removed leftovers of dead runs");
        }
        Ok(removed)
    }
}
