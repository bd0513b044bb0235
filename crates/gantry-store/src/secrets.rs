//! Repository secrets, encrypted at rest with XChaCha20-Poly1305.

use std::path::Path;

use async_trait::async_trait;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::Serialize;

use crate::error::{StoreError, StoreResult};
use crate::time::Millis;

/// Environment variable that holds the key (base64 or hex of 32 bytes).
pub const SECRET_KEY_ENV: &str = "GANTRY_SECRET_KEY";
/// File in the data directory that holds a generated key.
pub const SECRET_KEY_FILE: &str = "secret.key";
const NONCE_LEN: usize = 24;

/// The 32-byte key secrets are encrypted with. `Debug` never shows it.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(********)")
    }
}

impl SecretKey {
    /// A fresh random key.
    pub fn generate() -> StoreResult<Self> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|e| StoreError::SecretKey(format!("the system has no randomness: {e}")))?;
        Ok(SecretKey(bytes))
    }

    /// Reads a key written as base64 (standard or URL-safe) or hex of exactly 32 bytes.
    pub fn parse(text: &str) -> StoreResult<Self> {
        let text = text.trim();
        let decoded = if text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()) {
            hex::decode(text).ok()
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text))
                .ok()
        };
        match decoded.map(<[u8; 32]>::try_from) {
            Some(Ok(bytes)) => Ok(SecretKey(bytes)),
            _ => Err(StoreError::SecretKey(
                "it must be 32 bytes written as 64 hex digits or as base64 \
                 (make one with `head -c 32 /dev/urandom | base64`)"
                    .to_string(),
            )),
        }
    }

    /// The key from `GANTRY_SECRET_KEY` if set, else from `<data_dir>/secret.key`,
    /// generated there (mode 0600) on first use.
    pub fn load(data_dir: &Path) -> StoreResult<Self> {
        if let Ok(text) = std::env::var(SECRET_KEY_ENV) {
            return Self::parse(&text)
                .map_err(|e| StoreError::SecretKey(format!("{SECRET_KEY_ENV}: {e}")));
        }
        Self::load_or_create_file(&data_dir.join(SECRET_KEY_FILE))
    }

    /// The key in `path`, or a new one written there with mode 0600.
    pub fn load_or_create_file(path: &Path) -> StoreResult<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text)
                .map_err(|e| StoreError::SecretKey(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate()?;
                write_private(path, &hex::encode(key.0)).map_err(|e| {
                    StoreError::SecretKey(format!(
                        "cannot write {}: {e}; check the data directory is writable",
                        path.display()
                    ))
                })?;
                Ok(key)
            }
            Err(e) => Err(StoreError::SecretKey(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// Encrypts a value for (repo, name): returns nonce followed by ciphertext.
    pub(crate) fn seal(
        &self,
        repo_id: i64,
        name: &str,
        value: &SecretValue,
    ) -> StoreResult<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce)
            .map_err(|e| StoreError::SecretKey(format!("the system has no randomness: {e}")))?;
        let aad = associated_data(repo_id, name);
        let sealed = self
            .cipher()
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: value.0.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| StoreError::SecretKey("encryption failed".to_string()))?;
        let mut stored = nonce.to_vec();
        stored.extend_from_slice(&sealed);
        Ok(stored)
    }

    /// Decrypts what [`SecretKey::seal`] stored for (repo, name).
    pub(crate) fn open(&self, repo_id: i64, name: &str, stored: &[u8]) -> StoreResult<SecretValue> {
        let failed = || StoreError::Decrypt {
            repo_id,
            name: name.to_string(),
        };
        if stored.len() < NONCE_LEN {
            return Err(failed());
        }
        let (nonce, sealed) = stored.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| failed())?;
        let aad = associated_data(repo_id, name);
        let plain = self
            .cipher()
            .decrypt(
                &nonce,
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| failed())?;
        String::from_utf8(plain)
            .map(SecretValue)
            .map_err(|_| failed())
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0.into())
    }
}

/// Binds a ciphertext to its row so it cannot be copied to another secret.
fn associated_data(repo_id: i64, name: &str) -> Vec<u8> {
    format!("gantry-secret\0{repo_id}\0{name}").into_bytes()
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// A secret's value. `Debug` and `Display` never show it; read it with `expose`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        SecretValue(value.into())
    }

    /// The plaintext, for handing to a step.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(********)")
    }
}

/// A secret's name and times (never its value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretInfo {
    /// Name, as steps refer to it with `from_secret`.
    pub name: String,
    /// When it was first set.
    pub created_at: Millis,
    /// When it was last set.
    pub updated_at: Millis,
}

/// Repository secrets.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Sets (creates or replaces) a secret, encrypting it with a fresh nonce.
    async fn set_secret(
        &self,
        repo_id: i64,
        name: &str,
        value: &SecretValue,
        now: Millis,
    ) -> StoreResult<()>;
    /// Deletes a secret; false if there was none.
    async fn delete_secret(&self, repo_id: i64, name: &str) -> StoreResult<bool>;
    /// Names of a repository's secrets, sorted.
    async fn list_secrets(&self, repo_id: i64) -> StoreResult<Vec<SecretInfo>>;
    /// Decrypted values of the named secrets that exist (for a run), by name.
    async fn secret_values(
        &self,
        repo_id: i64,
        names: &[String],
    ) -> StoreResult<Vec<(String, SecretValue)>>;
}

/// Checks a secret name: what `from_secret` can refer to.
pub(crate) fn validate_secret_name(name: &str) -> StoreResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidInput {
            field: "secret.name".to_string(),
            reason: format!("`{name}` must be 1 to 128 letters, digits, `_`, `-` or `.`"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_parses_hex_and_base64_and_refuses_other_lengths() {
        let hex_key = "00".repeat(32);
        assert!(SecretKey::parse(&hex_key).is_ok());
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert!(SecretKey::parse(&b64).is_ok());
        let error = SecretKey::parse("c2hvcnQ=").unwrap_err().to_string();
        assert!(error.contains("32 bytes"), "{error}");
    }

    #[test]
    fn sealed_value_opens_only_for_its_own_row_and_hides_in_debug() {
        let key = SecretKey::generate().unwrap();
        let value = SecretValue::new("hunter2");
        let sealed = key.seal(1, "db", &value).unwrap();
        assert_eq!(key.open(1, "db", &sealed).unwrap(), value);
        assert!(key.open(1, "other", &sealed).is_err());
        assert!(key.open(2, "db", &sealed).is_err());
        assert!(!format!("{value:?} {key:?}").contains("hunter2"));
        let error = key.open(2, "db", &sealed).unwrap_err().to_string();
        assert!(!error.contains("hunter2"));
    }

    #[test]
    fn generated_key_file_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SECRET_KEY_FILE);
        let first = SecretKey::load_or_create_file(&path).unwrap();
        let second = SecretKey::load_or_create_file(&path).unwrap();
        assert_eq!(first.0, second.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
