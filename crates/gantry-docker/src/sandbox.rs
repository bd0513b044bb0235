//! The workflow's sandbox: one long-running container on the workflow network whose
//! network namespace every step and service joins, as the containers of a Kubernetes pod
//! join its pause container.
//!
//! Joining costs a container no network set-up at start or teardown at exit (on a
//! user-defined network that is the embedded DNS resolver's set-up, ~85 ms per container
//! on Docker 20.10), and the workflow keeps its own network, isolated from other builds'.
//! Services are reached by name through the sandbox's `/etc/hosts`, which maps every
//! service (and detached step) to 127.0.0.1 and is shared, with `/etc/resolv.conf` and the
//! host name, by every container that joins. Steps and services therefore share
//! `localhost` and its ports.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{ContainerCreateBody, EndpointSettings, HostConfig, NetworkingConfig};
use bollard::query_parameters::{CreateContainerOptions, CreateImageOptions};
use futures_util::StreamExt;
use gantry_pipeline::plan::Plan;
use gantry_runner::BackendError;

use crate::pause::{self, Arch};
use crate::spec::{NO_NEW_PRIVILEGES, WorkflowContext};
use crate::{DockerBackend, errors, image, names};

/// Repository of the built-in sandbox image.
pub const BUILTIN_REPOSITORY: &str = "gantry/pause";
/// Label on the built-in sandbox image, saying what it is.
pub const LABEL_IMAGE: &str = "gantry.image";

/// The built-in sandbox image of this version: `gantry/pause:<version>`.
pub fn builtin_image() -> String {
    format!("{BUILTIN_REPOSITORY}:{}", env!("CARGO_PKG_VERSION"))
}

