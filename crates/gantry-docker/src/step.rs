//! One step's container: create and start, follow its output, wait for it, remove it.

use bollard::errors::Error as DockerError;
use bollard::query_parameters::{
    CreateContainerOptions, KillContainerOptions, LogsOptions, StopContainerOptions,
};
use futures_util::StreamExt;
use gantry_pipeline::plan::Step;
use gantry_runner::{BackendError, LogChunk, LogStream, OutputStream, StepExit, WorkflowId};

use crate::prepare::PreparedStart;
use crate::{DockerBackend, cleanup, errors, image, names, spec};

impl DockerBackend {
    /// Starts the container `prepare_step` made for exactly this step, environment and
    /// secrets; otherwise pulls as the policy says, creates the container on the workflow
    /// network and starts it.
    pub(crate) async fn start(
        &self,
        id: &WorkflowId,
        step: &Step,
        secrets: &[(String, String)],
    ) -> Result<(), BackendError> {
        let context = self.context(id)?;
        let body = spec::container_body(&context, step, secrets)?;
        let name = names::container_name(id, &step.name);
        let key = (id.clone(), step.name.clone());
        self.lock_exited().remove(&key);
        // A retried step reuses its name: its old container must be gone first.
        self.removals.finish(&key).await;
        if let PreparedStart::Started = self.start_prepared(id, step, &body).await? {
            return Ok(());
        }
        image::before_create(&self.docker, &step.image, step.pull).await?;
        self.create(&name, id, step, body).await?;
        self.docker
            .start_container(&name, None)
            .await
            .map_err(|e| errors::failed(format_args!("start step `{}`", step.name), &e))
    }

    /// Creates the container, pulling a missing image (if allowed) or replacing a stale
    /// container of the same name, each at most once.
    async fn create(
        &self,
        name: &str,
        id: &WorkflowId,
        step: &Step,
        body: bollard::models::ContainerCreateBody,
    ) -> Result<(), BackendError> {
        let options = CreateContainerOptions {
            name: Some(name.to_string()),
            ..Default::default()
        };
        let (mut pulled, mut replaced) = (false, false);
        loop {
            let err = match self
                .docker
                .create_container(Some(options.clone()), body.clone())
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            if image::is_missing_image(&err) && !pulled {
                image::missing_image(&self.docker, &step.image, step.pull).await?;
                pulled = true;
            } else if image::is_missing_image(&err) {
                return Err(BackendError::ImageNotFound {
                    image: step.image.clone(),
                    detail: format!("the engine still misses it after a pull: {err}"),
                });
            } else if errors::is_conflict(&err) && !replaced {
                // A container of an earlier attempt that was not destroyed: replace it.
                self.check_same_step(name, id, step).await?;
                cleanup::remove_container(&self.docker, name).await?;
                replaced = true;
            } else {
                return Err(errors::failed(
                    format_args!("create the container of step `{}`", step.name),
                    &err,
                ));
            }
        }
    }

    /// Refuses to replace a container of that name that belongs to another workflow or
    /// step: names are unique per workflow and step, so such a container is not ours.
    async fn check_same_step(
        &self,
        name: &str,
        id: &WorkflowId,
        step: &Step,
    ) -> Result<(), BackendError> {
        let info = match self.docker.inspect_container(name, None).await {
            Ok(info) => info,
            Err(e) if errors::is_not_found(&e) => return Ok(()),
            Err(e) => return Err(errors::failed(format_args!("inspect `{name}`"), &e)),
        };
        let labels = info.config.and_then(|c| c.labels).unwrap_or_default();
        let ours = labels.get(names::LABEL_WORKFLOW) == Some(&id.0)
            && labels.get(names::LABEL_STEP) == Some(&step.name);
        if ours {
            return Ok(());
        }
        Err(BackendError::Other(format!(
            "cannot create the container of step `{}`: a container named `{name}` exists and              belongs to another workflow or step (remove it, or check the workflow ids)",
            step.name
        )))
    }

