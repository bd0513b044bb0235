//! The commit a hook names, fetched with the `git` binary into a per-repository bare cache:
//! its pipeline config and the files it changed.

mod changes;
mod command;
mod facts;
mod fetch;
mod netrc;
mod objects;
mod read;
mod tree_diff;
mod url;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use command::Git;
pub use facts::{ChangeRange, CommitFacts};
pub use netrc::Netrc;
use url::RemoteUrl;

/// Config file names the server looks for, in order.
pub const DEFAULT_CONFIG_NAMES: [&str; 2] = [".pipeline.yml", ".drone.yml"];

/// How long a repository's `git cat-file` process is kept unused unless
/// [`GitCache::with_idle_limit`] sets another (a minute).
const DEFAULT_READER_IDLE_LIMIT: Duration = Duration::from_secs(60);

/// Limit on one git call unless [`GitCache::with_timeout`] sets another.
pub const DEFAULT_GIT_TIMEOUT: Duration = Duration::from_secs(120);

/// What went wrong talking to git. Messages never hold credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitError {
    /// The clone URL is of a kind we do not fetch from.
    #[error("cannot fetch from `{url}`: {reason}")]
    UnsupportedUrl {
        /// The URL without credentials.
        url: String,
        /// Why, and what to use instead.
        reason: String,
    },
    /// A SHA argument is not a full hex commit id.
    #[error("`{0}` is not a full commit SHA (40 or 64 hex digits)")]
    InvalidSha(String),
    /// A branch or path argument is unusable.
    #[error("invalid {what} `{value}`: {reason}")]
    InvalidArgument {
        /// `path` or `branch`.
        what: &'static str,
        /// The value (untrusted, shortened).
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// The `git` binary could not be started.
    #[error("cannot run git: {message}; is git installed and on the server's PATH?")]
    Spawn {
        /// The OS error.
        message: String,
    },
    /// A git call took longer than its limit and was killed.
    #[error("git timed out after {secs}s trying to {action} ({remote})")]
    Timeout {
        /// What git was doing.
        action: String,
        /// The remote without credentials.
        remote: String,
        /// The limit.
        secs: u64,
    },
    /// git exited non-zero.
    #[error("git failed to {action} ({remote}): {stderr}")]
    Failed {
        /// What git was doing.
        action: String,
        /// The remote without credentials.
        remote: String,
        /// git's stderr (tail), scrubbed of credentials.
        stderr: String,
    },
    /// The remote does not have the commit (force-pushed away, or the wrong repository).
    #[error("commit {sha} is not in {remote}: {detail}")]
    CommitNotFound {
        /// The commit.
        sha: String,
        /// The remote without credentials.
        remote: String,
        /// What the fetch said.
        detail: String,
    },
    /// The server wants credentials we do not have, or refused the ones given.
    #[error(
        "{remote} refused access: check the repository's clone credentials (login and token) — {detail}"
    )]
    AccessDenied {
        /// The remote without credentials.
        remote: String,
        /// What git said, scrubbed.
        detail: String,
    },
    /// None of the config names exists at the commit.
    #[error("no {names} at {sha}: add one to the repository or set the repository's config path")]
    NoConfig {
        /// The names tried, joined with "or".
        names: String,
        /// The commit.
        sha: String,
    },
    /// A file read from the commit is unusable.
    #[error("cannot read {path} at {sha}: {reason}")]
    UnreadableFile {
        /// The path.
        path: String,
        /// The commit.
        sha: String,
        /// Why (too large, not UTF-8).
        reason: String,
    },
    /// Local IO around git (the cache directory, a temporary HOME).
    #[error("cannot {action}: {message}")]
    Io {
        /// What was being done.
        action: String,
        /// The OS error.
        message: String,
    },
}

