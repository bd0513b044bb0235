//! Webhook authenticity (security rule 1): every check runs in constant time and no error
//! ever carries the secret, the received signature or the MAC we computed.

use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::forge::Forge;

type HmacSha256 = Hmac<Sha256>;

/// Header GitHub signs with: `sha256=<hex HMAC-SHA256 of the body>`.
pub const GITHUB_SIGNATURE: &str = "x-hub-signature-256";
/// Header Gitea signs with: `<hex HMAC-SHA256 of the body>`.
pub const GITEA_SIGNATURE: &str = "x-gitea-signature";
/// Header Forgejo signs with (same value as Gitea's).
pub const FORGEJO_SIGNATURE: &str = "x-forgejo-signature";
/// Header GitLab sends the plain secret token in.
pub const GITLAB_TOKEN: &str = "x-gitlab-token";
/// Header of Gantry's generic hook: `sha256=<hex HMAC-SHA256 of the body>`.
pub const GANTRY_SIGNATURE: &str = "x-gantry-signature";

/// Why a hook was refused as not authentic. Messages name the expected header only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The repository has no webhook secret, so nothing can be verified.
    #[error("the repository has no webhook secret: set one before accepting hooks")]
    NoSecret,
    /// The signature header is absent.
    #[error(
        "missing {header} header: the {forge} webhook must be configured with the repository's secret"
    )]
    MissingSignature {
        /// The header that was expected.
        header: &'static str,
        /// The forge whose hook this is.
        forge: Forge,
    },
    /// The signature header is present but not in the expected form.
    #[error("malformed {header} header: expected {expected}")]
    MalformedSignature {
        /// The header that was malformed.
        header: &'static str,
        /// The form it should have.
        expected: &'static str,
    },
    /// The signature does not match the body and the repository's secret.
    #[error(
        "{header} does not match: the body was changed or the webhook's secret differs from the repository's"
    )]
    Mismatch {
        /// The header that did not match.
        header: &'static str,
    },
}

/// Checks that `body` was sent by the holder of `secret`, the way `forge` signs hooks.
///
/// Call it before anything is written; a hook that fails it must change nothing.
pub fn verify(
    forge: Forge,
    headers: &HeaderMap,
    body: &[u8],
    secret: &[u8],
) -> Result<(), VerifyError> {
    if secret.is_empty() {
        return Err(VerifyError::NoSecret);
    }
    match forge {
        Forge::GitHub => verify_prefixed_hmac(forge, GITHUB_SIGNATURE, headers, body, secret),
        Forge::Generic => verify_prefixed_hmac(forge, GANTRY_SIGNATURE, headers, body, secret),
        Forge::Gitea => verify_gitea(headers, body, secret),
        Forge::GitLab => verify_gitlab_token(headers, secret),
    }
}

/// `sha256=<hex>` signatures (GitHub and generic).
fn verify_prefixed_hmac(
    forge: Forge,
    header: &'static str,
    headers: &HeaderMap,
    body: &[u8],
    secret: &[u8],
) -> Result<(), VerifyError> {
    const EXPECTED: &str = "`sha256=` followed by 64 hex digits";
    let value =
        header_bytes(headers, header).ok_or(VerifyError::MissingSignature { header, forge })?;
    let hex_part = value
        .strip_prefix(b"sha256=")
        .ok_or(VerifyError::MalformedSignature {
            header,
            expected: EXPECTED,
        })?;
    check_hex_hmac(header, EXPECTED, hex_part, body, secret)
}

/// Gitea sends `X-Gitea-Signature`, Forgejo also `X-Forgejo-Signature`; either will do.
fn verify_gitea(headers: &HeaderMap, body: &[u8], secret: &[u8]) -> Result<(), VerifyError> {
    const EXPECTED: &str = "64 hex digits";
    let (header, value) = [GITEA_SIGNATURE, FORGEJO_SIGNATURE]
        .into_iter()
        .find_map(|h| header_bytes(headers, h).map(|v| (h, v)))
        .ok_or(VerifyError::MissingSignature {
            header: GITEA_SIGNATURE,
            forge: Forge::Gitea,
        })?;
    check_hex_hmac(header, EXPECTED, value, body, secret)
}

fn check_hex_hmac(
    header: &'static str,
    expected: &'static str,
    hex_sig: &[u8],
    body: &[u8],
    secret: &[u8],
) -> Result<(), VerifyError> {
    let signature = hex::decode(hex_sig.trim_ascii())
        .ok()
        .filter(|sig| sig.len() == 32)
        .ok_or(VerifyError::MalformedSignature { header, expected })?;
    let mut mac = HmacSha256::new_from_slice(secret).map_err(|_| VerifyError::NoSecret)?;
    mac.update(body);
    // verify_slice compares in constant time.
    mac.verify_slice(&signature)
        .map_err(|_| VerifyError::Mismatch { header })
}

/// GitLab sends the secret itself; compare it in constant time.
fn verify_gitlab_token(headers: &HeaderMap, secret: &[u8]) -> Result<(), VerifyError> {
    let token = header_bytes(headers, GITLAB_TOKEN).ok_or(VerifyError::MissingSignature {
        header: GITLAB_TOKEN,
        forge: Forge::GitLab,
    })?;
    // Comparing digests keeps even the secret's length from showing in the timing.
    if bool::from(Sha256::digest(token).ct_eq(&Sha256::digest(secret))) {
        Ok(())
    } else {
        Err(VerifyError::Mismatch {
            header: GITLAB_TOKEN,
        })
    }
}

fn header_bytes<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    headers.get(name).map(|v| v.as_bytes())
}

/// The `X-Gantry-Signature` value for `body` (`sha256=<hex>`): what a generic sender
/// computes, and what tests sign with.
pub fn gantry_signature(body: &[u8], secret: &[u8]) -> String {
    format!("sha256={}", hmac_hex(body, secret))
}

/// Hex HMAC-SHA256 of `body` under `secret` (GitHub after `sha256=`, Gitea as is).
pub fn hmac_hex(body: &[u8], secret: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac =
        <HmacSha256 as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}
