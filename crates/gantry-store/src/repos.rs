//! Repositories: the projects Gantry builds.

use async_trait::async_trait;
use serde::Serialize;

use crate::error::StoreResult;
use crate::status::ForgeKind;
use crate::time::Millis;

/// The config file read when a repository names none.
pub const DEFAULT_CONFIG_PATH: &str = ".pipeline.yml";
/// The build timeout when a repository sets none, in minutes.
pub const DEFAULT_TIMEOUT_MINUTES: i64 = 60;

/// A stored repository.
///
/// `Debug` hides the webhook secret.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Repo {
    /// Store id.
    pub id: i64,
    /// Owner (user or organisation) on the forge.
    pub owner: String,
    /// Repository name on the forge.
    pub name: String,
    /// Which forge sends its webhooks.
    pub forge: ForgeKind,
    /// URL the server clones from.
    pub clone_url: String,
    /// Shared secret that signs its webhooks (never serialised).
    #[serde(skip)]
    pub webhook_secret: String,
    /// Path of the pipeline file in the repository.
    pub config_path: String,
    /// An admin allowed privileged steps and host volumes.
    pub trusted: bool,
    /// Build timeout in minutes.
    pub timeout_minutes: i64,
    /// Only authorised readers may see it.
    pub private: bool,
    /// When it was added.
    pub created_at: Millis,
    /// When it last changed.
    pub updated_at: Millis,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo")
            .field("id", &self.id)
            .field("owner", &self.owner)
            .field("name", &self.name)
            .field("forge", &self.forge)
            .field("clone_url", &self.clone_url)
            .field("webhook_secret", &"********")
            .field("config_path", &self.config_path)
            .field("trusted", &self.trusted)
            .field("timeout_minutes", &self.timeout_minutes)
            .field("private", &self.private)
            .finish()
    }
}

impl Repo {
    /// `owner/name`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }
}

/// What `create_repo` needs; the settings have defaults (see [`NewRepo::new`]).
#[derive(Clone)]
pub struct NewRepo {
    /// Owner on the forge.
    pub owner: String,
    /// Name on the forge.
    pub name: String,
    /// Which forge.
    pub forge: ForgeKind,
    /// Clone URL.
    pub clone_url: String,
    /// Webhook secret.
    pub webhook_secret: String,
    /// The settings an admin may change later.
    pub settings: RepoSettings,
}

impl std::fmt::Debug for NewRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewRepo")
            .field("owner", &self.owner)
            .field("name", &self.name)
            .field("forge", &self.forge)
            .field("clone_url", &self.clone_url)
            .field("webhook_secret", &"********")
            .field("settings", &self.settings)
            .finish()
    }
}

impl NewRepo {
    /// A repository with default settings (`.pipeline.yml`, 60 minutes, untrusted, public).
    pub fn new(
        owner: &str,
        name: &str,
        forge: ForgeKind,
        clone_url: &str,
        webhook_secret: &str,
    ) -> Self {
        NewRepo {
            owner: owner.to_string(),
            name: name.to_string(),
            forge,
            clone_url: clone_url.to_string(),
            webhook_secret: webhook_secret.to_string(),
            settings: RepoSettings::default(),
        }
    }
}

/// The settings of a repository that `update_repo` replaces as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoSettings {
    /// Path of the pipeline file.
    pub config_path: String,
    /// Privileged steps and host volumes allowed.
    pub trusted: bool,
    /// Build timeout in minutes (1 ..= 10080).
    pub timeout_minutes: i64,
    /// Hidden from unauthorised readers.
    pub private: bool,
}

impl Default for RepoSettings {
    fn default() -> Self {
        RepoSettings {
            config_path: DEFAULT_CONFIG_PATH.to_string(),
            trusted: false,
            timeout_minutes: DEFAULT_TIMEOUT_MINUTES,
            private: false,
        }
    }
}

/// Repository rows.
#[async_trait]
pub trait RepoStore: Send + Sync {
    /// Adds a repository; an existing `owner/name` is [`StoreError::Conflict`](crate::StoreError::Conflict).
    async fn create_repo(&self, repo: &NewRepo) -> StoreResult<Repo>;
    /// The repository with this id, if any.
    async fn repo_by_id(&self, id: i64) -> StoreResult<Option<Repo>>;
    /// The repository `owner/name`, if any.
    async fn repo_by_name(&self, owner: &str, name: &str) -> StoreResult<Option<Repo>>;
    /// Every repository, ordered by `owner/name`.
    async fn list_repos(&self) -> StoreResult<Vec<Repo>>;
    /// Replaces the settings; [`StoreError::NotFound`](crate::StoreError::NotFound) if the id is unknown.
    async fn update_repo(&self, id: i64, settings: &RepoSettings) -> StoreResult<Repo>;
    /// Replaces the clone URL; [`StoreError::NotFound`](crate::StoreError::NotFound) if the id is unknown.
    async fn set_clone_url(&self, id: i64, clone_url: &str) -> StoreResult<Repo>;
    /// Replaces the webhook secret (hooks signed with the old one then fail);
    /// [`StoreError::NotFound`](crate::StoreError::NotFound) if the id is unknown.
    async fn set_webhook_secret(&self, id: i64, secret: &str) -> StoreResult<Repo>;
    /// Deletes the repository and everything that belongs to it; false if it did not exist.
    async fn delete_repo(&self, id: i64) -> StoreResult<bool>;
}

/// Checks the user-supplied fields of a repository.
pub(crate) fn validate_repo(owner: &str, name: &str, clone_url: &str) -> StoreResult<()> {
    for (field, value) in [("repo.owner", owner), ("repo.name", name)] {
        let ok = !value.is_empty()
            && value.len() <= 100
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && value != "."
            && value != "..";
        if !ok {
            return Err(crate::StoreError::InvalidInput {
                field: field.to_string(),
                reason: format!(
                    "`{value}` must be 1 to 100 characters of letters, digits, `-`, `_` or `.`"
                ),
            });
        }
    }
    validate_clone_url(clone_url)
}

/// Checks a clone URL: it must not be empty.
pub(crate) fn validate_clone_url(clone_url: &str) -> StoreResult<()> {
    if clone_url.trim().is_empty() {
        return Err(crate::StoreError::InvalidInput {
            field: "repo.clone_url".to_string(),
            reason: "it is empty; give the URL the server can clone from".to_string(),
        });
    }
    Ok(())
}

/// Checks a webhook secret: it must not be empty.
pub(crate) fn validate_webhook_secret(secret: &str) -> StoreResult<()> {
    if secret.is_empty() {
        return Err(crate::StoreError::InvalidInput {
            field: "repo.webhook_secret".to_string(),
            reason: "it is empty; hooks could not be verified".to_string(),
        });
    }
    Ok(())
}

/// Checks the settings an admin sets.
pub(crate) fn validate_settings(settings: &RepoSettings) -> StoreResult<()> {
    if !(1..=10_080).contains(&settings.timeout_minutes) {
        return Err(crate::StoreError::InvalidInput {
            field: "repo.timeout_minutes".to_string(),
            reason: format!(
                "{} is out of range; use 1 to 10080 minutes (one week)",
                settings.timeout_minutes
            ),
        });
    }
    let path = settings.config_path.as_str();
    if path.is_empty()
        || path.starts_with('/')
        || path.split('/').any(|p| p == "..")
        || path.contains('\0')
    {
        return Err(crate::StoreError::InvalidInput {
            field: "repo.config_path".to_string(),
            reason: format!("`{path}` must be a relative path inside the repository"),
        });
    }
    Ok(())
}
