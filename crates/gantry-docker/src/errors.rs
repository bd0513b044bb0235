//! Turning bollard errors into [`BackendError`]s a person can act on.

use bollard::errors::Error as DockerError;
use gantry_runner::BackendError;

/// HTTP status of an engine error response, if the engine answered at all.
pub fn status(err: &DockerError) -> Option<u16> {
    match err {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The object does not exist (404).
pub fn is_not_found(err: &DockerError) -> bool {
    status(err) == Some(404)
}

/// The object exists already or is in use (409).
pub fn is_conflict(err: &DockerError) -> bool {
    status(err) == Some(409)
}

/// The engine's own words for an error, without bollard's wrapping.
pub fn engine_message(err: &DockerError) -> String {
    match err {
        DockerError::DockerResponseServerError { message, .. } => message.trim().to_string(),
        other => other.to_string(),
    }
}

/// The engine could not be reached at all (as opposed to answering with an error).
pub fn is_unreachable(err: &DockerError) -> bool {
    matches!(
        err,
        DockerError::IOError { .. }
            | DockerError::HyperLegacyError { .. }
            | DockerError::SocketNotFoundError(_)
            | DockerError::RequestTimeoutError
    )
}

/// `what` failed, phrased as "cannot <what>: <engine message>".
pub fn failed(what: impl std::fmt::Display, err: &DockerError) -> BackendError {
    if is_unreachable(err) {
        return BackendError::Unavailable(format!(
            "cannot {what}: the Docker engine did not answer: {err} (is Docker running?)"
        ));
    }
    BackendError::Other(format!("cannot {what}: {}", engine_message(err)))
}

/// Ignores "not found": the object is gone, which is what a removal wanted.
pub fn tolerate_missing(result: Result<(), DockerError>) -> Result<(), DockerError> {
    match result {
        Err(e) if is_not_found(&e) => Ok(()),
        other => other,
    }
}