    /// Follows stdout and stderr from the container's start until it ends. Asking for the
    /// whole log (not attaching) means output of a step that already finished is not lost.
    pub(crate) fn follow_logs(&self, id: &WorkflowId, step: &Step) -> LogStream {
        let name = names::container_name(id, &step.name);
        let options = LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            since: 0,
            ..Default::default()
        };
        let step_name = step.name.clone();
        let frames = self.docker.logs(&name, Some(options));
        Box::pin(frames.filter_map(move |frame| {
            let item = match frame {
                Ok(output) => chunk(output).map(Ok),
                Err(e) => Some(Err(errors::failed(
                    format_args!("read the output of step `{step_name}`"),
                    &e,
                ))),
            };
            std::future::ready(item)
        }))
    }

    /// Waits for the container to stop, then finds out whether the kernel OOM-killed it
    /// (see [`crate::oom`]).
    pub(crate) async fn wait(
        &self,
        id: &WorkflowId,
        step: &Step,
    ) -> Result<StepExit, BackendError> {
        let name = names::container_name(id, &step.name);
        let mut waiting = self.docker.wait_container(&name, None);
        let code = match waiting.next().await {
            Some(Ok(answer)) => answer.status_code,
            // bollard reports a non-zero exit as an error carrying the code.
            Some(Err(DockerError::DockerContainerWaitError { code, .. })) => code,
            Some(Err(e)) if errors::is_not_found(&e) => return Err(gone(step)),
            Some(Err(e)) => {
                return Err(errors::failed(
                    format_args!("wait for step `{}`", step.name),
                    &e,
                ));
            }
            None => {
                return Err(BackendError::Other(format!(
                    "the Docker engine stopped waiting for step `{}` without an exit code",
                    step.name
                )));
            }
        };
        self.lock_exited().insert((id.clone(), step.name.clone()));
        let oom_killed = self.oom_killed(&name, step, code).await?;
        Ok(StepExit { code, oom_killed })
    }

    /// Stop (short grace) → kill → remove; each tolerates the container being gone. A
    /// container prepared and never started is just removed; one already seen exiting has
    /// nothing left to stop either: it is removed in the background (see
    /// [`crate::removal`]).
    pub(crate) async fn remove_step(
        &self,
        id: &WorkflowId,
        step: &Step,
    ) -> Result<(), BackendError> {
        if self.remove_prepared(id, step).await? {
            return Ok(());
        }
        let name = names::container_name(id, &step.name);
        let key = (id.clone(), step.name.clone());
        let exited = self.lock_exited().remove(&key);
        if exited {
            self.removals.spawn(key, &self.docker, name).await;
            return Ok(());
        }
        self.removals.finish(&key).await;
        self.stop_or_kill(&name).await;
        cleanup::remove_container(&self.docker, &name).await
    }

    /// Best effort: a forced removal follows, which kills whatever is left.
    async fn stop_or_kill(&self, name: &str) {
        let grace = i32::try_from(self.config.stop_grace_secs).unwrap_or(i32::MAX);
        let stop = StopContainerOptions {
            t: Some(grace),
            ..Default::default()
        };
        match self.docker.stop_container(name, Some(stop)).await {
            Ok(()) => {}
            Err(e) if errors::is_not_found(&e) => {}
            Err(e) => {
                tracing::debug!(container = name, error = %e, "stop failed; killing");
                let kill = KillContainerOptions {
                    signal: "SIGKILL".to_string(),
                };
                if let Err(e) = self.docker.kill_container(name, Some(kill)).await {
                    tracing::debug!(container = name, error = %e, "kill failed; removing");
                }
            }
        }
    }
}

fn gone(step: &Step) -> BackendError {
    BackendError::Other(format!(
        "the container of step `{}` no longer exists (removed while it ran?)",
        step.name
    ))
}

/// A log frame as a chunk; stdin echoes are dropped, a TTY console counts as stdout.
fn chunk(output: bollard::container::LogOutput) -> Option<LogChunk> {
    use bollard::container::LogOutput;
    let (stream, message) = match output {
        LogOutput::StdOut { message } | LogOutput::Console { message } => {
            (OutputStream::Stdout, message)
        }
        LogOutput::StdErr { message } => (OutputStream::Stderr, message),
        LogOutput::StdIn { .. } => return None,
    };
    Some(LogChunk {
        stream,
        data: message.to_vec(),
    })
}
