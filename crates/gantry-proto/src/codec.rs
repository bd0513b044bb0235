//! Frames to messages and back. A frame that does not parse is looked at once more for a
//! protocol version, so a runner or server of another version gets a version error
//! instead of a confusing "unknown field".

use serde::Serialize;

use crate::messages::{RunnerMessage, ServerMessage};
use crate::{MAX_FRAME_BYTES, PROTOCOL_VERSION};

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The peer speaks another protocol version.
    #[error(
        "protocol version mismatch: the {peer} speaks version {theirs}, this gantry speaks \
         version {ours}; run the same gantry release on the server and its runners"
    )]
    Version {
        /// Who sent the frame: `runner` or `server`.
        peer: &'static str,
        /// Their version.
        theirs: u32,
        /// Ours.
        ours: u32,
    },
    /// The frame is larger than [`MAX_FRAME_BYTES`].
    #[error("a frame of {bytes} bytes is larger than the limit of {MAX_FRAME_BYTES} bytes")]
    TooLarge {
        /// Its size.
        bytes: usize,
    },
    /// The frame is not a message of this protocol.
    #[error("malformed {peer} message: {reason}")]
    Malformed {
        /// Who sent the frame.
        peer: &'static str,
        /// The parser's complaint.
        reason: String,
    },
}

/// The JSON text of a message.
pub fn encode<T: Serialize>(message: &T) -> String {
    // The message types hold only strings, numbers, maps and vectors: they always encode.
    serde_json::to_string(message).unwrap_or_else(|e| format!("{{\"encode_error\":\"{e}\"}}"))
}

/// Reads a frame a runner sent.
pub fn decode_runner(text: &str) -> Result<RunnerMessage, ProtocolError> {
    decode(text, "runner", &["version"])
}

/// Reads a frame the server sent.
pub fn decode_server(text: &str) -> Result<ServerMessage, ProtocolError> {
    decode(text, "server", &["version", "server_version"])
}

fn decode<T: serde::de::DeserializeOwned>(
    text: &str,
    peer: &'static str,
    version_fields: &[&str],
) -> Result<T, ProtocolError> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(ProtocolError::TooLarge { bytes: text.len() });
    }
    let parsed = serde_json::from_str::<T>(text);
    let error = match parsed {
        Ok(message) => {
            if let Some(theirs) = stated_version(text, version_fields)
                && theirs != PROTOCOL_VERSION
            {
                return Err(ProtocolError::Version {
                    peer,
                    theirs,
                    ours: PROTOCOL_VERSION,
                });
            }
            return Ok(message);
        }
        Err(error) => error,
    };
    match stated_version(text, version_fields) {
        Some(theirs) if theirs != PROTOCOL_VERSION => Err(ProtocolError::Version {
            peer,
            theirs,
            ours: PROTOCOL_VERSION,
        }),
        _ => Err(ProtocolError::Malformed {
            peer,
            reason: error.to_string(),
        }),
    }
}

/// The version a hello, welcome or refusal states, if the frame is one.
fn stated_version(text: &str, fields: &[&str]) -> Option<u32> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let kind = value.get("type")?.as_str()?;
    if !matches!(kind, "hello" | "welcome" | "refused") {
        return None;
    }
    fields
        .iter()
        .find_map(|field| value.get(*field)?.as_u64())
        .and_then(|v| u32::try_from(v).ok())
}