/// Names the sandbox answers for: every service and detached step (the ones other steps
/// talk to), as long as the name is a valid host name (the compiler allows nothing else).
pub fn reachable_names(plan: &Plan) -> Vec<String> {
    let mut names: Vec<String> = plan
        .services
        .iter()
        .chain(plan.steps.iter().filter(|s| s.detach))
        .map(|s| s.name.clone())
        .filter(|name| {
            let valid = is_host_name(name);
            if !valid {
                tracing::warn!(step = %name, "not a valid host name; not reachable by name");
            }
            valid
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

fn is_host_name(name: &str) -> bool {
    let starts_well = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    starts_well
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The sandbox's create body: on the workflow network, with the workflow's host name,
/// `reachable` mapped to 127.0.0.1 in `/etc/hosts` (and as network aliases, for clients
/// that ask the DNS server directly), and nothing it could do with privileges.
pub fn sandbox_body(
    ctx: &WorkflowContext,
    image: &str,
    reachable: &[String],
) -> ContainerCreateBody {
    let endpoint = EndpointSettings {
        aliases: Some(reachable.to_vec()).filter(|a| !a.is_empty()),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(image.to_string()),
        hostname: Some(names::sandbox_hostname(&ctx.id)),
        labels: Some(names::workflow_labels(
            &ctx.id,
            &ctx.owner,
            &ctx.extra_labels,
        )),
        // A pause program as pid 1 ignores SIGTERM: stopping it gently only waits.
        stop_signal: Some("SIGKILL".to_string()),
        host_config: Some(HostConfig {
            network_mode: Some(ctx.network.clone()),
            extra_hosts: Some(reachable.iter().map(|n| format!("{n}:127.0.0.1")).collect()),
            cap_drop: Some(vec!["ALL".to_string()]),
            security_opt: Some(vec![NO_NEW_PRIVILEGES.to_string()]),
            readonly_rootfs: Some(true),
            pids_limit: ctx.pids_limit.map(i64::from),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(ctx.network.clone(), endpoint)])),
        }),
        ..Default::default()
    }
}

impl DockerBackend {
    /// Creates and starts the sandbox of `ctx`'s workflow, providing its image first if
    /// the engine does not have it (the built-in one is imported, a configured one pulled).
    pub(crate) async fn start_sandbox(
        &self,
        ctx: &WorkflowContext,
        plan: &Plan,
    ) -> Result<(), BackendError> {
        let image = self
            .config
            .sandbox_image
            .clone()
            .unwrap_or_else(builtin_image);
        let body = sandbox_body(ctx, &image, &reachable_names(plan));
        let options = CreateContainerOptions {
            name: Some(ctx.sandbox.clone()),
            ..Default::default()
        };
        let mut created = self
            .docker
            .create_container(Some(options.clone()), body.clone())
            .await;
        if matches!(&created, Err(e) if image::is_missing_image(e)) {
            self.provide_sandbox_image(&image).await?;
            created = self.docker.create_container(Some(options), body).await;
        }
        created.map_err(|e| {
            errors::failed(
                format_args!("create the sandbox container of workflow `{}`", ctx.id),
                &e,
            )
        })?;
        self.docker
            .start_container(&ctx.sandbox, None)
            .await
            .map_err(|e| {
                errors::failed(
                    format_args!("start the sandbox container `{}`", ctx.sandbox),
                    &e,
                )
            })
    }

    /// Imports the built-in sandbox image as `reference` (e.g. `gantry/pause:0.1.0`) for
    /// the engine's architecture, with `labels`. Fails clearly on an architecture without
    /// a built-in program.
    pub async fn import_sandbox_image(
        &self,
        reference: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), BackendError> {
        let version = self
            .docker
            .version()
            .await
            .map_err(|e| errors::failed("ask the Docker engine for its architecture", &e))?;
        let engine_arch = version.arch.unwrap_or_default();
        let arch = Arch::from_engine(&engine_arch).ok_or_else(|| unsupported(&engine_arch))?;
        let rootfs = pause::single_file_tar("pause", &pause::pause_elf(arch));
        // (An import accepts no STOPSIGNAL: the sandbox container sets its own.)
        let mut changes = vec![r#"ENTRYPOINT ["/pause"]"#.to_string()];
        changes.extend(labels.iter().map(|(k, v)| format!("LABEL {k}={v:?}")));
        let options = CreateImageOptions {
            from_src: Some("-".to_string()),
            repo: Some(reference.to_string()),
            changes,
            ..Default::default()
        };
        let mut progress =
            self.docker
                .create_image(Some(options), Some(bollard::body_full(rootfs.into())), None);
        while let Some(item) = progress.next().await {
            let message = match item {
                Ok(info) => info.error_detail.and_then(|d| d.message),
                Err(e) => Some(errors::engine_message(&e)),
            };
            if let Some(message) = message {
                return Err(BackendError::Other(format!(
                    "cannot import the built-in sandbox image `{reference}`: {}",
                    message.trim()
                )));
            }
        }
        Ok(())
    }

    async fn provide_sandbox_image(&self, image: &str) -> Result<(), BackendError> {
        if self.config.sandbox_image.is_some() {
            return image::pull(&self.docker, image).await.map_err(|e| {
                BackendError::Other(format!(
                    "the sandbox image is missing: {e} (load it into the engine, or set \
                     another sandbox image)"
                ))
            });
        }
        let labels = BTreeMap::from([(LABEL_IMAGE.to_string(), "sandbox".to_string())]);
        tracing::info!(docker.image = image, "importing the built-in sandbox image");
        self.import_sandbox_image(image, &labels).await
    }
}

fn unsupported(arch: &str) -> BackendError {
    BackendError::Other(format!(
        "the Docker engine runs on `{arch}`, for which Gantry has no built-in sandbox \
         program (only amd64 and arm64): set the sandbox image (`gantry exec \
         --sandbox-image`, `GANTRY_SANDBOX_IMAGE`) to a pause image for `{arch}`, e.g. \
         registry.k8s.io/pause:3.10"
    ))
}

#[cfg(test)]
#[path = "sandbox_tests.rs"]
mod tests;
