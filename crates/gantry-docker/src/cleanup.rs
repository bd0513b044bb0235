//! Removing labelled containers, networks and volumes: the shared core of
//! `destroy_workflow` and `reap_leftovers`.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptions, ListNetworksOptions, ListVolumesOptions, RemoveContainerOptions,
    RemoveVolumeOptions,
};
use futures_util::future::join_all;
use gantry_runner::BackendError;

use crate::errors;

/// How often a network or volume still "in use" is retried: the engine can report a
/// just-removed container's endpoint or mount for a moment.
const BUSY_RETRIES: u32 = 30;
/// Pause between those retries.
const BUSY_PAUSE: Duration = Duration::from_millis(100);

/// Labels of an object, as the engine lists them.
pub type Labels = HashMap<String, String>;

/// Which objects to remove: all of `label_filters` (`key` or `key=value`) must match, then
/// `keep_if` decides on the object's labels (return `true` to remove it).
pub struct Selection<'a> {
    /// Engine-side label filters.
    pub label_filters: Vec<String>,
    /// Client-side decision on the full label set.
    pub remove_if: &'a (dyn Fn(&Labels) -> bool + Sync),
}

/// Removes selected containers (forced, with their anonymous volumes), then networks, then
/// volumes; "not found" counts as done. Goes on after a failure and reports the first one.
/// Returns how many objects were removed.
pub async fn remove_selected(docker: &Docker, sel: &Selection<'_>) -> Result<usize, BackendError> {
    let filters = HashMap::from([("label".to_string(), sel.label_filters.clone())]);
    let mut first_error: Option<BackendError> = None;
    let mut removed = 0;
    let mut note = |r: Result<usize, BackendError>| match r {
        Ok(n) => removed += n,
        Err(e) => {
            first_error.get_or_insert(e);
        }
    };
    note(remove_containers(docker, &filters, sel.remove_if).await);
    // Networks and volumes do not depend on each other, only on the containers.
    let (networks, volumes) = tokio::join!(
        remove_networks(docker, &filters, sel.remove_if),
        remove_volumes(docker, &filters, sel.remove_if),
    );
    note(networks);
    note(volumes);
    match first_error {
        Some(e) => Err(e),
        None => Ok(removed),
    }
}

async fn remove_containers(
    docker: &Docker,
    filters: &HashMap<String, Vec<String>>,
    remove_if: &(dyn Fn(&Labels) -> bool + Sync),
) -> Result<usize, BackendError> {
    let options = ListContainersOptions {
        all: true,
        filters: Some(filters.clone()),
        ..Default::default()
    };
    let listed = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| errors::failed("list containers", &e))?;
    let ids: Vec<String> = listed
        .into_iter()
        .filter(|c| c.labels.as_ref().is_some_and(remove_if))
        .filter_map(|c| c.id)
        .collect();
    let results = join_all(ids.iter().map(|id| remove_container(docker, id))).await;
    let count = results.iter().filter(|r| r.is_ok()).count();
    match results.into_iter().find_map(Result::err) {
        Some(e) => Err(e),
        None => Ok(count),
    }
}

/// Force-removes one container with its anonymous volumes; gone already is fine.
pub async fn remove_container(docker: &Docker, name: &str) -> Result<(), BackendError> {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    match docker.remove_container(name, Some(options)).await {
        Ok(()) => Ok(()),
        Err(e) if errors::is_not_found(&e) => Ok(()),
        // "removal of container ... is already in progress": someone else finishes it.
        Err(e) if errors::is_conflict(&e) && errors::engine_message(&e).contains("progress") => {
            Ok(())
        }
        Err(e) => Err(errors::failed(
            format_args!("remove container `{name}`"),
            &e,
        )),
    }
}

async fn remove_networks(
    docker: &Docker,
    filters: &HashMap<String, Vec<String>>,
    remove_if: &(dyn Fn(&Labels) -> bool + Sync),
) -> Result<usize, BackendError> {
    let options = ListNetworksOptions {
        filters: Some(filters.clone()),
    };
    let listed = docker
        .list_networks(Some(options))
        .await
        .map_err(|e| errors::failed("list networks", &e))?;
    // Go on after a failure (one busy network must not keep the rest), report the first.
    let mut count = 0;
    let mut first_error = None;
    for network in listed {
        if !network.labels.as_ref().is_some_and(remove_if) {
            continue;
        }
        let Some(id) = network.id.or(network.name) else {
            continue;
        };
        match retry_while_busy(|| docker.remove_network(&id)).await {
            Ok(()) => count += 1,
            Err(e) => {
                first_error.get_or_insert_with(|| {
                    errors::failed(format_args!("remove network `{id}`"), &e)
                });
            }
        }
    }
    first_error.map_or(Ok(count), Err)
}

async fn remove_volumes(
    docker: &Docker,
    filters: &HashMap<String, Vec<String>>,
    remove_if: &(dyn Fn(&Labels) -> bool + Sync),
) -> Result<usize, BackendError> {
    let options = ListVolumesOptions {
        filters: Some(filters.clone()),
    };
    let listed = docker
        .list_volumes(Some(options))
        .await
        .map_err(|e| errors::failed("list volumes", &e))?;
    let mut count = 0;
    let mut first_error = None;
    for volume in listed.volumes.unwrap_or_default() {
        if !remove_if(&volume.labels) {
            continue;
        }
        let name = volume.name;
        let removal = retry_while_busy(|| {
            docker.remove_volume(&name, Some(RemoveVolumeOptions { force: true }))
        });
        match removal.await {
            Ok(()) => count += 1,
            Err(e) => {
                first_error.get_or_insert_with(|| {
                    errors::failed(format_args!("remove volume `{name}`"), &e)
                });
            }
        }
    }
    first_error.map_or(Ok(count), Err)
}

/// Runs a removal until it succeeds, the object is gone, or it stays busy too long.
async fn retry_while_busy<F, Fut>(mut remove: F) -> Result<(), bollard::errors::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), bollard::errors::Error>>,
{
    let mut attempt = 0;
    loop {
        match errors::tolerate_missing(remove().await) {
            Ok(()) => return Ok(()),
            Err(e) if is_busy(&e) && attempt < BUSY_RETRIES => {
                attempt += 1;
                tokio::time::sleep(BUSY_PAUSE).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// "volume is in use" (409) or "network has active endpoints" (403/500 depending on the
/// engine version).
fn is_busy(err: &bollard::errors::Error) -> bool {
    let message = errors::engine_message(err).to_ascii_lowercase();
    errors::is_conflict(err) || message.contains("in use") || message.contains("active endpoints")
}
