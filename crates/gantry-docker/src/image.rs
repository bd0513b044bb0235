//! Making sure a step's image is present, honouring its pull policy.

use bollard::Docker;
use bollard::query_parameters::CreateImageOptions;
use futures_util::StreamExt;
use gantry_pipeline::plan::PullPolicy;
use gantry_runner::BackendError;

use crate::errors;

/// Pulls `image` before the container is created when the policy says so. For
/// `if-not-exists` and `never` nothing happens here: creating the container tells whether
/// the image is missing (one engine call instead of two), and [`missing_image`] decides.
pub async fn before_create(
    docker: &Docker,
    image: &str,
    policy: PullPolicy,
) -> Result<(), BackendError> {
    match policy {
        PullPolicy::Always => pull(docker, image).await,
        PullPolicy::IfNotExists | PullPolicy::Never => Ok(()),
    }
}

/// What to do when creating the container said the image is missing: pull it (then the
/// caller creates again) or report it.
pub async fn missing_image(
    docker: &Docker,
    image: &str,
    policy: PullPolicy,
) -> Result<(), BackendError> {
    match policy {
        PullPolicy::Never => Err(BackendError::ImageNotFound {
            image: image.to_string(),
            detail: "it is not present locally and the pull policy is `never` (build or load \
                     the image first, or allow pulling with `pull: if-not-exists`)"
                .to_string(),
        }),
        PullPolicy::IfNotExists | PullPolicy::Always => pull(docker, image).await,
    }
}

/// The engine's create answer means "this image is not here".
pub fn is_missing_image(err: &bollard::errors::Error) -> bool {
    errors::is_not_found(err)
        && errors::engine_message(err)
            .to_ascii_lowercase()
            .contains("no such image")
}

/// Pulls `image`, reading the progress stream silently; any error becomes
/// [`BackendError::ImageNotFound`] with the registry's words.
pub async fn pull(docker: &Docker, image: &str) -> Result<(), BackendError> {
    let options = CreateImageOptions {
        from_image: Some(with_default_tag(image)),
        ..Default::default()
    };
    let mut progress = docker.create_image(Some(options), None, None);
    while let Some(item) = progress.next().await {
        let message = match item {
            Ok(info) => info.error_detail.and_then(|d| d.message),
            Err(e) => Some(errors::engine_message(&e)),
        };
        if let Some(message) = message {
            return Err(BackendError::ImageNotFound {
                image: image.to_string(),
                detail: format!("it could not be pulled: {}", message.trim()),
            });
        }
    }
    Ok(())
}

/// `image` with `:latest` added when it names neither a tag nor a digest: the engine
/// would otherwise pull every tag of the repository.
pub fn with_default_tag(image: &str) -> String {
    let last_segment = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || last_segment.contains(':') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

#[cfg(test)]
mod tests {
    use super::with_default_tag;

    #[test]
    fn adds_latest_only_when_no_tag_or_digest() {
        assert_eq!(with_default_tag("busybox"), "busybox:latest");
        assert_eq!(with_default_tag("busybox:1.36"), "busybox:1.36");
        assert_eq!(
            with_default_tag("registry:5000/org/app"),
            "registry:5000/org/app:latest"
        );
        assert_eq!(
            with_default_tag("registry:5000/org/app:v1"),
            "registry:5000/org/app:v1"
        );
        assert_eq!(with_default_tag("app@sha256:abc"), "app@sha256:abc");
    }
}
