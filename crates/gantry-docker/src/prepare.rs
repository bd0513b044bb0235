//! Prepared containers: a step's container created (not started) while the steps it needs
//! still run, so that starting the step is one engine call instead of two.
//!
//! The create body a container was made with is kept; `start_step` starts the prepared
//! container only if the body it would create now is the same (same image, command,
//! environment — `CI_BUILD_STATUS` included — secrets, mounts, limits, labels), and
//! otherwise removes it and creates a fresh one. The whole body is compared, not a hash of
//! it: equality cannot collide, and map fields compare regardless of their order.
//!
//! A prepared container that is never started is removed by `destroy_step` (it has nothing
//! to stop) and, in any case, by `destroy_workflow`'s sweep by label.

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::CreateContainerOptions;
use gantry_pipeline::plan::{PullPolicy, Step};
use gantry_runner::{BackendError, WorkflowId};

use crate::{DockerBackend, cleanup, errors, image, names, spec};

/// What `start_step` should do about a prepared container.
pub enum PreparedStart {
    /// It was made for exactly this body and still exists: start it.
    Started,
    /// There was none (or it is gone now): create one.
    Create,
}

impl DockerBackend {
    /// Creates the step's container without starting it. Never pulls: a missing image is
    /// an error here and is pulled (if the policy allows) by `start_step`. With the pull
    /// policy `always` nothing is prepared, because the start pulls first and must then
    /// create the container from what it pulled.
    pub(crate) async fn prepare(
        &self,
        id: &WorkflowId,
        step: &Step,
        secrets: &[(String, String)],
    ) -> Result<(), BackendError> {
        if step.pull == PullPolicy::Always {
            return Ok(());
        }
        let context = self.context(id)?;
        let body = spec::container_body(&context, step, secrets)?;
        let key = (id.clone(), step.name.clone());
        if self.lock_prepared().contains_key(&key) {
            return Ok(());
        }
        let options = CreateContainerOptions {
            name: Some(names::container_name(id, &step.name)),
            ..Default::default()
        };
        match self
            .docker
            .create_container(Some(options), body.clone())
            .await
        {
            Ok(_) => {
                self.lock_prepared().insert(key, body);
                Ok(())
            }
            Err(e) if image::is_missing_image(&e) => Err(BackendError::ImageNotFound {
                image: step.image.clone(),
                detail: "it is not present locally (preparing a step never pulls; starting \
                         it pulls if its pull policy allows)"
                    .to_string(),
            }),
            Err(e) => Err(errors::failed(
                format_args!("prepare the container of step `{}`", step.name),
                &e,
            )),
        }
    }

    /// Starts the prepared container of the step if it was made with `body`; removes one
    /// made with another body.
    pub(crate) async fn start_prepared(
        &self,
        id: &WorkflowId,
        step: &Step,
        body: &ContainerCreateBody,
    ) -> Result<PreparedStart, BackendError> {
        let key = (id.clone(), step.name.clone());
        let Some(prepared) = self.lock_prepared().remove(&key) else {
            return Ok(PreparedStart::Create);
        };
        let name = names::container_name(id, &step.name);
        if prepared != *body {
            // Made for another environment (the pipeline's status changed meanwhile).
            cleanup::remove_container(&self.docker, &name).await?;
            return Ok(PreparedStart::Create);
        }
        match self.docker.start_container(&name, None).await {
            Ok(()) => Ok(PreparedStart::Started),
            // Removed behind our back: make it again.
            Err(e) if errors::is_not_found(&e) => Ok(PreparedStart::Create),
            Err(e) => Err(errors::failed(
                format_args!("start step `{}`", step.name),
                &e,
            )),
        }
    }

    /// Forgets and removes the step's container if it was prepared and never started.
    /// Returns whether it was.
    pub(crate) async fn remove_prepared(
        &self,
        id: &WorkflowId,
        step: &Step,
    ) -> Result<bool, BackendError> {
        let key = (id.clone(), step.name.clone());
        if self.lock_prepared().remove(&key).is_none() {
            return Ok(false);
        }
        let name = names::container_name(id, &step.name);
        cleanup::remove_container(&self.docker, &name).await?;
        Ok(true)
    }
}