/// True for a full hex commit id (SHA-1 or SHA-256).
pub fn is_commit_sha(sha: &str) -> bool {
    matches!(sha.len(), 40 | 64) && sha.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A directory of bare repositories, one per clone URL, that commits are fetched into.
///
/// Cheap to clone and safe to share: fetches into the same repository are serialised, and
/// each repository's objects are read through one long-lived `git cat-file --batch`
/// process, stopped when idle and when the last clone of the cache is dropped.
#[derive(Clone)]
pub struct GitCache {
    dir: PathBuf,
    timeout: Duration,
    idle_limit: Duration,
    repos: Arc<StdMutex<HashMap<PathBuf, RepoShared>>>,
}

/// What every handle to one repository shares: the fetch lock and the object reader.
#[derive(Clone, Default)]
struct RepoShared {
    lock: Arc<Mutex<()>>,
    objects: Arc<objects::ObjectReader>,
}

impl std::fmt::Debug for GitCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitCache")
            .field("dir", &self.dir)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl GitCache {
    /// A cache in `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, GitError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|err| GitError::Io {
            action: format!("create the git cache directory {}", dir.display()),
            message: err.to_string(),
        })?;
        Ok(Self {
            dir,
            timeout: DEFAULT_GIT_TIMEOUT,
            idle_limit: DEFAULT_READER_IDLE_LIMIT,
            repos: Arc::default(),
        })
    }

    /// Sets the limit on each git call.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets how long a repository's `git cat-file` process is kept while unused.
    pub fn with_idle_limit(mut self, idle_limit: Duration) -> Self {
        self.idle_limit = idle_limit;
        self
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Fetches exactly `sha` from `clone_url` (shallow when the server allows fetching by
    /// SHA, else a full fetch) and returns a handle to read it.
    ///
    /// A `file://` repository on this machine is read in place, never written to (no copy
    /// to make, so no fetch); a commit it lacks is [`GitError::CommitNotFound`]. Since any
    /// readable repository on the server can be named that way, only admins should be able
    /// to give a repository a `file://` clone URL.
    ///
    /// `credentials` go into a temporary `.netrc` for this repository's calls only.
    pub async fn fetch_commit(
        &self,
        clone_url: &str,
        sha: &str,
        credentials: Option<Netrc>,
    ) -> Result<CommitCheckout, GitError> {
        let (git, lock, sha) = self.open(clone_url, sha, credentials)?;
        fetched(git, lock, &sha).await
    }

    /// How to run git for `clone_url`, its repository's lock, and `sha` checked and in
    /// lowercase.
    fn open(
        &self,
        clone_url: &str,
        sha: &str,
        credentials: Option<Netrc>,
    ) -> Result<(Git, Arc<Mutex<()>>, String), GitError> {
        if !is_commit_sha(sha) {
            return Err(GitError::InvalidSha(sha.chars().take(80).collect()));
        }
        let remote = RemoteUrl::parse(clone_url)?;
        // A repository on this machine is read in place: fetching it would only copy it.
        let (repo, read_only) = match remote.local_repository() {
            Some(local) => (local, true),
            None => (self.cache_repo(&remote), false),
        };
        let RepoShared { lock, objects } = self.shared(&repo);
        let git = Git {
            repo,
            timeout: self.timeout,
            credentials,
            remote,
            read_only,
            objects,
            idle_limit: self.idle_limit,
        };
        Ok((git, lock, sha.to_ascii_lowercase()))
    }

    /// The bare repository caching `remote` (named by a hash: URLs are not paths).
    fn cache_repo(&self, remote: &RemoteUrl) -> PathBuf {
        let name = hex::encode(Sha256::digest(remote.display()));
        self.dir.join(format!("{}.git", &name[..32]))
    }

    fn shared(&self, repo: &Path) -> RepoShared {
        let mut repos = self
            .repos
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        repos.entry(repo.to_owned()).or_default().clone()
    }
}

/// Makes sure the repository holds `sha` (fetching it into the cache) and returns it.
async fn fetched(git: Git, lock: Arc<Mutex<()>>, sha: &str) -> Result<CommitCheckout, GitError> {
    let guard = lock.lock().await;
    if !git.read_only {
        fetch::ensure_bare(&git).await?;
    }
    // An annotated tag's push names the tag object: the commit it points to is built.
    let sha = fetch::ensure_commit(&git, sha, 1).await?;
    drop(guard);
    Ok(CommitCheckout { git, sha, lock })
}

/// A config file found at a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// Which name it was found under (`.pipeline.yml`).
    pub path: String,
    /// Its text.
    pub text: String,
}

/// One fetched commit: read files at it ([`CommitCheckout::config`]), list what it changed
/// ([`CommitCheckout::changed_files`]).
#[derive(Clone)]
pub struct CommitCheckout {
    git: Git,
    sha: String,
    lock: Arc<Mutex<()>>,
}

impl std::fmt::Debug for CommitCheckout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitCheckout")
            .field("remote", &self.git.remote)
            .field("sha", &self.sha)
            .field("repo", &self.git.repo)
            .finish()
    }
}

impl CommitCheckout {
    /// The commit (lowercase hex). When the hook named an annotated tag object, this is the
    /// commit the tag points to: use it as the build's SHA.
    pub fn sha(&self) -> &str {
        &self.sha
    }

    /// The repository holding the commit: a bare repository in the cache, or the local
    /// repository itself for `file://` URLs.
    pub fn repo_dir(&self) -> &Path {
        &self.git.repo
    }
}
